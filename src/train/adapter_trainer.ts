/**
 * {@linkcode AdapterTrainer}: trains a gated LoRA adapter on a Llama model through a {@linkcode TrainingSession},
 * and performs WeightLoRA's structural moves between steps — the gates' SGD step (optionally with a per-site
 * gradient normalisation) and their projection onto a kept set (top K or a parameter budget), freezing them
 * and dropping the sites outside the kept set (the graph is rebuilt without them: no parameters, no optimizer
 * state, no compute), and WeightLoRA+'s function-preserving rank doubling.
 *
 * The gates' step and a top-K projection run in the optimizer graph (`GateUpdate.topK`): the gates, the kept
 * set, the scores and the evidence then stay on the device, and the host reads them only when asked
 * ({@linkcode AdapterTrainer.syncGates}, a forced projection, a checkpoint). Other kept-set rules (a budget,
 * the gate bound, a margin) run on the host, with `projectTopK`'s rule as it was.
 *
 * @module
 */

import { TrainingSession } from "../autodiff/training_session.ts";
import { optimizerStateNames, type ParameterGroup } from "../autodiff/optimizer.ts";
import type { TrainingState } from "../autodiff/training_session.ts";
import { modelFamily } from "../models/families.ts";
import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { dropoutInputName, gatedLoraHook, GATES_INPUT } from "../lora/gated_lora.ts";
import { type AdapterSiteState, kaimingUniform, purposePrng, reinitSite } from "../lora/adapter.ts";
import { doubleRank } from "../lora/rank_doubling.ts";
import { boundGates, capGateStep } from "../lora/gate_bound.ts";
import { loraInputNames } from "../models/lora_inputs.ts";
import { ort } from "../runtime/ort.ts";
import type { ExecutionProvider, ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import type { Batch } from "./batches.ts";

/** Optimizer settings of the adapter factors (gates always use plain SGD). */
export interface AdapterOptimizerOptions {
  /** Update rule of A and B. */
  kind: "adamw" | "sgd";
  /** Weight decay of A and B. */
  weightDecay: number;
  /** Global gradient-norm clipping of A and B (0 disables). */
  maxGradNorm: number;
}

/**
 * Per-site normalisation of the gate gradient before the gates' SGD step. `none`: the raw gradient (the
 * paper's). `params`: divided by the site's adapter parameter count r·(in + out), relative to the mean over the
 * active sites. `rms`: divided by the Frobenius norm of the site's current update (scale · B·A), relative to
 * the mean. Both remove the width bias of the raw gradient early in training, when B ≈ −lr·sign(∇B) makes the
 * gate gradient grow with the size of B.
 */
export type GateNorm = "none" | "params" | "rms";

/**
 * What the gates' steps so far say about each active site, accumulated over every gate step of the run (a site
 * gated off keeps accumulating: its gate gradient is not zero once B ≠ 0). Aligned with the active sites.
 */
export interface GateEvidence {
  /**
   * The gate's total SGD movement, Σ −lr·∂L/∂g (normalised like the gate step): how far the gate would have
   * moved from where it started had no projection set it to 0.
   */
  movement: Float32Array;
  /**
   * Σ −g·∂L/∂g over the steps, with g the gate before each step: the first-order estimate of how much the loss
   * would rise if the site were removed (a Taylor importance score); 0 while a site is gated off.
   */
  taylor: Float32Array;
}

/**
 * Chooses the kept sites from updated gate values.
 *
 * @param gates Gate values of the active sites, in model order.
 * @param sites The active sites.
 * @param evidence The gates' accumulated movement and importance, aligned with `sites`.
 * @returns Kept indices into `sites`, ascending.
 */
export type GateSelector = (
  gates: Float32Array,
  sites: readonly AdapterSiteState[],
  evidence: GateEvidence,
) => number[];

/** How one projection changed the kept set (site names). */
export interface KeptChange {
  /** Sites that entered the kept set. */
  entered: string[];
  /** Sites that left it. */
  left: string[];
  /** Each of those sites' gate before the step and after its SGD step (before the projection). */
  gates: Record<string, [number, number]>;
}

/** How the gates move after a step: an SGD step, then a projection onto the kept set. */
export interface GateUpdate {
  /** Learning rate of the gates. */
  lr: number;
  /** Normalisation of the gate gradient. */
  norm: GateNorm;
  /** The projection's kept set. */
  select: GateSelector;
  /**
   * Project even when every gate gradient is zero (the last step of a selection must select). Otherwise a
   * step whose gate gradients are all zero (B = 0 at the first step) leaves the gates alone: projecting equal
   * gates would choose by site order.
   */
  force: boolean;
  /**
   * After the projection, bound the kept gates: project them onto {w ≥ 0, Σw ≤ K} ({@linkcode boundGates}).
   * Without it, gates trained for a whole run grow without bound and scale every later A/B step with them.
   * @default {false}
   */
  bound?: boolean;
  /**
   * The selector is the top-K rule (`projectTopK`, ties to the earlier site) with this K (at most the active
   * sites): the step and the projection may then run in the optimizer graph, without the gates visiting the
   * host. Used when `norm` is `none` or `params` and neither `bound` nor `holdGatedOff` is set (and the trainer
   * was not created with `gateProjection: "host"`); otherwise `select` runs on the host.
   */
  topK?: number;
  /**
   * A site the projection gates off keeps its A and B where they are: its AdamW first moments are zeroed, so
   * the optimizer, which sees a zero gradient for it, takes no step (otherwise the moments carry A and B on
   * in their last direction for tens of steps, and a site that comes back returns with a drifted update).
   * @default {false}
   */
  holdGatedOff?: boolean;
  /**
   * The most a gate may move in one step ({@linkcode capGateStep}; 0: no cap). A kept gate then leaves the
   * kept set only by decaying over many steps, and a site enters from 0 by less than this.
   * @default {0}
   */
  maxStep?: number;
}

/** Options for {@linkcode AdapterTrainer.create}. */
export interface AdapterTrainerOptions {
  /** The base model. */
  model: { config: LlamaConfig; weights: LlamaWeights };
  /** Every candidate site's state (inactive ones carry no adapter). */
  sites: AdapterSiteState[];
  /** Gates are trained (SGD + top-K projection) rather than frozen. */
  trainableGates: boolean;
  /** Rows per micro-batch. */
  batchSize: number;
  /** Tokens per row. */
  seqLen: number;
  /** Optimizer of A and B. */
  optimizer: AdapterOptimizerOptions;
  /** Execution provider. */
  ep: ExecutionProviderChoice;
  /** Several micro-batches per optimizer step. */
  gradientAccumulation: boolean;
  /** LoRA dropout probability on each site's input (0 disables). @default {0} */
  dropout?: number;
  /** Seed of the dropout masks. @default {0} */
  seed?: number;
  /** Names of the sites the last projection kept (resuming a run); none: no projection yet. */
  kept?: readonly string[];
  /** The gate evidence so far by site name (resuming a run); none: nothing accumulated. */
  evidence?: Readonly<Record<string, { movement: number; taylor: number }>>;
  /**
   * Where the training graph computes logits: only at counted targets, or everywhere (the former graph,
   * for measuring the difference; the loss is the same).
   * @default {"counted"}
   */
  logitsAt?: "all" | "counted";
  /**
   * Where a top-K gate update (`GateUpdate.topK`) runs: in the optimizer graph, or on the host (the reference
   * rule; for tests and measurements).
   * @default {"graph"}
   */
  gateProjection?: "graph" | "host";
}

/**
 * Where the newest gate state (gates, kept set, scores, evidence) is: on both sides, only on the device (after a
 * gate step in the optimizer graph), or only on the host (after a host projection; the device's kept set,
 * scores and evidence are older).
 */
type GateHome = "synced" | "device" | "host";

/** The optimizer's gate-state tensors (`../autodiff/optimizer.ts`); a kept set of -1 means no projection yet. */
const GATE_KEPT = `gate_kept.${GATES_INPUT}`;
const GATE_SCORES = `gate_scores.${GATES_INPUT}`;
const GATE_MOVEMENT = `gate_movement.${GATES_INPUT}`;
const GATE_TAYLOR = `gate_taylor.${GATES_INPUT}`;

/** A built training graph's session and bookkeeping. */
interface Built {
  session: TrainingSession;
  active: AdapterSiteState[];
  dropoutShapes: Map<string, (number | string)[]>;
}

/** Sizes of what training holds per phase. */
export interface TrainableSizes {
  /** Trainable parameters (A, B and gates). */
  parameters: number;
  /** Bytes of optimizer state (AdamW moments). */
  optimizerStateBytes: number;
  /** Active sites. */
  activeSites: number;
}

function batchFeeds(batch: Batch, batchSize: number): Record<string, ort.Tensor> {
  const dims = [batchSize, batch.seqLen];
  return {
    input_ids: new ort.Tensor("int64", batch.inputIds, dims),
    labels: new ort.Tensor("int64", batch.labels, dims),
    attention_mask: new ort.Tensor("int64", batch.attentionMask, dims),
  };
}

/** Trains the active sites of a gated adapter; rebuilds its session when the structure changes. */
export class AdapterTrainer {
  /** The adapter's host-side state (refreshed from the device by {@linkcode AdapterTrainer.sync}). */
  sites: AdapterSiteState[];
  /** Whether gates are being trained. */
  trainableGates: boolean;
  #options: AdapterTrainerOptions;
  #session: TrainingSession;
  #active: AdapterSiteState[];
  #dropoutShapes: Map<string, (number | string)[]>;
  #ones = new Map<string, ort.Tensor>();
  /** Names of the sites the last projection kept (undefined until a projection). */
  #kept: Set<string> | undefined;
  /** The gate values the last projection chose from (before the others were set to 0), by site. */
  #scores: Record<string, number> | undefined;
  /** Accumulated gate evidence by site name ({@linkcode GateEvidence}). */
  #evidence = new Map<string, { movement: number; taylor: number }>();
  #gateHome: GateHome = "synced";

  private constructor(options: AdapterTrainerOptions, built: Built) {
    this.#options = options;
    this.#kept = options.kept ? new Set(options.kept) : undefined;
    for (const [name, e] of Object.entries(options.evidence ?? {})) this.#evidence.set(name, { ...e });
    this.sites = options.sites;
    this.trainableGates = options.trainableGates;
    this.#session = built.session;
    this.#active = built.active;
    this.#dropoutShapes = built.dropoutShapes;
  }

  /**
   * Builds the training graph for the active sites and creates its session.
   *
   * @param options Model, adapter state, shapes, optimizer, execution provider.
   * @returns The trainer.
   * @throws {Error} When no site is active.
   */
  static async create(options: AdapterTrainerOptions): Promise<AdapterTrainer> {
    const trainer = new AdapterTrainer(
      options,
      await AdapterTrainer.#build(options, options.sites, options.trainableGates),
    );
    trainer.#pushGateState();
    return trainer;
  }

  static async #build(
    options: AdapterTrainerOptions,
    sites: AdapterSiteState[],
    trainableGates: boolean,
  ): Promise<Built> {
    const active = sites.filter((s) => s.active);
    if (active.length === 0) throw new Error("Cannot train an adapter with no active site");
    const lora = gatedLoraHook({
      sites: active.map((s) => ({ name: s.site.name, rank: s.rank, scale: s.scale, gate: s.gate })),
      trainableGates,
      dropout: (options.dropout ?? 0) > 0,
    });
    // the sequence length is set by each batch (padded to its own longest row, at most options.seqLen)
    const model = modelFamily(options.model.config).buildTrainingGraph(options.model, {
      batchSize: options.batchSize,
      seqLen: "dynamic",
      adapter: lora.hook,
      logitsAt: options.logitsAt,
    });
    const missing = lora.unused();
    if (missing.length) {
      throw new Error(`Cannot build the training graph: the model has no site ${missing.join(", ")}`);
    }
    const adapterParams = active.flatMap((s) => {
      const names = lora.inputs.get(s.site.name)!;
      return [
        { name: names.a, shape: [s.rank, s.site.inFeatures] },
        { name: names.b, shape: [s.site.outFeatures, s.rank] },
      ];
    });
    const groups: ParameterGroup[] = [{
      name: "adapters",
      kind: options.optimizer.kind,
      weightDecay: options.optimizer.weightDecay,
      parameters: adapterParams,
    }];
    const initial: Record<string, Float32Array> = {};
    for (const s of active) {
      const names = lora.inputs.get(s.site.name)!;
      initial[names.a] = s.a;
      initial[names.b] = s.b;
    }
    if (trainableGates) {
      groups.push({
        name: "gates",
        kind: "sgd",
        clip: false,
        gateProjection: true,
        parameters: [{ name: GATES_INPUT, shape: [active.length] }],
      });
      initial[GATES_INPUT] = Float32Array.from(active.map((s) => s.gate));
    }
    const session = await TrainingSession.create({
      forward: model.graph,
      loss: "loss",
      groups,
      initial,
      maxGradNorm: options.optimizer.maxGradNorm,
      ep: options.ep,
      gradientAccumulation: options.gradientAccumulation,
    });
    return { session, active, dropoutShapes: lora.dropoutShapes };
  }

  /** The execution provider training runs on. */
  get ep(): ExecutionProvider {
    return this.#session.ep;
  }

  /** The active sites, in model order. */
  get activeSites(): AdapterSiteState[] {
    return this.#active;
  }

  /** Optimizer steps since the optimizer state was last reset. */
  get optimizerStep(): number {
    return this.#session.step;
  }

  /** Trainable parameters and optimizer-state bytes of the current structure. */
  get sizes(): TrainableSizes {
    const factors = this.#active.reduce((n, s) => n + s.a.length + s.b.length, 0);
    const gates = this.trainableGates ? this.#active.length : 0;
    const adamBytes = this.#options.optimizer.kind === "adamw" ? 2 * factors * 4 : 0;
    return { parameters: factors + gates, optimizerStateBytes: adamBytes, activeSites: this.#active.length };
  }

  /**
   * Forward + backward on micro-batches; each micro-batch's gradient is weighted by its share of the
   * counted targets, so the result is the gradient of the mean loss over all of them.
   *
   * @param batches One or more micro-batches.
   * @param step The optimizer step (seeds the dropout masks).
   * @returns The mean loss over all counted targets.
   */
  async trainStep(batches: readonly Batch[], step = 0): Promise<number> {
    const total = batches.reduce((n, b) => n + b.targets, 0);
    if (total === 0) throw new Error("Cannot train on a batch with no target token");
    let loss = 0;
    for (const [micro, batch] of batches.entries()) {
      const weight = batch.targets / total;
      if (weight === 0) continue;
      const feeds = {
        ...batchFeeds(batch, this.#options.batchSize),
        ...this.#dropoutMasks(batch.seqLen, step, micro),
      };
      loss += weight * await this.#session.trainStep(feeds, weight);
    }
    return loss;
  }

  /**
   * Dropout masks for one micro-batch: 0 with probability p, else 1/(1−p), drawn from a generator seeded
   * by (seed, step, micro-batch, site), so a resumed run draws the same masks. Without `step`: all ones.
   */
  #dropoutMasks(seqLen: number, step: number | undefined, micro = 0): Record<string, ort.Tensor> {
    const p = this.#options.dropout ?? 0;
    const feeds: Record<string, ort.Tensor> = {};
    for (const [i, s] of this.#active.entries()) {
      const symbolic = this.#dropoutShapes.get(s.site.name);
      if (!symbolic) continue;
      // the one symbolic dim of a site's input is the batch's sequence length
      const shape = symbolic.map((d) => (typeof d === "number" ? d : seqLen));
      const name = dropoutInputName(s.site.name);
      const size = shape.reduce((a, b) => a * b, 1);
      if (step === undefined) {
        const key = `${name}@${seqLen}`;
        let ones = this.#ones.get(key);
        if (!ones) {
          this.#ones.set(key, ones = new ort.Tensor("float32", new Float32Array(size).fill(1), shape));
        }
        feeds[name] = ones;
        continue;
      }
      const prng = purposePrng(this.#options.seed ?? 0, `dropout-${step}-${micro}`, i);
      const keep = 1 / (1 - p);
      const mask = new Float32Array(size);
      for (let k = 0; k < size; k++) mask[k] = prng.next() < p ? 0 : keep;
      feeds[name] = new ort.Tensor("float32", mask, shape);
    }
    return feeds;
  }

  /**
   * Applies the pending gradients: A and B at `lr`; then, when `gates` is given and the gates are trained,
   * the gates' SGD step on their (normalised) gradient and the projection onto the kept set.
   *
   * @param lr Learning rate of A and B.
   * @param gates How the gates move this step (undefined: they stay).
   * @returns The gradient norm of A and B, whether the gates were projected, and how the projection changed
   *   the kept set (absent when it did not, and at the first projection).
   */
  async applyGradients(
    lr: number,
    gates?: GateUpdate,
  ): Promise<{ gradNorm: number; projected: boolean; keptChange?: KeptChange }> {
    const moveGates = this.trainableGates && gates !== undefined;
    if (moveGates && this.#inGraph(gates)) return await this.#applyInGraph(lr, gates);
    if (moveGates && this.#gateHome === "device") await this.#pullGateState();
    const gradient = moveGates ? await this.#session.gradient(GATES_INPUT) : undefined;
    // the gates' step is taken here, not by the optimizer graph: the normalisation is per site
    const rates: Record<string, number> = { adapters: lr };
    if (this.trainableGates) rates.gates = 0;
    const { gradNorm } = await this.#session.optimizerStep(rates);
    if (!moveGates) return { gradNorm, projected: false };
    const zero = gradient!.every((v) => Math.abs(v) < 1e-12);
    if (zero && !gates.force) return { gradNorm, projected: false };
    const values = await this.#session.parameter(GATES_INPUT);
    const start = Float32Array.from(values);
    if (!zero) {
      const weight = await this.#gateWeights(gates.norm);
      for (let i = 0; i < values.length; i++) {
        const e = this.#evidenceOf(this.#active[i].site.name);
        const step = -gates.lr * gradient![i] / weight[i];
        const move = capGateStep(step, gates.maxStep ?? 0);
        e.movement += step; // the evidence is the SGD step's, Σ −lr·∂L/∂g, capped or not
        e.taylor -= values[i] * gradient![i];
        values[i] += move;
      }
    }
    const before = this.#kept;
    this.#project(values, gates.select, gates.bound ?? false);
    if (gates.holdGatedOff) this.#holdGatedOff(before);
    const change = before ? changeOf(before, this.#kept!) : undefined;
    const keptChange = change && {
      ...change,
      gates: Object.fromEntries(
        this.#active.flatMap((s, i) =>
          change.entered.includes(s.site.name) || change.left.includes(s.site.name)
            ? [[s.site.name, [start[i], values[i]] as [number, number]]]
            : []
        ),
      ),
    };
    return { gradNorm, projected: true, ...(keptChange ? { keptChange } : {}) };
  }

  /** Whether a gate update runs in the optimizer graph ({@linkcode GateUpdate.topK}). */
  #inGraph(gates: GateUpdate): boolean {
    return (this.#options.gateProjection ?? "graph") === "graph" && gates.topK !== undefined &&
      (gates.norm === "none" || gates.norm === "params") && !gates.bound && !gates.holdGatedOff &&
      !(gates.maxStep ?? 0); // the step cap of `all` is a host rule
  }

  /** The optimizer graph steps and projects the gates; the host reads them back only for a forced projection. */
  async #applyInGraph(lr: number, gates: GateUpdate): Promise<{ gradNorm: number; projected: boolean }> {
    if (this.#gateHome === "host") this.#pushGateState();
    const n = this.#active.length;
    const k = Math.min(gates.topK!, n);
    if (!Number.isInteger(k) || k < 1) {
      throw new RangeError(`Cannot keep K = ${gates.topK} gates: K must be ≥ 1`);
    }
    const weight = await this.#gateWeights(gates.norm); // none and params: no device read
    const { gradNorm, gateProjected } = await this.#session.optimizerStep({ adapters: lr, gates: gates.lr }, {
      inputs: {
        "gate_mode.gates": new ort.Tensor("float32", new Float32Array([gates.force ? 2 : 1]), []),
        "gate_k.gates": new ort.Tensor("int64", new BigInt64Array([BigInt(k)]), [1]),
        [`gate_weight.${GATES_INPUT}`]: new ort.Tensor("float32", Float32Array.from(weight), [n]),
      },
    });
    this.#gateHome = "device";
    // the last step of a selection: the caller reads the kept set and the scores next
    if (gates.force) await this.#pullGateState();
    return { gradNorm, projected: gateProjected[GATES_INPUT] };
  }

  /** Copies the device's gates, kept set, scores and evidence to the host. */
  async #pullGateState(): Promise<void> {
    const [gates, kept, scores, movement, taylor] = await Promise.all(
      [GATES_INPUT, GATE_KEPT, GATE_SCORES, GATE_MOVEMENT, GATE_TAYLOR].map((name) =>
        this.#session.parameter(name)
      ),
    );
    const active = this.#active;
    active.forEach((s, i) => (s.gate = gates[i]));
    if (kept.every((v) => v >= 0)) { // -1: no projection since the state was pushed
      this.#kept = new Set(active.filter((_, i) => kept[i] === 1).map((s) => s.site.name));
      this.#scores = Object.fromEntries(active.map((s, i) => [s.site.name, scores[i]]));
    }
    active.forEach((s, i) => {
      if (!this.#evidence.has(s.site.name) && movement[i] === 0 && taylor[i] === 0) return;
      Object.assign(this.#evidenceOf(s.site.name), { movement: movement[i], taylor: taylor[i] });
    });
    this.#gateHome = "synced";
  }

  /** Copies the host's kept set, scores and evidence to the device's gate-state tensors (gates are there). */
  #pushGateState(): void {
    if (!this.trainableGates) return;
    const active = this.#active;
    const kept = this.#kept, scores = this.#scores;
    const values = (f: (s: AdapterSiteState) => number) => Float32Array.from(active, f);
    this.#session.setParameter(GATE_KEPT, values((s) => (kept ? (kept.has(s.site.name) ? 1 : 0) : -1)));
    this.#session.setParameter(GATE_SCORES, values((s) => scores?.[s.site.name] ?? 0));
    this.#session.setParameter(GATE_MOVEMENT, values((s) => this.#evidence.get(s.site.name)?.movement ?? 0));
    this.#session.setParameter(GATE_TAYLOR, values((s) => this.#evidence.get(s.site.name)?.taylor ?? 0));
    this.#gateHome = "synced";
  }

  /**
   * Brings the gate state to both sides: after gate steps in the optimizer graph, downloads the gates, the kept
   * set, the scores and the evidence (then {@linkcode AdapterTrainer.kept}, {@linkcode AdapterTrainer.gateScores},
   * {@linkcode AdapterTrainer.gateEvidence}, {@linkcode AdapterTrainer.survivors} and the sites' gates are
   * current); after host projections, uploads them.
   */
  async syncGates(): Promise<void> {
    if (this.#gateHome === "device") await this.#pullGateState();
    else if (this.#gateHome === "host") this.#pushGateState();
  }

  /** Throws when the gate state is only on the device (a getter would read old values). */
  #checkGatesOnHost(what: string): void {
    if (this.#gateHome !== "device") return;
    throw new Error(
      `Cannot read ${what}: the last gate steps ran in the optimizer graph and the host has not read them ` +
        "(await syncGates() first)",
    );
  }

  /** Zeroes the AdamW first moments of the sites that were kept before this projection and are not now. */
  #holdGatedOff(before: Set<string> | undefined): void {
    if (this.#options.optimizer.kind !== "adamw") return;
    for (const s of this.#active) {
      const name = s.site.name;
      if ((before && !before.has(name)) || this.#kept!.has(name)) continue;
      const { a, b } = loraInputNames(name);
      this.#session.setParameter(`adam_m.${a}`, new Float32Array(s.rank * s.site.inFeatures));
      this.#session.setParameter(`adam_m.${b}`, new Float32Array(s.site.outFeatures * s.rank));
    }
  }

  #evidenceOf(name: string): { movement: number; taylor: number } {
    let e = this.#evidence.get(name);
    if (!e) this.#evidence.set(name, e = { movement: 0, taylor: 0 });
    return e;
  }

  /** The accumulated evidence of the active sites, aligned with them. */
  #activeEvidence(): GateEvidence {
    const e = this.#active.map((s) => this.#evidence.get(s.site.name) ?? { movement: 0, taylor: 0 });
    return {
      movement: Float32Array.from(e, (x) => x.movement),
      taylor: Float32Array.from(e, (x) => x.taylor),
    };
  }

  /**
   * The gate evidence accumulated so far, by site name (for checkpoints and `weightlora.json`).
   *
   * @returns Each site's movement and Taylor score ({@linkcode GateEvidence}).
   */
  get gateEvidence(): Record<string, { movement: number; taylor: number }> {
    this.#checkGatesOnHost("the gate evidence");
    return Object.fromEntries([...this.#evidence].map(([name, e]) => [name, { ...e }]));
  }

  /** Per-site divisors of the gate gradient (1 for `none`; relative to their mean otherwise). */
  async #gateWeights(norm: GateNorm): Promise<Float64Array> {
    const n = this.#active.length;
    const w = new Float64Array(n).fill(1);
    if (norm === "none") return w;
    for (const [i, s] of this.#active.entries()) {
      if (norm === "params") w[i] = s.rank * (s.site.inFeatures + s.site.outFeatures);
      else {
        const names = loraInputNames(s.site.name);
        const a = await this.#session.parameter(names.a);
        const b = await this.#session.parameter(names.b);
        w[i] = s.scale * updateNorm(a, b, s.rank, s.site.inFeatures, s.site.outFeatures);
      }
    }
    const mean = w.reduce((x, y) => x + y, 0) / n;
    for (let i = 0; i < n; i++) w[i] = mean > 0 && w[i] > 0 ? w[i] / mean : 1;
    return w;
  }

  /** Projects gate values onto the selector's kept set and writes them to the session and the sites. */
  #project(values: Float32Array, select: GateSelector, bound = false): void {
    this.#scores = Object.fromEntries(this.#active.map((s, i) => [s.site.name, values[i]]));
    const kept = select(values, this.#active, this.#activeEvidence());
    let projected: Float32Array = new Float32Array(values.length);
    for (const i of kept) projected[i] = values[i];
    if (bound) projected = boundGates(projected, kept);
    this.#session.setParameter(GATES_INPUT, projected);
    this.#active.forEach((s, i) => (s.gate = projected[i]));
    this.#kept = new Set(kept.map((i) => this.#active[i].site.name));
    if (this.trainableGates) this.#gateHome = "host";
  }

  /**
   * Projects the current gates onto the selector's kept set, whatever their gradient (the other gates become
   * 0; their sites stay in the graph until {@linkcode AdapterTrainer.freezeGates} or
   * {@linkcode AdapterTrainer.dropUnselected}).
   *
   * @param select The kept set's rule.
   */
  async projectGates(select: GateSelector): Promise<void> {
    if (this.#gateHome === "device") await this.#pullGateState();
    this.#project(await this.#session.parameter(GATES_INPUT), select);
  }

  /**
   * The sites the adapter keeps now: the active sites in the last projection's kept set (every active site
   * before any projection).
   *
   * @returns The surviving sites, in model order.
   */
  survivors(): AdapterSiteState[] {
    this.#checkGatesOnHost("the surviving sites");
    const kept = this.#kept;
    return this.sites.filter((s) => s.active && (!kept || kept.has(s.site.name)));
  }

  /** The gate values of every active site that the last projection chose from, or undefined before any. */
  get gateScores(): Record<string, number> | undefined {
    this.#checkGatesOnHost("the gate scores");
    return this.#scores ? { ...this.#scores } : undefined;
  }

  /** Names of the sites the last projection kept, or undefined before any projection. */
  get kept(): string[] | undefined {
    this.#checkGatesOnHost("the kept sites");
    return this.#kept ? [...this.#kept] : undefined;
  }

  /**
   * Copies the device's A, B and gates into {@linkcode AdapterTrainer.sites}.
   */
  async sync(): Promise<void> {
    await this.syncGates();
    const gates = this.trainableGates ? await this.#session.parameter(GATES_INPUT) : undefined;
    for (const [i, s] of this.#active.entries()) {
      const names = loraInputNames(s.site.name);
      s.a = await this.#session.parameter(names.a);
      s.b = await this.#session.parameter(names.b);
      if (gates) s.gate = gates[i];
    }
  }

  async #rebuild(trainableGates: boolean, carry: "moments" | "reset"): Promise<void> {
    await this.syncGates();
    const state = carry === "moments" ? await this.#session.state() : undefined;
    // the old session goes first: the new one reuses its memory (peak: one session, not two); the factors and
    // moments are on the host by now (sync, state)
    await this.#session.release();
    const { session, active, dropoutShapes } = await AdapterTrainer.#build(
      this.#options,
      this.sites,
      trainableGates,
    );
    this.#dropoutShapes = dropoutShapes;
    this.#ones.clear();
    if (state) {
      // carry the optimizer moments of the surviving factors (same names, same shapes)
      const keep: TrainingState = { step: state.step, tensors: {} };
      const wanted = new Set(active.flatMap((s) => Object.values(loraInputNames(s.site.name)).slice(0, 2)));
      const kind = this.#options.optimizer.kind;
      const prefixes = optimizerStateNames({ name: "adapters", kind, parameters: [] });
      for (const name of wanted) {
        for (const p of prefixes) keep.tensors[`${p}.${name}`] = state.tensors[`${p}.${name}`];
      }
      session.loadState(keep);
    }
    this.#session = session;
    this.#active = active;
    this.trainableGates = trainableGates;
    this.#pushGateState();
  }

  /**
   * Drops the sites outside the last projection's kept set and rebuilds the graph without them; gates stay
   * trainable.
   *
   * @param carry Keep the survivors' optimizer moments, or start the optimizer afresh.
   * @returns The names of the dropped sites.
   */
  async dropUnselected(carry: "moments" | "reset"): Promise<string[]> {
    const dropped = await this.#markUnselectedDropped();
    await this.#rebuild(this.trainableGates, carry);
    return dropped;
  }

  /** Syncs from the device, then marks every active site outside the kept set inactive (freeing its factors). */
  async #markUnselectedDropped(): Promise<string[]> {
    await this.sync();
    const kept = this.#kept;
    const dropped = this.#active.filter((s) => kept ? !kept.has(s.site.name) : s.gate === 0);
    for (const s of dropped) {
      Object.assign(s, { active: false, a: new Float32Array(), b: new Float32Array() });
    }
    return dropped.map((s) => s.site.name);
  }

  /**
   * Freezes the gates: sites outside the last projection's kept set are dropped, the others keep their gate as a constant factor,
   * and the graph is rebuilt (backward then stops at the lowest survivor).
   *
   * @param options `reinitSurvivors` re-initialises survivors' A and B and restarts the optimizer.
   * @returns The dropped sites' names.
   */
  async freezeGates(options: { reinitSurvivors: boolean; seed: number }): Promise<string[]> {
    const dropped = await this.#markUnselectedDropped();
    if (options.reinitSurvivors) {
      this.sites = this.sites.map((s, i) => (s.active ? reinitSite(s, options.seed, i, "reinit") : s));
    }
    this.#options = { ...this.#options, sites: this.sites };
    await this.#rebuild(false, options.reinitSurvivors ? "reset" : "moments");
    return dropped;
  }

  /**
   * WeightLoRA+'s growth: doubles every active site's rank with the function-preserving QR init and
   * restarts the optimizer (moments reset).
   *
   * @param round Growth round number (seeds the new directions).
   * @param seed The run's seed.
   */
  async doubleRanks(round: number, seed: number): Promise<void> {
    await this.sync();
    this.sites = this.sites.map((s, i) => {
      if (!s.active) return s;
      const noise = kaimingUniform(purposePrng(seed, `grow-${round}`, i), s.site.inFeatures);
      const grown = doubleRank({
        a: s.a,
        b: s.b,
        rank: s.rank,
        inFeatures: s.site.inFeatures,
        outFeatures: s.site.outFeatures,
      }, noise);
      return { ...s, a: grown.a, b: grown.b, rank: grown.rank };
    });
    this.#options = { ...this.#options, sites: this.sites };
    await this.#rebuild(this.trainableGates, "reset");
  }

  /**
   * Mean loss over evaluation batches (weighted by their targets), without gradients.
   *
   * @param batches Evaluation batches.
   * @returns The mean token loss.
   */
  async evalLoss(batches: readonly Batch[]): Promise<number> {
    let sum = 0, count = 0;
    for (const batch of batches) {
      if (batch.targets === 0) continue;
      const feeds = {
        ...batchFeeds(batch, this.#options.batchSize),
        ...this.#dropoutMasks(batch.seqLen, undefined),
      };
      sum += batch.targets * await this.#session.evalLoss(feeds);
      count += batch.targets;
    }
    return count ? sum / count : NaN;
  }

  /** Optimizer state and factors as tensors (for checkpoints). */
  async state(): Promise<TrainingState> {
    await this.syncGates();
    return await this.#session.state();
  }

  /** Restores the optimizer state and factors saved by {@linkcode AdapterTrainer.state} (same structure). */
  async loadState(state: TrainingState): Promise<void> {
    this.#session.loadState(state);
    if (this.trainableGates) this.#gateHome = "device"; // the state's gate tensors, when it has them
    await this.sync();
  }

  /** Releases the session. */
  async release(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * ‖B·A‖_F without forming B·A: ‖BA‖² = Σᵢⱼ (BᵀB)ᵢⱼ (AAᵀ)ᵢⱼ, two r×r products.
 *
 * @param a A, `[rank, in]` row-major.
 * @param b B, `[out, rank]` row-major.
 * @param rank r.
 * @param inFeatures in.
 * @param outFeatures out.
 * @returns The Frobenius norm of B·A.
 */
export function updateNorm(
  a: Float32Array,
  b: Float32Array,
  rank: number,
  inFeatures: number,
  outFeatures: number,
): number {
  let sum = 0;
  for (let i = 0; i < rank; i++) {
    for (let j = 0; j < rank; j++) {
      let btb = 0, aat = 0;
      for (let o = 0; o < outFeatures; o++) btb += b[o * rank + i] * b[o * rank + j];
      for (let c = 0; c < inFeatures; c++) aat += a[i * inFeatures + c] * a[j * inFeatures + c];
      sum += btb * aat;
    }
  }
  return Math.sqrt(Math.max(0, sum));
}

/** The sites that entered and left a kept set, in name order; undefined when it did not change. */
function changeOf(
  before: ReadonlySet<string>,
  after: ReadonlySet<string>,
): Omit<KeptChange, "gates"> | undefined {
  const entered = [...after].filter((n) => !before.has(n)).sort();
  const left = [...before].filter((n) => !after.has(n)).sort();
  return entered.length || left.length ? { entered, left } : undefined;
}
