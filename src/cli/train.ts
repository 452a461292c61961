/**
 * `deno task train`: fine-tunes a LoRA adapter with WeightLoRA (or WeightLoRA+, LoRA, random sites) and writes
 * a PEFT adapter, `weightlora.json` and `train_log.jsonl` to `--out`.
 *
 *     deno task train --model DIR --data train.jsonl --out runs/demo --k 5 --rank 4 --steps 200
 *
 * @module
 */

import process from "node:process";
import cliProgress from "cli-progress";
import { loadModelFolder } from "../io/model_folder.ts";
import { resolveModelSource } from "../io/hub.ts";
import { loadPeftAdapter } from "../lora/peft.ts";
import { type Dataset, loadJsonl, splitDataset } from "../train/data.ts";
import { type StepRecord, train, trainMethod, type TrainOptions } from "../train/trainer.ts";
import {
  checkOptionValue,
  optionValueFromText,
  TRAIN_DEFAULTS,
  TRAIN_OPTION_SPECS,
  type TrainOptionSpec,
  withTrainDefaults,
} from "../train/options.ts";
import { readChatTemplateFile } from "../io/chat_template.ts";
import { numberFlag, runCli, UsageError } from "./_args.ts";
import { defineCommand, type FlagSpec, helpText, parseFlags } from "./_flags.ts";

/** A training option's flag (from the one declaration of every option, `src/train/options.ts`). */
function optionFlag(o: TrainOptionSpec): FlagSpec {
  const bool = o.type.kind === "bool";
  return {
    name: o.flag!,
    ...(bool ? { type: "boolean" as const } : { value: o.value ?? "X" }),
    ...(o.defaultText !== undefined
      ? { defaultText: o.defaultText }
      : bool || o.default === undefined
      ? {}
      : { defaultText: String(o.default) }),
    group: o.group,
    doc: o.doc,
  };
}

/** The flags of `deno task train`: the parser and `--help` both read them. */
export const TRAIN_COMMAND = defineCommand({
  name: "train",
  usage: ["--model M --data F --out DIR [options]"],
  description: `Fine-tunes a LoRA adapter on a Llama-family model and writes to --out (created if needed):
adapter_config.json and adapter_model.safetensors (a standard PEFT LoRA adapter: only the selected sites,
gates folded into B), weightlora.json (method, gates, selected sites, sizes per phase, losses, tokens, wall
time), train_log.jsonl (one line per step) and checkpoint/ (for --resume).`,
  flags: [
    {
      name: "model",
      value: "M",
      required: true,
      group: "Model and data",
      doc: "Hugging Face model folder (e.g. from `deno task convert`) or hf:OWNER/REPO[@REV].",
    },
    {
      name: "data",
      value: "F",
      required: true,
      group: "Model and data",
      doc: 'Training JSONL: {"prompt","completion"}, {"text"}, {"messages"} or {"input_ids","labels"?} rows.',
    },
    { name: "out", value: "DIR", required: true, group: "Model and data", doc: "Output folder." },
    { name: "eval-data", value: "F", group: "Model and data", doc: "Evaluation JSONL." },
    {
      name: "eval-split",
      value: "P",
      group: "Model and data",
      doc: "Hold out a share P in (0, 1) of --data for evaluation instead.",
    },
    {
      name: "init-adapter",
      value: "DIR",
      group: "Model and data",
      doc: "Start from a PEFT LoRA adapter (keeps its sites, ranks and alpha).",
    },
    {
      name: "resume",
      value: "DIR",
      group: "Model and data",
      doc: "Continue from a checkpoint folder (e.g. OUT/checkpoint); same options required.",
    },
    {
      name: "chat-template",
      value: "FILE",
      group: "Model and data",
      defaultText: "the model's, else the plain User:/Assistant: transcript",
      doc: 'A Jinja chat template for {"messages"} rows.',
    },
    ...TRAIN_OPTION_SPECS.filter((o) => o.flag !== null).map(optionFlag),
  ],
  footer:
    "Progress: a bar on a terminal (step/total, loss, tokens/s, ETA, phase, active adapters); plain lines otherwise.\n" +
    "Environment: WEIGHTLORA_WASM_THREADS sets the number of wasm threads (default 1).",
});

/**
 * The training options of a command line, each flag checked against its option's type and range; an option
 * that does not apply to the method (`--k` with `--method lora`) is a usage error, as it is for a job.
 */
function trainOptionsFromFlags(
  v: Record<string, unknown>,
  out: string,
): { options: TrainOptions; completionEos: boolean } {
  const set: Record<string, unknown> = {};
  const given: TrainOptionSpec[] = [];
  for (const o of TRAIN_OPTION_SPECS) {
    if (o.flag === null || v[o.flag] === undefined || v[o.flag] === false) continue;
    const text = v[o.flag];
    const value = o.type.kind === "bool" ? !o.negated : optionValueFromText(o, text as string);
    const checked = checkOptionValue(o, value);
    if ("expected" in checked) {
      throw new UsageError(`Invalid --${o.flag} ${JSON.stringify(text)}: expected ${checked.expected}`);
    }
    set[o.field] = o.negated ? !checked.value : checked.value;
    given.push(o);
  }
  const method = trainMethod((set.method as string | undefined) ?? TRAIN_DEFAULTS.method);
  const misplaced = given.find((o) => o.methods && !o.methods.includes(method));
  if (misplaced) {
    throw new UsageError(`--${misplaced.flag} does not apply to --method ${method}`);
  }
  if (set.k !== undefined && set.budget !== undefined) {
    throw new UsageError(
      "--k and --budget exclude each other: give the sites to keep or their parameter budget",
    );
  }
  const { completionEos, ...options } = set;
  return {
    options: withTrainDefaults({ ...options, method, out } as Partial<TrainOptions> & { out: string }),
    completionEos: (completionEos as boolean | undefined) ?? true,
  };
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
  const v = parseFlags(TRAIN_COMMAND, Deno.args);
  if (v.help) {
    console.log(helpText(TRAIN_COMMAND));
    return;
  }
  if (v["eval-data"] && v["eval-split"]) {
    throw new UsageError("--eval-data and --eval-split exclude each other");
  }
  const { options, completionEos } = trainOptionsFromFlags(v, v.out!);
  const evalSplit = numberFlag("eval-split", v["eval-split"], (n) => n > 0 && n < 1, "a share in (0, 1)");

  const dir = await resolveModelSource(v.model!);
  const model = await loadModelFolder(dir);
  const maxLen = Math.min(options.seqLen, model.config.maxPositionEmbeddings);
  const dataOptions = {
    tokenizer: model.tokenizer,
    seqLen: maxLen,
    chatTemplate: v["chat-template"] ? await readChatTemplateFile(v["chat-template"]) : model.chatTemplate,
    completionEos,
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
        `kept ${summary.k_kept} of ${summary.candidate_sites} sites` +
        (summary.k_requested === null ? "" : ` (K = ${summary.k_requested})`) +
        `, ${summary.adapter_parameters} adapter parameters; final loss ${
          summary.final_train_loss?.toFixed(4)
        }` +
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
