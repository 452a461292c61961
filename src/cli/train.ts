/**
 * `deno task train`: fine-tunes a LoRA adapter with WeightLoRA (or WeightLoRA+, LoRA, RandLoRA) and writes
 * a PEFT adapter, `weightlora.json` and `train_log.jsonl` to `--out`.
 *
 *     deno task train --model DIR --data train.jsonl --out runs/demo --k 5 --rank 4 --steps 200
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import cliProgress from "cli-progress";
import { loadModelFolder } from "../io/model_folder.ts";
import { resolveModelSource } from "../io/hub.ts";
import { loadPeftAdapter } from "../lora/peft.ts";
import { LLAMA_MODULES, type LlamaModule } from "../models/sites.ts";
import { type Dataset, loadJsonl, splitDataset } from "../train/data.ts";
import { type StepRecord, train, type TrainOptions } from "../train/trainer.ts";
import { TRAIN_DEFAULTS as D, withTrainDefaults } from "../train/options.ts";
import { nonNegative, nonNegativeInt, numberFlag, oneOf, positiveInt, runCli, UsageError } from "./_args.ts";

const HELP = `Usage: deno task train --model M --data F --out DIR [options]

Fine-tunes a LoRA adapter on a Llama-family model and writes to --out: adapter_config.json and
adapter_model.safetensors (a standard PEFT LoRA adapter: only the selected sites, gates folded into B),
weightlora.json (method, gates, selected sites, sizes per phase, losses, tokens, wall time),
train_log.jsonl (one line per step) and checkpoint/ (for --resume).

Model and data:
  --model M              Hugging Face model folder (e.g. from \`deno task convert\`) or hf:OWNER/REPO[@REV]. Required.
  --data F               Training JSONL: {"prompt","completion"}, {"text"}, {"messages"} or
                         {"input_ids","labels"?} rows. Required.
  --out DIR              Output folder. Required.
  --eval-data F          Evaluation JSONL. Default: none.
  --eval-split P         Hold out a share P in (0, 1) of --data for evaluation instead. Default: none.
  --init-adapter DIR     Start from a PEFT LoRA adapter (keeps its sites, ranks and alpha). Default: none.
  --resume DIR           Continue from a checkpoint folder (e.g. OUT/checkpoint); same options required.
  --no-completion-eos    Do not end {"prompt","completion"} rows with EOS (for models that never learned EOS,
                         such as llama2.c's TinyStories models).

Method:
  --method M             weightlora | weightlora-plus | lora | randlora. Default: ${D.method}.
  --k K                  Sites to keep (weightlora, randlora), 1..number of candidate sites. Default: ${D.k}.
  --select-steps T       WeightLoRA selection steps (gates trained, then frozen). Default: steps / 10.
  --lr-gates LR          Learning rate of the gates (plain SGD). Default: ${D.lrGates}.
  --reinit-survivors     After selection, re-initialise the survivors' A/B and restart the optimizer.
  --grow-every F         WeightLoRA+: steps between rank doublings. Default: ${D.growEvery}.
  --grow-rounds M        WeightLoRA+: doublings (K halves each time, from all sites). Default: ${D.growRounds}.

Adapter:
  --target-modules LIST  Candidate modules, comma-separated from ${LLAMA_MODULES.join(",")}.
                         Default: all.
  --rank R               LoRA rank. Default: ${D.rank}.
  --alpha A              LoRA alpha (scale alpha/r). Default: ${D.alpha}.
  --rslora               Scale by alpha/√r instead.
  --dropout P            LoRA dropout on each adapted layer's input, in [0, 1). Default: ${D.dropout}.

Optimisation:
  --steps N              Optimizer steps. Default: ${D.steps}.
  --batch-size B         Rows per micro-batch. Default: ${D.batchSize}.
  --seq-len L            Tokens per row (longer rows are truncated; shorter data shrinks it). Default: ${D.seqLen}.
  --grad-accum G         Micro-batches per optimizer step. Default: ${D.gradAccum}.
  --optimizer O          adamw | sgd (for A and B). Default: ${D.optimizer}.
  --lr LR                Peak learning rate of A and B. Default: ${D.lr}.
  --weight-decay W       Weight decay of A and B. Default: ${D.weightDecay}.
  --lr-schedule S        constant | linear | cosine. Default: ${D.lrSchedule}.
  --warmup-steps N       Linear warmup steps. Default: ${D.warmupSteps}.
  --max-grad-norm X      Clip the global gradient norm of A and B; 0 disables. Default: ${D.maxGradNorm}.
  --seed S               Seed of initialisation, shuffling and random sites. Default: ${D.seed}.

Run:
  --eval-every N         Evaluate every N steps (0: at the end only). Default: ${D.evalEvery}.
  --save-every N         Checkpoint every N steps (0: at the end only). Default: ${D.saveEvery}.
  --ep E                 Execution provider: auto (WebGPU on a hardware adapter, else wasm), wasm or webgpu.
                         Default: ${D.ep}.
  -h, --help             Show this help.

Progress: a bar on a terminal (step/total, loss, tokens/s, ETA, phase, active adapters); plain lines otherwise.`;

function modules(text: string | undefined): LlamaModule[] {
  if (text === undefined || text === "all") return [...LLAMA_MODULES];
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((m) => !(LLAMA_MODULES as readonly string[]).includes(m));
  if (bad.length || list.length === 0) {
    throw new UsageError(
      `Invalid --target-modules ${JSON.stringify(text)}: unknown ${
        bad.join(", ") || "empty list"
      }; choose from ${LLAMA_MODULES.join(",")}`,
    );
  }
  return list as LlamaModule[];
}

function progressReporter(total: number) {
  let tty = false;
  try {
    tty = Deno.stderr.isTerminal();
  } catch {
    tty = false;
  }
  if (tty) {
    const bar = new cliProgress.SingleBar({
      stream: process.stderr,
      format:
        "{bar} {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted} | {phase} | {active} adapters",
      hideCursor: true,
    }, cliProgress.Presets.shades_classic);
    let payload: Record<string, string | number> = { loss: "-", tps: "-", phase: "-", active: "-" };
    let value = 0;
    let running = true;
    bar.start(total, 0, payload);
    return {
      step(r: StepRecord) {
        value = r.step;
        payload = {
          loss: r.loss.toFixed(4),
          tps: Math.round(r.tokens_per_s),
          phase: r.phase,
          active: r.active,
        };
        bar.update(value, payload);
      },
      note(m: string) {
        if (running) bar.stop();
        console.error(m);
        if (running) bar.start(total, value, payload);
      },
      stop() {
        if (running) bar.stop();
        running = false;
      },
    };
  }
  const every = Math.max(1, Math.floor(total / 50));
  return {
    step(r: StepRecord) {
      if (r.step % every === 0 || r.step === total || r.eval_loss !== undefined) {
        const evalPart = r.eval_loss === undefined ? "" : ` eval_loss ${r.eval_loss.toFixed(4)}`;
        console.error(
          `step ${r.step}/${total} loss ${r.loss.toFixed(4)}${evalPart} lr ${r.lr.toPrecision(3)} ` +
            `${Math.round(r.tokens_per_s)} tok/s ${r.phase} ${r.active} adapters ${r.elapsed.toFixed(1)} s`,
        );
      }
    },
    note: (m: string) => console.error(m),
    stop() {},
  };
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      model: { type: "string" },
      data: { type: "string" },
      out: { type: "string" },
      "eval-data": { type: "string" },
      "eval-split": { type: "string" },
      "init-adapter": { type: "string" },
      resume: { type: "string" },
      "no-completion-eos": { type: "boolean" },
      method: { type: "string" },
      k: { type: "string" },
      "select-steps": { type: "string" },
      "lr-gates": { type: "string" },
      "reinit-survivors": { type: "boolean" },
      "grow-every": { type: "string" },
      "grow-rounds": { type: "string" },
      "target-modules": { type: "string" },
      rank: { type: "string" },
      alpha: { type: "string" },
      rslora: { type: "boolean" },
      dropout: { type: "string" },
      steps: { type: "string" },
      "batch-size": { type: "string" },
      "seq-len": { type: "string" },
      "grad-accum": { type: "string" },
      optimizer: { type: "string" },
      lr: { type: "string" },
      "weight-decay": { type: "string" },
      "lr-schedule": { type: "string" },
      "warmup-steps": { type: "string" },
      "max-grad-norm": { type: "string" },
      seed: { type: "string" },
      "eval-every": { type: "string" },
      "save-every": { type: "string" },
      ep: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  for (const required of ["model", "data", "out"] as const) {
    if (!v[required]) throw new UsageError(`--${required} is required`);
  }
  if (v["eval-data"] && v["eval-split"]) {
    throw new UsageError("--eval-data and --eval-split exclude each other");
  }
  const options: TrainOptions = withTrainDefaults({
    method: oneOf(
      "method",
      v.method,
      ["weightlora", "weightlora-plus", "lora", "randlora"] as const,
      D.method,
    ),
    k: positiveInt("k", v.k, D.k),
    rank: positiveInt("rank", v.rank, D.rank),
    alpha: numberFlag("alpha", v.alpha, (n) => n > 0, "a positive number") ?? D.alpha,
    rslora: v.rslora ?? D.rslora,
    dropout: numberFlag("dropout", v.dropout, (n) => n >= 0 && n < 1, "a probability in [0, 1)") ?? D.dropout,
    targetModules: modules(v["target-modules"]),
    steps: positiveInt("steps", v.steps, D.steps),
    batchSize: positiveInt("batch-size", v["batch-size"], D.batchSize),
    seqLen: numberFlag("seq-len", v["seq-len"], (n) => Number.isInteger(n) && n >= 2, "an integer ≥ 2") ??
      D.seqLen,
    gradAccum: positiveInt("grad-accum", v["grad-accum"], D.gradAccum),
    optimizer: oneOf("optimizer", v.optimizer, ["adamw", "sgd"] as const, D.optimizer),
    lr: numberFlag("lr", v.lr, (n) => n > 0, "a positive number") ?? D.lr,
    lrGates: nonNegative("lr-gates", v["lr-gates"], D.lrGates),
    weightDecay: nonNegative("weight-decay", v["weight-decay"], D.weightDecay),
    lrSchedule: oneOf(
      "lr-schedule",
      v["lr-schedule"],
      ["constant", "linear", "cosine"] as const,
      D.lrSchedule,
    ),
    warmupSteps: nonNegativeInt("warmup-steps", v["warmup-steps"], D.warmupSteps),
    maxGradNorm: nonNegative("max-grad-norm", v["max-grad-norm"], D.maxGradNorm),
    selectSteps: v["select-steps"] === undefined
      ? undefined
      : positiveInt("select-steps", v["select-steps"], 1),
    reinitSurvivors: v["reinit-survivors"] ?? D.reinitSurvivors,
    growEvery: positiveInt("grow-every", v["grow-every"], D.growEvery),
    growRounds: positiveInt("grow-rounds", v["grow-rounds"], D.growRounds),
    evalEvery: nonNegativeInt("eval-every", v["eval-every"], D.evalEvery),
    saveEvery: nonNegativeInt("save-every", v["save-every"], D.saveEvery),
    seed: nonNegativeInt("seed", v.seed, D.seed),
    ep: oneOf("ep", v.ep, ["auto", "wasm", "webgpu"] as const, D.ep),
    out: v.out!,
  });
  const evalSplit = numberFlag("eval-split", v["eval-split"], (n) => n > 0 && n < 1, "a share in (0, 1)");

  const dir = await resolveModelSource(v.model!);
  const model = await loadModelFolder(dir);
  const maxLen = Math.min(options.seqLen, model.config.maxPositionEmbeddings);
  const dataOptions = {
    tokenizer: model.tokenizer,
    seqLen: maxLen,
    chatTemplate: model.chatTemplate,
    completionEos: !v["no-completion-eos"],
  };
  let trainData: Dataset = await loadJsonl(v.data!, dataOptions);
  let evalData: Dataset | undefined = v["eval-data"]
    ? await loadJsonl(v["eval-data"], dataOptions)
    : undefined;
  if (evalSplit !== undefined) ({ train: trainData, eval: evalData } = splitDataset(trainData, evalSplit));
  // static training graphs: no longer than the longest row
  const longest = Math.max(
    ...trainData.examples.map((e) => e.inputIds.length),
    ...(evalData?.examples ?? []).map((e) => e.inputIds.length),
  );
  options.seqLen = Math.max(2, Math.min(maxLen, longest));
  console.error(
    `train: ${trainData.examples.length} rows, ${trainData.targets} target tokens from ${v.data}` +
      (trainData.truncated ? `, ${trainData.truncated} truncated to ${maxLen} tokens` : "") +
      (trainData.empty ? `, ${trainData.empty} without targets skipped` : "") +
      (evalData ? `; eval ${evalData.examples.length} rows` : "") + `; sequence length ${options.seqLen}`,
  );
  const initAdapter = v["init-adapter"] ? await loadPeftAdapter(v["init-adapter"], model.config) : undefined;
  const progress = progressReporter(options.steps);
  const controller = new AbortController();
  const onSignal = () => {
    progress.note("Stopping after this step (a checkpoint is saved); press Ctrl-C again to abort");
    Deno.removeSignalListener("SIGINT", onSignal);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const summary = await train(
      {
        model: { id: model.id, config: model.config, weights: model.weights },
        train: trainData,
        eval: evalData,
        initAdapter,
        resume: v.resume,
      },
      options,
      { onStep: (r) => progress.step(r), onNote: (m) => progress.note(m), signal: controller.signal },
    );
    progress.stop();
    console.error(
      `train: ${summary.stopped_early ? "stopped" : "done"} after ${summary.steps} steps in ${
        summary.wall_time_s.toFixed(1)
      } s; ` +
        `${summary.selected_sites.length} adapters; final loss ${summary.final_train_loss?.toFixed(4)}` +
        (summary.final_eval_loss === null ? "" : `, eval loss ${summary.final_eval_loss.toFixed(4)}`) +
        `; wrote ${options.out}`,
    );
  } finally {
    progress.stop();
    try {
      Deno.removeSignalListener("SIGINT", onSignal);
    } catch {
      // already removed
    }
  }
}

if (import.meta.main) await runCli("train", main);
