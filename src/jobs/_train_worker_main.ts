// The body of workers/train_worker.ts (imported after it hides `location`): receives a TrainJobSpec,
// trains in a scratch folder, posts progress, checkpoints and the final PEFT files (see worker_protocol.ts).

/// <reference lib="deno.worker" />

import { getPriority, setPriority } from "node:os";
import type { CheckpointFiles, FromWorker, ToWorker, TrainJobSpec } from "./worker_protocol.ts";

// captured before the training modules load (they are imported inside run(), after the handlers exist)
const scope = self;
const controller = new AbortController();
let started = false;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}

/**
 * Reads a checkpoint folder consistently. The trainer replaces it by renames (old folder aside, new one in
 * place), so a read may find no folder for a moment, or straddle two saves: then it reads again.
 */
async function readCheckpoint(dir: string): Promise<CheckpointFiles> {
  let last: unknown;
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const before = await Deno.readFile(`${dir}/trainer_state.json`);
      const trainingState = await Deno.readFile(`${dir}/training_state.safetensors`);
      const after = await Deno.readFile(`${dir}/trainer_state.json`);
      if (before.length === after.length && before.every((b, i) => b === after[i])) {
        const step = (JSON.parse(new TextDecoder().decode(after)) as { step: number }).step;
        return { step, trainerState: after, trainingState };
      }
      last = new Error("it changed while being read");
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      last = e;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`Cannot read the checkpoint in ${dir}: ${(last as Error).message}`);
}

async function run(spec: TrainJobSpec): Promise<void> {
  const [{ loadModelFolder }, { parseJsonl }, { train }] = await Promise.all([
    import("../io/model_folder.ts"),
    import("../train/data.ts"),
    import("../train/trainer.ts"),
  ]);
  const model = await loadModelFolder(spec.modelDir, { id: spec.modelId });
  const { completionEos, ...trainOptions } = spec.options;
  const dataOptions = {
    tokenizer: model.tokenizer,
    seqLen: trainOptions.seqLen,
    chatTemplate: model.chatTemplate,
    completionEos: completionEos ?? true, // jobs queued before the hyperparameter existed
  };
  const trainData = parseJsonl(spec.train.text, spec.train.name, dataOptions);
  const evalData = spec.eval ? parseJsonl(spec.eval.text, spec.eval.name, dataOptions) : undefined;
  const out = `${spec.workDir}/out`;
  const checkpointDir = `${out}/checkpoint`;
  let resume: string | undefined;
  if (spec.checkpoint) {
    await Deno.mkdir(checkpointDir, { recursive: true });
    await Deno.writeFile(`${checkpointDir}/trainer_state.json`, spec.checkpoint.trainerState);
    await Deno.writeFile(`${checkpointDir}/training_state.safetensors`, spec.checkpoint.trainingState);
    resume = checkpointDir;
  }
  // checkpoints are posted in order, and all before "done"
  let uploads = Promise.resolve();
  let lastPosted = spec.checkpoint?.step ?? 0;
  const summary = await train(
    {
      model: { id: model.id, config: model.config, weights: model.weights },
      train: trainData,
      eval: evalData,
      resume,
    },
    { ...trainOptions, ep: spec.ep, out },
    {
      onStep: (record, total) => post({ type: "step", record, total }),
      onNote: (message) => {
        post({ type: "note", message });
        if (/^Saved checkpoint at step \d+$/.test(message)) {
          uploads = uploads.then(async () => {
            const checkpoint = await readCheckpoint(checkpointDir);
            if (checkpoint.step <= lastPosted) return; // a later save already replaced it: posted once
            lastPosted = checkpoint.step;
            post({ type: "checkpoint", checkpoint }, [
              checkpoint.trainerState.buffer as ArrayBuffer,
              checkpoint.trainingState.buffer as ArrayBuffer,
            ]);
          }).catch((e) => {
            // training goes on; the next save is posted instead
            post({ type: "note", message: `Cannot store the checkpoint: ${(e as Error).message}` });
          });
        }
      },
      signal: controller.signal,
    },
  );
  await uploads;
  if (summary.stopped_early) {
    post({ type: "done", summary });
    return;
  }
  const config = await Deno.readFile(`${out}/adapter_config.json`);
  const weights = await Deno.readFile(`${out}/adapter_model.safetensors`);
  post({ type: "done", summary, adapter: { config, weights } }, [
    config.buffer as ArrayBuffer,
    weights.buffer as ArrayBuffer,
  ]);
}

/**
 * Lowers this thread's scheduling priority, so that serving (the request thread, the inference workers)
 * wins the CPU whenever both want it and training gets what is left. On Linux `setpriority(PRIO_PROCESS, 0)`
 * applies to the calling thread alone, and threads this one starts later (onnxruntime's) inherit it.
 */
function lowerPriority(nice: number): void {
  try {
    setPriority(0, nice);
    post({ type: "priority", nice: getPriority(0) });
  } catch (e) {
    const reason = e instanceof Deno.errors.NotCapable
      ? "--allow-sys=setPriority,getPriority is not granted"
      : (e as Error).message ?? String(e);
    post({ type: "priority", nice: null, reason });
  }
}

scope.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "cancel") {
    controller.abort();
    return;
  }
  if (message.type === "start" && !started) {
    started = true;
    if (message.nice) lowerPriority(message.nice);
    run(message.spec).catch((e) => post({ type: "error", message: (e as Error).message ?? String(e) }));
  }
};

post({ type: "ready" });
