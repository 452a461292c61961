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
import { LLAMA_MODULES, type LlamaModule } from "../models/sites.ts";
import { type Dataset, loadJsonl, splitDataset } from "../train/data.ts";
import { type StepRecord, train, TRAIN_METHODS, trainMethod, type TrainOptions } from "../train/trainer.ts";
import { GATE_NORMS } from "../train/adapter_trainer.ts";
import { TRAIN_DEFAULTS as D, withTrainDefaults } from "../train/options.ts";
import { readChatTemplateFile } from "../io/chat_template.ts";
import { nonNegative, nonNegativeInt, numberFlag, oneOf, positiveInt, runCli, UsageError } from "./_args.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

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
      name: "no-completion-eos",
      type: "boolean",
      group: "Model and data",
      doc: 'Do not end {"prompt","completion"} rows with EOS (for models that never learned EOS, such as ' +
        "llama2.c's TinyStories models).",
    },
    {
      name: "chat-template",
      value: "FILE",
      group: "Model and data",
      defaultText: "the model's, else the plain User:/Assistant: transcript",
      doc: 'A Jinja chat template for {"messages"} rows.',
    },
    {
      name: "method",
      value: "M",
      default: D.method,
      group: "Method",
      doc: "weightlora | weightlora-plus | lora | random-sites (LoRA on K sites drawn at random; " +
        "randlora is an alias).",
    },
    {
      name: "k",
      value: "K",
      defaultText: `${D.k} (unless --budget)`,
      group: "Method",
      doc: "Sites to keep (weightlora, random-sites), 1..number of candidate sites.",
    },
    {
      name: "budget",
      value: "P",
      group: "Method",
      doc:
        "WeightLoRA: instead of --k, keep the sites with the best gate per parameter whose adapters total " +
        "at most P trainable parameters.",
    },
    {
      name: "select-steps",
      value: "T|all",
      defaultText: "max(2, steps / 10)",
      group: "Method",
      doc:
        "WeightLoRA selection: gates trained and projected onto K for T steps, then frozen and the other " +
        "sites dropped (phase 2 trains K adapters only); `all`: the authors' schedule, gates trained and " +
        "projected after every step of the run (dropped sites may return), the K survivors exported.",
    },
    {
      name: "gate-warmup",
      value: "W",
      default: D.gateWarmup,
      group: "Method",
      doc: "WeightLoRA, WeightLoRA+: hold the gates at 1 for W steps while A and B train, then select.",
    },
    {
      name: "gate-norm",
      value: "N",
      default: D.gateNorm,
      group: "Method",
      doc: "WeightLoRA, WeightLoRA+: per-site normalisation of the gate gradient: none | params (by the " +
        "adapter's parameter count) | rms (by the norm of its update B·A); both remove the width bias of " +
        "early selection.",
    },
    {
      name: "lr-gates",
      value: "LR",
      default: D.lrGates,
      group: "Method",
      doc: "Learning rate of the gates (plain SGD).",
    },
    {
      name: "reinit-survivors",
      type: "boolean",
      group: "Method",
      doc: "After selection, re-initialise the survivors' A/B and restart the optimizer.",
    },
    {
      name: "grow-every",
      value: "F",
      default: D.growEvery,
      group: "Method",
      doc: "WeightLoRA+: steps between rank doublings.",
    },
    {
      name: "grow-rounds",
      value: "M",
      default: D.growRounds,
      group: "Method",
      doc: "WeightLoRA+: doublings (K halves each time, from all sites).",
    },
    {
      name: "target-modules",
      value: "LIST",
      default: "all",
      group: "Adapter",
      doc: `Candidate modules, comma-separated from ${LLAMA_MODULES.join(",")}.`,
    },
    { name: "rank", value: "R", default: D.rank, group: "Adapter", doc: "LoRA rank." },
    { name: "alpha", value: "A", default: D.alpha, group: "Adapter", doc: "LoRA alpha (scale alpha/r)." },
    { name: "rslora", type: "boolean", group: "Adapter", doc: "Scale by alpha/√r instead." },
    {
      name: "dropout",
      value: "P",
      default: D.dropout,
      group: "Adapter",
      doc: "LoRA dropout on each adapted layer's input, in [0, 1).",
    },
    { name: "steps", value: "N", default: D.steps, group: "Optimisation", doc: "Optimizer steps." },
    {
      name: "batch-size",
      value: "B",
      default: D.batchSize,
      group: "Optimisation",
      doc: "Rows per micro-batch.",
    },
    {
      name: "seq-len",
      value: "L",
      default: D.seqLen,
      group: "Optimisation",
      doc: "Tokens per row (longer rows are truncated; shorter data shrinks it).",
    },
    {
      name: "grad-accum",
      value: "G",
      default: D.gradAccum,
      group: "Optimisation",
      doc: "Micro-batches per optimizer step.",
    },
    {
      name: "optimizer",
      value: "O",
      default: D.optimizer,
      group: "Optimisation",
      doc: "adamw | sgd (for A and B).",
    },
    { name: "lr", value: "LR", default: D.lr, group: "Optimisation", doc: "Peak learning rate of A and B." },
    {
      name: "weight-decay",
      value: "W",
      default: D.weightDecay,
      group: "Optimisation",
      doc: "Weight decay of A and B.",
    },
    {
      name: "lr-schedule",
      value: "S",
      default: D.lrSchedule,
      group: "Optimisation",
      doc: "constant | linear | cosine.",
    },
    {
      name: "warmup-steps",
      value: "N",
      default: D.warmupSteps,
      group: "Optimisation",
      doc: "Linear warmup steps.",
    },
    {
      name: "max-grad-norm",
      value: "X",
      default: D.maxGradNorm,
      group: "Optimisation",
      doc: "Clip the global gradient norm of A and B; 0 disables.",
    },
    {
      name: "seed",
      value: "S",
      default: D.seed,
      group: "Optimisation",
      doc: "Seed of initialisation, shuffling and random sites.",
    },
    {
      name: "eval-every",
      value: "N",
      default: D.evalEvery,
      group: "Run",
      doc: "Evaluate every N steps (0: at the end only).",
    },
    {
      name: "save-every",
      value: "N",
      default: D.saveEvery,
      group: "Run",
      doc: "Checkpoint every N steps (0: at the end only).",
    },
    {
      name: "ep",
      value: "E",
      default: D.ep,
      group: "Run",
      doc: "Execution provider: auto (WebGPU on a hardware adapter, else wasm), wasm or webgpu.",
    },
  ],
  footer:
    "Progress: a bar on a terminal (step/total, loss, tokens/s, ETA, phase, active adapters); plain lines otherwise.",
});

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
  const v = parseFlags(TRAIN_COMMAND, Deno.args);
  if (v.help) {
    console.log(helpText(TRAIN_COMMAND));
    return;
  }
  if (v["eval-data"] && v["eval-split"]) {
    throw new UsageError("--eval-data and --eval-split exclude each other");
  }
  if (v.budget !== undefined && v.k !== undefined) {
    throw new UsageError(
      "--k and --budget exclude each other: give the sites to keep or their parameter budget",
    );
  }
  const options: TrainOptions = withTrainDefaults({
    method: trainMethod(oneOf("method", v.method, [...TRAIN_METHODS, "randlora"] as const, D.method)),
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
      : v["select-steps"] === "all"
      ? "all"
      : numberFlag("select-steps", v["select-steps"], (n) =>
        Number.isInteger(n) && n > 0, '"all" or a positive integer'),
    gateWarmup: nonNegativeInt("gate-warmup", v["gate-warmup"], D.gateWarmup),
    gateNorm: oneOf("gate-norm", v["gate-norm"], GATE_NORMS, D.gateNorm),
    budget: v.budget === undefined ? null : positiveInt("budget", v.budget, 1),
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
    chatTemplate: v["chat-template"] ? await readChatTemplateFile(v["chat-template"]) : model.chatTemplate,
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
