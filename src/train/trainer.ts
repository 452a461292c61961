/**
 * The fine-tuning loop: WeightLoRA (select K sites with gates, freeze, drop the rest), WeightLoRA+ (grow
 * ranks while halving K), LoRA on every site and RandLoRA (K random sites) as baselines — with learning-rate
 * schedules, gradient accumulation, periodic evaluation, atomic checkpoints, exact resume, and the outputs
 * (PEFT adapter, `weightlora.json`, `train_log.jsonl`).
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { type AdapterSite, listAdapterSites, type LlamaModule } from "../models/sites.ts";
import type { PeftAdapter } from "../lora/peft.ts";
import { type AdapterSiteState, initAdapter, purposePrng } from "../lora/adapter.ts";
import { writeFolderAtomic, writePeftAdapter } from "../lora/peft_export.ts";
import { encodeTrainingState, loadTrainingState } from "../autodiff/checkpoint.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { AdapterTrainer, type TrainableSizes } from "./adapter_trainer.ts";
import { type Batch, BatchSampler, makeBatch, type SamplerState } from "./batches.ts";
import type { Dataset } from "./data.ts";
import { learningRate, type LrScheduleKind } from "./schedule.ts";

/**
 * Training methods. `random-sites` is the baseline of the WeightLoRA paper's comparison: plain LoRA on K
 * sites drawn at random from the seed (not the published RandLoRA method, which trains full-rank updates
 * from random bases; `randlora` is still accepted as an alias by {@linkcode trainMethod}).
 */
export type TrainMethod = "weightlora" | "weightlora-plus" | "lora" | "random-sites";

/** Every {@linkcode TrainMethod}, in the order the docs list them. */
export const TRAIN_METHODS: readonly TrainMethod[] = [
  "weightlora",
  "weightlora-plus",
  "lora",
  "random-sites",
];

/**
 * Resolves a method name, accepting the old name `randlora` for `random-sites`.
 *
 * @param name A method name.
 * @returns The method.
 * @throws {RangeError} When the name is not a method.
 * @example
 * ```ts
 * import { trainMethod } from "./trainer.ts";
 * console.assert(trainMethod("randlora") === "random-sites");
 * ```
 */
export function trainMethod(name: string): TrainMethod {
  if (name === "randlora") return "random-sites";
  if (!(TRAIN_METHODS as readonly string[]).includes(name)) {
    throw new RangeError(`Unknown training method ${JSON.stringify(name)}: use ${TRAIN_METHODS.join(", ")}`);
  }
  return name as TrainMethod;
}

/** Every option of a training run (the CLI's flags, camelCased). */
export interface TrainOptions {
  /** Method. */
  method: TrainMethod;
  /** Sites to keep (weightlora, random-sites). */
  k: number;
  /** LoRA rank. */
  rank: number;
  /** LoRA alpha. */
  alpha: number;
  /** Scale by alpha/√r instead of alpha/r. */
  rslora: boolean;
  /** LoRA dropout probability on each adapted layer's input (0 disables). @default {0} */
  dropout?: number;
  /** Candidate modules. */
  targetModules: LlamaModule[];
  /** Optimizer steps. */
  steps: number;
  /** Rows per micro-batch. */
  batchSize: number;
  /** Tokens per row. */
  seqLen: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Update rule of A and B. */
  optimizer: "adamw" | "sgd";
  /** Peak learning rate of A and B. */
  lr: number;
  /** Learning rate of the gates (SGD). */
  lrGates: number;
  /** Weight decay of A and B. */
  weightDecay: number;
  /** Learning-rate schedule. */
  lrSchedule: LrScheduleKind;
  /** Warmup steps. */
  warmupSteps: number;
  /** Global gradient-norm clipping (0 disables). */
  maxGradNorm: number;
  /** WeightLoRA phase-1 steps. */
  selectSteps: number;
  /** Re-initialise survivors' A/B and the optimizer after selection. */
  reinitSurvivors: boolean;
  /** WeightLoRA+: steps between growth rounds. */
  growEvery: number;
  /** WeightLoRA+: growth rounds. */
  growRounds: number;
  /** Evaluate every N steps (0: only at the end). */
  evalEvery: number;
  /** Checkpoint every N steps (0: only at the end). */
  saveEvery: number;
  /** Seed of initialisation, shuffling and random site choice. */
  seed: number;
  /** Execution provider. */
  ep: ExecutionProviderChoice;
  /** Output folder. */
  out: string;
}

/** What a run trains on. */
export interface TrainInputs {
  /** Base model (id, config, weights). */
  model: { id: string; config: LlamaConfig; weights: LlamaWeights };
  /** Training rows. */
  train: Dataset;
  /** Evaluation rows. */
  eval?: Dataset;
  /** Start from this adapter (its sites, ranks and scales). */
  initAdapter?: PeftAdapter;
  /** Continue from this checkpoint folder. */
  resume?: string;
}

/** One step's record (a line of `train_log.jsonl`). */
export interface StepRecord {
  /** Step number (1-based). */
  step: number;
  /** Mean token loss of the step's batch. */
  loss: number;
  /** Learning rate of A and B. */
  lr: number;
  /** Gradient norm before clipping. */
  grad_norm: number;
  /** Training tokens per second over this step. */
  tokens_per_s: number;
  /** Seconds since the run started (across resumes). */
  elapsed: number;
  /** Phase. */
  phase: Phase;
  /** Active sites. */
  active: number;
  /** Evaluation loss, on steps that evaluated. */
  eval_loss?: number;
}

/** Hooks for progress display and cancellation. */
export interface TrainEvents {
  /** Called after every step. */
  onStep?(record: StepRecord, total: number): void;
  /** Called with human-readable notes (phase changes, checkpoints). */
  onNote?(message: string): void;
  /** Stops the run after the current step (a checkpoint is saved first). */
  signal?: AbortSignal;
}

/** The `weightlora.json` summary. */
export interface TrainSummary {
  method: TrainMethod;
  k: number | null;
  candidate_sites: number;
  selected_sites: string[];
  ranks: Record<string, number>;
  gates: Record<string, Record<string, number>>;
  phases: (TrainableSizes & { phase: Phase; from_step: number })[];
  final_train_loss: number | null;
  final_eval_loss: number | null;
  tokens_seen: number;
  wall_time_s: number;
  steps: number;
  execution_provider: string;
  stopped_early: boolean;
}

/** Training phases. */
export type Phase = "select" | "grow" | "train";

interface CheckpointState {
  version: 1;
  step: number;
  phase: Phase;
  k: number;
  growRound: number;
  sampler: SamplerState;
  elapsed: number;
  tokensSeen: number;
  lastLoss: number | null;
  sites: { name: string; rank: number; scale: number; gate: number; active: boolean }[];
  summary: Pick<TrainSummary, "gates" | "phases">;
  fingerprint: string;
}

const CHECKPOINT = "checkpoint";

function fingerprint(options: TrainOptions, inputs: TrainInputs): string {
  const { out: _out, evalEvery: _e, saveEvery: _s, ep: _ep, ...rest } = options;
  return JSON.stringify({ ...rest, model: inputs.model.id, rows: inputs.train.examples.length });
}

/** Candidate sites for the run: the init adapter's sites, or every site of the target modules. */
function candidateSites(inputs: TrainInputs, options: TrainOptions): AdapterSite[] {
  const all = listAdapterSites(inputs.model.config);
  if (inputs.initAdapter) return all.filter((s) => inputs.initAdapter!.sites.has(s.name));
  const sites = all.filter((s) => options.targetModules.includes(s.module));
  if (sites.length === 0) {
    throw new Error(
      `Cannot train: target modules ${options.targetModules.join(", ")} match no layer of the model`,
    );
  }
  return sites;
}

function initialSites(
  inputs: TrainInputs,
  options: TrainOptions,
  candidates: AdapterSite[],
): AdapterSiteState[] {
  if (inputs.initAdapter) {
    return candidates.map((site) => {
      const t = inputs.initAdapter!.sites.get(site.name)!;
      return {
        site,
        rank: t.rank,
        scale: t.scale,
        gate: 1,
        active: true,
        a: Float32Array.from(t.a),
        b: Float32Array.from(t.b),
      };
    });
  }
  const sites = initAdapter(candidates, {
    rank: options.rank,
    alpha: options.alpha,
    rslora: options.rslora,
    seed: options.seed,
  });
  if (options.method === "random-sites") {
    // K random sites by seed (a seeded partial Fisher–Yates), gates frozen at 1
    const prng = purposePrng(options.seed, "randlora", 0); // the old name: the same seed keeps its sites
    const order = sites.map((_, i) => i);
    for (let i = 0; i < options.k; i++) {
      const j = i + (prng.nextUint32() % (order.length - i));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const chosen = new Set(order.slice(0, options.k));
    sites.forEach((s, i) => {
      if (!chosen.has(i)) {
        Object.assign(s, { active: false, gate: 0, a: new Float32Array(), b: new Float32Array() });
      }
    });
  }
  return sites;
}

/** Checks option ranges that depend on the model (K within 1..n and the like). */
function validate(options: TrainOptions, n: number): void {
  const needsK = options.method === "weightlora" || options.method === "random-sites";
  if (needsK && (!Number.isInteger(options.k) || options.k < 1 || options.k > n)) {
    throw new RangeError(
      `Cannot train with --k ${options.k}: K must be an integer in 1..${n} (the number of candidate sites)`,
    );
  }
  if (!((options.dropout ?? 0) >= 0 && (options.dropout ?? 0) < 1)) {
    throw new RangeError(`Cannot train with --dropout ${options.dropout}: it must be in [0, 1)`);
  }
  if (options.method === "weightlora" && options.selectSteps >= options.steps) {
    throw new RangeError(
      `Cannot train: --select-steps ${options.selectSteps} must be below --steps ${options.steps}`,
    );
  }
  if (options.method === "weightlora-plus" && n >> options.growRounds < 1) {
    throw new RangeError(`Cannot train: ${options.growRounds} growth rounds would halve ${n} sites below 1`);
  }
}

function gatesOf(sites: readonly AdapterSiteState[]): Record<string, number> {
  return Object.fromEntries(sites.map((s) => [s.site.name, s.gate]));
}

async function readCheckpoint(
  dir: string,
): Promise<{ state: CheckpointState; tensors: Awaited<ReturnType<typeof loadTrainingState>> }> {
  let json: CheckpointState;
  try {
    json = JSON.parse(await Deno.readTextFile(`${dir}/trainer_state.json`));
  } catch (e) {
    throw new Error(`Cannot resume from "${dir}": ${(e as Error).message}`);
  }
  if (json.version !== 1) {
    throw new Error(`Cannot resume from "${dir}": unknown checkpoint version ${json.version}`);
  }
  return { state: json, tensors: await loadTrainingState(`${dir}/training_state.safetensors`) };
}

/**
 * Runs a training job to completion (or until `events.signal` aborts), writing the outputs to
 * `options.out`.
 *
 * @param inputs Model, data, optional init adapter or checkpoint.
 * @param options Method and hyper-parameters.
 * @param events Progress callbacks and cancellation.
 * @returns The run's summary (also written as `weightlora.json`).
 * @throws {Error} On bad options, a NaN/Inf loss (the last good checkpoint is kept), or I/O failures.
 */
export async function train(
  inputs: TrainInputs,
  options: TrainOptions,
  events: TrainEvents = {},
): Promise<TrainSummary> {
  options = { ...options, method: trainMethod(options.method) }; // old job rows may say "randlora"
  const started = performance.now();
  const note = (m: string) => events.onNote?.(m);
  const candidates = candidateSites(inputs, options);
  validate(options, candidates.length);
  const n = candidates.length;
  const sampler = new BatchSampler(inputs.train.examples, options.seed);
  const padId = inputs.model.config.eosTokenIds[0] ?? 0;
  const batchShape = { batchSize: options.batchSize, seqLen: options.seqLen, padId };

  let sites = initialSites(inputs, options, candidates);
  let phase: Phase = options.method === "weightlora"
    ? "select"
    : options.method === "weightlora-plus"
    ? "grow"
    : "train";
  let k = options.method === "weightlora-plus" ? n : options.method === "lora" ? n : options.k;
  let growRound = 0;
  let step = 0;
  let elapsedBefore = 0;
  let tokensSeen = 0;
  let lastLoss: number | null = null;
  const summary: Pick<TrainSummary, "gates" | "phases"> = { gates: {}, phases: [] };
  const print = fingerprint(options, inputs);

  let resumed: Awaited<ReturnType<typeof readCheckpoint>> | undefined;
  if (inputs.resume) {
    resumed = await readCheckpoint(inputs.resume);
    const s = resumed.state;
    if (s.fingerprint !== print) {
      throw new Error(`Cannot resume from "${inputs.resume}": it was made with other options, model or data`);
    }
    const byName = new Map(s.sites.map((x) => [x.name, x]));
    sites = candidates.map((site) => {
      const saved = byName.get(site.name);
      if (!saved) {
        throw new Error(`Cannot resume from "${inputs.resume}": it has no state for site ${site.name}`);
      }
      return {
        site,
        rank: saved.rank,
        scale: saved.scale,
        gate: saved.gate,
        active: saved.active,
        a: new Float32Array(),
        b: new Float32Array(),
      };
    });
    for (const x of sites) {
      if (!x.active) continue;
      const factor = (name: string) => {
        const tensor = resumed!.tensors.state.tensors[name];
        if (!tensor) {
          throw new Error(
            `Cannot resume from "${inputs.resume}": training_state.safetensors has no "${name}"`,
          );
        }
        return tensor.data;
      };
      x.a = factor(`${x.site.name}.lora_A`);
      x.b = factor(`${x.site.name}.lora_B`);
    }
    ({ phase, k, growRound, step, tokensSeen, lastLoss } = s);
    elapsedBefore = s.elapsed;
    sampler.state = s.sampler;
    Object.assign(summary, structuredClone(s.summary));
    note(`Resuming at step ${step} (${phase} phase, ${sites.filter((x) => x.active).length} active sites)`);
  }

  const trainer = await AdapterTrainer.create({
    model: inputs.model,
    sites,
    trainableGates: phase !== "train" && options.method !== "lora" && options.method !== "random-sites",
    batchSize: options.batchSize,
    seqLen: options.seqLen,
    optimizer: {
      kind: options.optimizer,
      weightDecay: options.weightDecay,
      maxGradNorm: options.maxGradNorm,
    },
    ep: options.ep,
    gradientAccumulation: options.gradAccum > 1,
    dropout: options.dropout,
    seed: options.seed,
  });
  if (resumed) await trainer.loadState(resumed.tensors.state);
  const recordPhase = () => summary.phases.push({ phase, from_step: step + 1, ...trainer.sizes });
  if (!resumed) recordPhase();
  note(
    `Training ${options.method} on ${trainer.ep}: ${trainer.sizes.activeSites}/${n} sites, ` +
      `${trainer.sizes.parameters} trainable parameters`,
  );

  const evalBatches: Batch[] = [];
  if (inputs.eval) {
    for (let i = 0; i < inputs.eval.examples.length; i += options.batchSize) {
      evalBatches.push(makeBatch(inputs.eval.examples.slice(i, i + options.batchSize), batchShape));
    }
  }
  const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;
  const logPath = `${options.out}/train_log.jsonl`;
  await Deno.mkdir(options.out, { recursive: true });
  await trimLog(logPath, step);

  const saveCheckpoint = async () => {
    const state: CheckpointState = {
      version: 1,
      step,
      phase,
      k,
      growRound,
      sampler: sampler.state,
      elapsed: elapsed(),
      tokensSeen,
      lastLoss,
      sites: trainer.sites.map((s) => ({
        name: s.site.name,
        rank: s.rank,
        scale: s.scale,
        gate: s.gate,
        active: s.active,
      })),
      summary,
      fingerprint: print,
    };
    await writeFolderAtomic(`${options.out}/${CHECKPOINT}`, {
      "trainer_state.json": JSON.stringify(state, null, 1) + "\n",
      "training_state.safetensors": encodeTrainingState(await trainer.state()),
    });
    note(`Saved checkpoint at step ${step}`);
  };

  let stoppedEarly = false;
  let lastEval: number | null = null;
  while (step < options.steps) {
    if (events.signal?.aborted) {
      stoppedEarly = true;
      break;
    }
    const t0 = performance.now();
    const micro = Array.from(
      { length: options.gradAccum },
      () => makeBatch(sampler.next(options.batchSize), batchShape),
    );
    const loss = await trainer.trainStep(micro, step + 1);
    if (!Number.isFinite(loss)) {
      throw new Error(
        `Training stopped: the loss is ${loss} at step ${step + 1}; the last good checkpoint is in ` +
          `${options.out}/${CHECKPOINT} (lower --lr or raise --max-grad-norm)`,
      );
    }
    step++;
    const lr = learningRate(step, {
      lr: options.lr,
      schedule: options.lrSchedule,
      warmupSteps: options.warmupSteps,
      totalSteps: options.steps,
    });
    const { gradNorm } = await trainer.applyGradients({ lr, lrGates: options.lrGates }, k);
    const tokens = micro.reduce((s, b) => s + b.tokens, 0);
    tokensSeen += tokens;
    lastLoss = loss;

    // structural moves of the method
    if (phase === "select" && step === options.selectSteps) {
      await trainer.sync();
      summary.gates.after_selection = gatesOf(trainer.sites);
      const dropped = await trainer.freezeGates({
        reinitSurvivors: options.reinitSurvivors,
        seed: options.seed,
      });
      phase = "train";
      recordPhase();
      note(
        `Selection done at step ${step}: kept ${trainer.sizes.activeSites} sites, dropped ${dropped.length}`,
      );
    } else if (phase === "grow" && step % options.growEvery === 0 && growRound < options.growRounds) {
      growRound++;
      k = Math.max(1, n >> growRound);
      await trainer.projectGates(k);
      const dropped = await trainer.dropZeroGates("reset");
      await trainer.doubleRanks(growRound, options.seed);
      summary.gates[`after_round_${growRound}`] = gatesOf(trainer.sites);
      note(`Growth round ${growRound} at step ${step}: K = ${k}, dropped ${dropped.length}, ranks doubled`);
      if (growRound === options.growRounds) {
        await trainer.freezeGates({ reinitSurvivors: false, seed: options.seed });
        phase = "train";
        note(`Gates frozen after ${growRound} growth rounds`);
      }
      recordPhase();
    }

    const record: StepRecord = {
      step,
      loss,
      lr,
      grad_norm: gradNorm,
      tokens_per_s: tokens / ((performance.now() - t0) / 1000),
      elapsed: elapsed(),
      phase,
      active: trainer.sizes.activeSites,
    };
    if (
      evalBatches.length &&
      ((options.evalEvery > 0 && step % options.evalEvery === 0) || step === options.steps)
    ) {
      record.eval_loss = lastEval = await trainer.evalLoss(evalBatches);
    }
    await Deno.writeTextFile(logPath, JSON.stringify(record) + "\n", { append: true });
    events.onStep?.(record, options.steps);
    if ((options.saveEvery > 0 && step % options.saveEvery === 0) || step === options.steps) {
      await saveCheckpoint();
    }
  }
  if (stoppedEarly) await saveCheckpoint();

  await trainer.sync();
  summary.gates.final = gatesOf(trainer.sites);
  const active = trainer.sites.filter((s) => s.active);
  const result: TrainSummary = {
    method: options.method,
    k: options.method === "lora" ? null : active.length,
    candidate_sites: n,
    selected_sites: active.map((s) => s.site.name),
    ranks: Object.fromEntries(active.map((s) => [s.site.name, s.rank])),
    gates: summary.gates,
    phases: summary.phases,
    final_train_loss: lastLoss,
    final_eval_loss: lastEval,
    tokens_seen: tokensSeen,
    wall_time_s: elapsed(),
    steps: step,
    execution_provider: trainer.ep,
    stopped_early: stoppedEarly,
  };
  await writePeftAdapter(`${options.out}/adapter`, trainer.sites, {
    baseModel: inputs.model.id,
    rslora: options.rslora,
    dropout: options.dropout,
  });
  await promoteAdapter(options.out);
  await Deno.writeTextFile(`${options.out}/weightlora.json.tmp`, JSON.stringify(result, null, 2) + "\n");
  await Deno.rename(`${options.out}/weightlora.json.tmp`, `${options.out}/weightlora.json`);
  await trainer.release();
  return result;
}

/** Moves the freshly written `adapter/` files to the top of the output folder (each by an atomic rename). */
async function promoteAdapter(out: string): Promise<void> {
  for (const name of ["adapter_config.json", "adapter_model.safetensors"]) {
    await Deno.rename(`${out}/adapter/${name}`, `${out}/${name}`);
  }
  await Deno.remove(`${out}/adapter`, { recursive: true });
}

/** Drops log lines past `step` (a resumed run re-logs the steps after its checkpoint). */
async function trimLog(path: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  const kept = text.split("\n").filter((line) => line && (JSON.parse(line) as StepRecord).step <= step);
  await Deno.writeTextFile(path, kept.map((l) => l + "\n").join(""));
}
