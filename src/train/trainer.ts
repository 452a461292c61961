/**
 * The fine-tuning loop, the same for every method (each method is one file under `./methods/`: WeightLoRA,
 * budgeted WeightLoRA, WeightLoRA+, LoRA on every site, random sites) — with learning-rate schedules, gradient
 * accumulation, periodic evaluation, adapter snapshots, atomic checkpoints, exact resume, and the outputs
 * (PEFT adapter, `weightlora.json`, `train_log.jsonl`).
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { type AdapterSite, listAdapterSites, type LlamaModule } from "../models/sites.ts";
import type { PeftAdapter } from "../lora/peft.ts";
import { adapterParameterCount, type AdapterSiteState, initAdapter } from "../lora/adapter.ts";
import { writeFolderAtomic, writePeftAdapter } from "../lora/peft_export.ts";
import { encodeTrainingState, loadTrainingState } from "../autodiff/checkpoint.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { AdapterTrainer, type GateNorm, type TrainableSizes } from "./adapter_trainer.ts";
import type { BudgetScore } from "./methods/weightlora_budget.ts";
import { type Batch, BatchSampler, makeBatch, type SamplerState } from "./batches.ts";
import type { Dataset } from "./data.ts";
import { learningRate, type LrScheduleKind } from "./schedule.ts";
import { type MethodState, type Phase, trainingMethod } from "./methods/mod.ts";

export type { Phase } from "./methods/mod.ts";

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
  /** Draw batches of rows of similar length (less padding; the order within an epoch is less random). @default {false} */
  groupByLength?: boolean;
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
  /**
   * WeightLoRA's selection schedule: freeze the gates and drop the unselected sites after this many steps,
   * or `"all"` (the authors' schedule): gates trained and projected after every step of the run.
   */
  selectSteps: number | "all";
  /**
   * The authors' schedule: `simplex` bounds the kept gates ({w ≥ 0, Σw ≤ K}) and holds gated-off sites' A/B;
   * `none` leaves the gates unbounded as the authors do.
   */
  gateBound: "simplex" | "none";
  /**
   * The authors' schedule: a soft cap on each gate's SGD step (Δ → Δ / (1 + |Δ| / cap); 0: none), so a kept
   * gate cannot overshoot through 0 in one step and the kept set changes only by gates that decay.
   */
  gateMaxStep: number;
  /** Steps during which the gates are held at 1 while A and B train, before the first projection. */
  gateWarmup: number;
  /** Per-site normalisation of the gate gradient. */
  gateNorm: GateNorm;
  /** WeightLoRA: keep adapters totalling at most this many trainable parameters instead of K sites (null: K). */
  budget: number | null;
  /** Budgeted WeightLoRA: the score per parameter the budget is filled by. */
  budgetScore: BudgetScore;
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
  /** Sites that entered the kept set at this step's projection (only on steps where the kept set changed). */
  kept_in?: string[];
  /** Sites that left the kept set at this step's projection (only on steps where the kept set changed). */
  kept_out?: string[];
  /** Those sites' gates before the step and after its SGD step, before the projection (same steps). */
  kept_gates?: Record<string, [number, number]>;
}

/** Hooks for progress display and cancellation. */
export interface TrainEvents {
  /** Called after every step. */
  onStep?(record: StepRecord, total: number): void;
  /** Called with human-readable notes (phase changes, checkpoints). */
  onNote?(message: string): void;
  /** Stops the run after the current step (a checkpoint is saved first). */
  signal?: AbortSignal;
  /**
   * Steps after which the adapter as it is then (its surviving sites, gates folded in) is written as a PEFT
   * adapter to `<out>/snapshots/step-<N>/`, with `snapshot.json` (step, phase, sites, parameters, losses).
   */
  snapshotSteps?: readonly number[];
}

/** The `weightlora.json` summary. */
export interface TrainSummary {
  method: TrainMethod;
  /** Sites kept (= `k_kept`; null for LoRA, kept for older readers). */
  k: number | null;
  /** The K asked for (null: LoRA on every site, or a parameter budget). */
  k_requested: number | null;
  /** Sites the exported adapter has. */
  k_kept: number;
  /** The parameter budget asked for (null: none). */
  budget: number | null;
  /** The score the budget was filled by (null: no budget). */
  budget_score: BudgetScore | null;
  /** WeightLoRA's selection schedule (null for methods without one). */
  select_steps: number | "all" | null;
  /**
   * Projections that changed the kept set after the first one (null without trained gates): the churn of the
   * authors' schedule; each step's change is in `train_log.jsonl` (`kept_in`, `kept_out`).
   */
  kept_changes: number | null;
  /** Trainable parameters of the exported adapter. */
  adapter_parameters: number;
  candidate_sites: number;
  selected_sites: string[];
  ranks: Record<string, number>;
  gates: Record<string, Record<string, number>>;
  /**
   * What every gate step said about each site, summed over the run (empty without trained gates): the gate's
   * SGD movement and its Taylor score Σ −g·∂L/∂g.
   */
  gate_evidence: Record<string, { movement: number; taylor: number }>;
  phases: (TrainableSizes & { phase: Phase; from_step: number })[];
  final_train_loss: number | null;
  final_eval_loss: number | null;
  tokens_seen: number;
  wall_time_s: number;
  steps: number;
  execution_provider: string;
  stopped_early: boolean;
}

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
  /** Sites the last gate projection kept (absent before the first projection). */
  kept?: string[];
  /** The gates' accumulated evidence by site (absent in checkpoints written before it was kept). */
  evidence?: Record<string, { movement: number; taylor: number }>;
  /** Projections so far that changed the kept set (absent in older checkpoints). */
  keptChanges?: number;
  summary: Pick<TrainSummary, "gates" | "phases">;
  fingerprint: string;
}

const CHECKPOINT = "checkpoint";

function fingerprint(options: TrainOptions, inputs: TrainInputs): string {
  const { out: _out, evalEvery: _e, saveEvery: _s, ep: _ep, gateMaxStep, ...rest } = options;
  // the gate-step cap counts only where it acts, so checkpoints made before it existed still resume
  const cap = options.selectSteps === "all" && gateMaxStep > 0 ? { gateMaxStep } : {};
  return JSON.stringify({ ...rest, ...cap, model: inputs.model.id, rows: inputs.train.examples.length });
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
  return initAdapter(candidates, {
    rank: options.rank,
    alpha: options.alpha,
    rslora: options.rslora,
    seed: options.seed,
  });
}

/** Checks option ranges that no method owns. */
function validate(options: TrainOptions): void {
  if (!((options.dropout ?? 0) >= 0 && (options.dropout ?? 0) < 1)) {
    throw new RangeError(`Cannot train with --dropout ${options.dropout}: it must be in [0, 1)`);
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

/** The options that are new since a run could be saved: a job stored before them gets these values. */
const LATER_OPTIONS: Pick<
  TrainOptions,
  | "gateWarmup"
  | "gateNorm"
  | "budget"
  | "budgetScore"
  | "gateBound"
  | "groupByLength"
  | "gateMaxStep"
> = {
  gateMaxStep: 0,
  gateBound: "none",
  gateWarmup: 0,
  gateNorm: "none",
  budget: null,
  budgetScore: "gate",
  groupByLength: false,
};

/**
 * Runs a training job to completion (or until `events.signal` aborts), writing the outputs to
 * `options.out`.
 *
 * @param inputs Model, data, optional init adapter or checkpoint.
 * @param options Method and hyper-parameters.
 * @param events Progress callbacks, snapshots and cancellation.
 * @returns The run's summary (also written as `weightlora.json`).
 * @throws {TrainOptionError} When an option does not fit the model or another option.
 * @throws {Error} On a NaN/Inf loss (the last good checkpoint is kept), or I/O failures.
 */
export async function train(
  inputs: TrainInputs,
  options: TrainOptions,
  events: TrainEvents = {},
): Promise<TrainSummary> {
  // old job rows may say "randlora" and lack the later options
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  options = { ...LATER_OPTIONS, ...given, method: trainMethod(options.method) } as TrainOptions;
  const started = performance.now();
  const note = (m: string) => events.onNote?.(m);
  const candidates = candidateSites(inputs, options);
  const n = candidates.length;
  const method = trainingMethod(options);
  validate(options);
  const fresh = initialSites(inputs, options, candidates);
  method.validate(options, fresh, inputs.initAdapter !== undefined);
  const sampler = new BatchSampler(inputs.train.examples, options.seed, {
    groupByLength: options.groupByLength ? options.batchSize : 0,
  });
  const padId = inputs.model.config.eosTokenIds[0] ?? 0;
  const batchShape = {
    batchSize: options.batchSize,
    seqLen: options.seqLen,
    padId,
    padTo: "longest" as const,
  };

  let sites = method.initialSites(fresh, options);
  let state: MethodState = method.start(options, n);
  let kept: string[] | undefined;
  let evidence: CheckpointState["evidence"];
  let keptChanges = 0;
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
    state = { phase: s.phase, k: s.k, growRound: s.growRound };
    ({ step, tokensSeen, lastLoss, kept, evidence } = s);
    keptChanges = s.keptChanges ?? 0;
    elapsedBefore = s.elapsed;
    sampler.state = s.sampler;
    Object.assign(summary, structuredClone(s.summary));
    note(
      `Resuming at step ${step} (${state.phase} phase, ${sites.filter((x) => x.active).length} active sites)`,
    );
  }

  const trainer = await AdapterTrainer.create({
    model: inputs.model,
    sites,
    trainableGates: method.gatesTrainable(state),
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
    kept,
    evidence,
  });
  if (resumed) await trainer.loadState(resumed.tensors.state);
  let recordedPhase = resumed ? summary.phases.at(-1) : undefined;
  const recordPhase = () => {
    const sizes = trainer.sizes;
    const last = recordedPhase;
    if (last && last.phase === state.phase && last.activeSites === sizes.activeSites) return;
    summary.phases.push(recordedPhase = { phase: state.phase, from_step: step + 1, ...sizes });
  };
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
    await trainer.syncGates(); // gates stepped in the optimizer graph are read here, not every step
    const saved: CheckpointState = {
      version: 1,
      step,
      phase: state.phase,
      k: state.k,
      growRound: state.growRound,
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
      kept: trainer.kept,
      evidence: trainer.gateEvidence,
      keptChanges,
      summary,
      fingerprint: print,
    };
    await writeFolderAtomic(`${options.out}/${CHECKPOINT}`, {
      "trainer_state.json": JSON.stringify(saved, null, 1) + "\n",
      "training_state.safetensors": encodeTrainingState(await trainer.state()),
    });
    note(`Saved checkpoint at step ${step}`);
  };
  const exportOptions = { baseModel: inputs.model.id, rslora: options.rslora, dropout: options.dropout };
  const snapshotSteps = new Set(events.snapshotSteps ?? []);
  const snapshot = async (record: StepRecord) => {
    await trainer.sync();
    const survivors = trainer.survivors();
    await writePeftAdapter(`${options.out}/snapshots/step-${step}`, survivors, exportOptions, {
      "snapshot.json": JSON.stringify(
        {
          step,
          phase: state.phase,
          selected_sites: survivors.map((s) => s.site.name),
          gates: Object.fromEntries(survivors.map((s) => [s.site.name, s.gate])),
          adapter_parameters: adapterParameterCount(survivors),
          train_loss: record.loss,
          eval_loss: record.eval_loss ?? null,
        },
        null,
        2,
      ) + "\n",
    });
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
    const gates = method.gateUpdate(state, step, options);
    // the gates follow the same schedule (warmup, decay) as A and B
    if (gates) gates.lr *= lr / options.lr;
    const { gradNorm, keptChange } = await trainer.applyGradients(lr, gates);
    if (keptChange) keptChanges++;
    const tokens = micro.reduce((s, b) => s + b.tokens, 0);
    tokensSeen += tokens;
    lastLoss = loss;

    // the method's structural move (freeze and drop, grow)
    const before = state;
    state = await method.afterStep({
      step,
      options,
      state,
      trainer,
      candidates: n,
      recordGates: (label) => (summary.gates[label] = gatesOf(trainer.sites)),
      recordScores: (label) => {
        const scores = trainer.gateScores;
        if (scores) summary.gates[label] = scores;
      },
      note,
    });
    if (state !== before) recordPhase();

    const record: StepRecord = {
      step,
      loss,
      lr,
      grad_norm: gradNorm,
      tokens_per_s: tokens / ((performance.now() - t0) / 1000),
      elapsed: elapsed(),
      phase: state.phase,
      active: trainer.sizes.activeSites,
      ...(keptChange
        ? { kept_in: keptChange.entered, kept_out: keptChange.left, kept_gates: keptChange.gates }
        : {}),
    };
    if (
      evalBatches.length &&
      ((options.evalEvery > 0 && step % options.evalEvery === 0) || step === options.steps ||
        snapshotSteps.has(step))
    ) {
      record.eval_loss = lastEval = await trainer.evalLoss(evalBatches);
    }
    await Deno.writeTextFile(logPath, JSON.stringify(record) + "\n", { append: true });
    if (snapshotSteps.has(step)) await snapshot(record);
    events.onStep?.(record, options.steps);
    if ((options.saveEvery > 0 && step % options.saveEvery === 0) || step === options.steps) {
      await saveCheckpoint();
    }
  }
  if (stoppedEarly) await saveCheckpoint();

  await trainer.sync();
  summary.gates.final = gatesOf(trainer.sites);
  const survivors = trainer.survivors();
  const result: TrainSummary = {
    method: options.method,
    k: options.method === "lora" ? null : survivors.length,
    k_requested: method.kRequested(options, n),
    k_kept: survivors.length,
    budget: options.method === "weightlora" ? options.budget : null,
    budget_score: options.method === "weightlora" && options.budget !== null ? options.budgetScore : null,
    select_steps: options.method === "weightlora" ? options.selectSteps : null,
    kept_changes: method.gatesTrainable(method.start(options, n)) ? keptChanges : null,
    adapter_parameters: adapterParameterCount(survivors),
    candidate_sites: n,
    selected_sites: survivors.map((s) => s.site.name),
    ranks: Object.fromEntries(survivors.map((s) => [s.site.name, s.rank])),
    gates: summary.gates,
    gate_evidence: trainer.gateEvidence,
    phases: summary.phases,
    final_train_loss: lastLoss,
    final_eval_loss: lastEval,
    tokens_seen: tokensSeen,
    wall_time_s: elapsed(),
    steps: step,
    execution_provider: trainer.ep,
    stopped_early: stoppedEarly,
  };
  await writePeftAdapter(`${options.out}/adapter`, survivors, exportOptions);
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
