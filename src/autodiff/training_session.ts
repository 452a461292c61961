/**
 * {@linkcode TrainingSession}: runs a forward graph's training step (loss + gradients), optimizer step and
 * evaluation — the shape of ONNX Runtime's on-device training artifacts, built here from our own gradient and
 * optimizer graphs — as two onnxruntime-web sessions: the step session (training step and evaluation as the
 * two branches of one `If`, so the base weights are held once; see `./step_graph.ts`) and the optimizer.
 *
 * Parameters, gradients and optimizer state are session inputs and outputs held by this class. On WebGPU
 * they stay in GPU buffers between steps: after the first step only the batch and a few scalars go to the
 * device, and only the loss (and the gradient norm) come back.
 *
 * @module
 */

import { buildGradientGraph } from "./gradient.ts";
import { buildOptimizerGraph, optimizerStateNames, type ParameterGroup } from "./optimizer.ts";
import { buildStepGraph, COMPUTE_GRADIENTS } from "./step_graph.ts";
import { modelFromGraph } from "../onnx/model.ts";
import type { Graph } from "../onnx/types.ts";
import { OnnxSession, type OrtTensor } from "../runtime/session.ts";
import { ort } from "../runtime/ort.ts";
import { disposeTensors } from "../runtime/tensor.ts";
import type { ExecutionProvider, ExecutionProviderChoice } from "../runtime/execution_provider.ts";

/** Base-weight bytes above which a training session does not prepack its weights (see `create`). */
const PREPACK_LIMIT = 256 * 2 ** 20;

/** Options for {@linkcode TrainingSession.create}. */
export interface TrainingSessionOptions {
  /** Forward graph: trainable tensors are graph inputs named in `groups`; it outputs the scalar loss. */
  forward: Graph;
  /** Name of the loss output. */
  loss: string;
  /** Parameter groups (update rule, learning-rate input, weight decay). */
  groups: ParameterGroup[];
  /** Initial value of every parameter, by name. */
  initial: Record<string, Float32Array>;
  /** Global gradient-norm clipping; 0 disables. @default {0} */
  maxGradNorm?: number;
  /** Execution provider. @default {"auto"} */
  ep?: ExecutionProviderChoice;
  /**
   * Accumulate gradients over several micro-batches per optimizer step (the step graph adds the previous sum;
   * the first micro-batch adds zeros). @default {false}
   */
  gradientAccumulation?: boolean;
}

/** Host↔device traffic counted by a {@linkcode TrainingSession} (meaningful on WebGPU). */
export interface TransferStats {
  /** Bytes of CPU tensors fed to sessions (uploaded on WebGPU). */
  hostToDevice: number;
  /** Bytes of outputs read back to the host. */
  deviceToHost: number;
}

/** Options for {@linkcode TrainingSession.optimizerStep}. */
export interface OptimizerStepOptions {
  /**
   * Multiplies every gradient before clipping (e.g. 1 / micro-batches).
   * @default {1}
   */
  gradScale?: number;
  /**
   * Extra optimizer inputs by name: a `gateProjection` group's `gate_mode.<group>`, `gate_k.<group>` and
   * `gate_weight.<name>` (`../autodiff/optimizer.ts`). Those not given are mode 0 (the gates stay), K = n and
   * weights 1.
   * @default {{}}
   */
  inputs?: Record<string, OrtTensor>;
}

/** The state of one training session, as plain arrays (for checkpoints). */
export interface TrainingState {
  /** Optimizer steps taken. */
  step: number;
  /** Parameters and optimizer state by name (`w`, `adam_m.w`, `adam_v.w`, `momentum.w`). */
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
}

function numericShape(shape: readonly (number | string)[], name: string): number[] {
  return shape.map((d) => {
    if (typeof d !== "number") {
      throw new TypeError(`Cannot train "${name}": its shape has a symbolic dim "${d}"`);
    }
    return d;
  });
}

function byteSize(tensor: OrtTensor): number {
  return tensor.location === "cpu" ? (tensor.data as ArrayBufferView).byteLength : 0;
}

/**
 * A training loop's engine: `trainStep` (forward + backward, accumulating gradients), `optimizerStep`,
 * `evalLoss`, and state download/upload.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "../onnx/builder.ts";
 * import { TrainingSession } from "./training_session.ts";
 * const b = new GraphBuilder("fit");
 * const w = b.input("w", "float32", [2]);
 * b.output(b.reduceSum(b.mul(b.sub(w, 3), b.sub(w, 3)), undefined, false), "loss");
 * const session = await TrainingSession.create({
 *   forward: b.toGraph(), loss: "loss", ep: "wasm",
 *   groups: [{ name: "all", kind: "sgd", parameters: [{ name: "w", shape: [2] }] }],
 *   initial: { w: new Float32Array(2) },
 * });
 * for (let i = 0; i < 50; i++) {
 *   await session.trainStep({});
 *   await session.optimizerStep({ all: 0.1 });
 * }
 * console.assert(Math.abs((await session.parameter("w"))[0] - 3) < 1e-3);
 * await session.release();
 * ```
 */
export class TrainingSession {
  /** The provider every session runs on. */
  readonly ep: ExecutionProvider;
  /** Traffic counters. */
  readonly transfers: TransferStats = { hostToDevice: 0, deviceToHost: 0 };
  #stepSession: OnnxSession;
  #accumulates: boolean;
  #zeros = new Map<string, OrtTensor>();
  #optimizer: OnnxSession;
  #groups: ParameterGroup[];
  #shapes = new Map<string, number[]>();
  #state = new Map<string, OrtTensor>();
  #grads = new Map<string, OrtTensor>();
  #step = 0;
  #pendingMicroBatches = 0;
  #loss: string;

  private constructor(init: {
    ep: ExecutionProvider;
    step: OnnxSession;
    accumulates: boolean;
    optimizer: OnnxSession;
    groups: ParameterGroup[];
    loss: string;
  }) {
    this.ep = init.ep;
    this.#stepSession = init.step;
    this.#accumulates = init.accumulates;
    this.#optimizer = init.optimizer;
    this.#groups = init.groups;
    this.#loss = init.loss;
  }

  /**
   * Builds the train, optimizer and eval graphs and creates their sessions.
   *
   * @param options Forward graph, parameters, optimizer settings, execution provider.
   * @returns A ready session holding the initial parameters and zero optimizer state.
   * @throws {TypeError} When a parameter has no initial value or a value of the wrong length.
   */
  static async create(options: TrainingSessionOptions): Promise<TrainingSession> {
    const names = options.groups.flatMap((g) => g.parameters.map((p) => p.name));
    const shapes = new Map<string, number[]>();
    for (const group of options.groups) {
      for (const p of group.parameters) {
        const shape = numericShape(p.shape, p.name);
        shapes.set(p.name, shape);
        const init = options.initial[p.name];
        const count = shape.reduce((a, b) => a * b, 1);
        if (!init) {
          throw new TypeError(`Cannot create training session: parameter "${p.name}" has no initial value`);
        }
        if (init.length !== count) {
          throw new TypeError(
            `Cannot create training session: parameter "${p.name}" has ${init.length} values, shape [${
              shape.join(", ")
            }] needs ${count}`,
          );
        }
      }
    }
    const accumulates = options.gradientAccumulation ?? false;
    const weightBytes = options.forward.initializers.reduce((n, t) => n + t.data.byteLength, 0);
    const gradGraph = buildGradientGraph(options.forward, {
      loss: options.loss,
      trainable: names,
      lossScale: true,
      accumulate: accumulates,
    });
    const gradOutputs = Object.values(gradGraph.gradientNames);
    const stepGraph = buildStepGraph({
      forward: options.forward,
      gradient: gradGraph.graph,
      loss: options.loss,
      gradients: gradOutputs,
    });
    const step = await OnnxSession.create(modelFromGraph(stepGraph), {
      ep: options.ep,
      keepOnDevice: gradOutputs,
      // each If branch prepacks its own copy of every constant MatMul weight; without prepacking the session
      // holds about half the memory (stories15M shape: 373 → 180 MB of wasm heap) and a step takes 3–10 %
      // longer, so it is off only for bases large enough for wasm32's 4 GB heap to matter
      config: weightBytes > PREPACK_LIMIT ? { "session.disable_prepacking": "1" } : undefined,
    });
    const ep = step.ep;
    const optimizerGraph = buildOptimizerGraph({ groups: options.groups, maxGradNorm: options.maxGradNorm });
    let optimizer: OnnxSession;
    try {
      optimizer = await OnnxSession.create(modelFromGraph(optimizerGraph), {
        ep,
        keepOnDevice: optimizerGraph.outputs.map((o) => o.name).filter((n) =>
          n !== "grad_norm" && !n.startsWith("gate_projected.")
        ),
      });
    } catch (e) {
      await step.release();
      throw e;
    }
    const session = new TrainingSession({
      ep,
      step,
      accumulates,
      optimizer,
      groups: options.groups,
      loss: options.loss,
    });
    session.#shapes = shapes;
    for (const group of options.groups) {
      for (const p of group.parameters) {
        const shape = shapes.get(p.name)!;
        session.#state.set(
          p.name,
          new ort.Tensor("float32", Float32Array.from(options.initial[p.name]), shape),
        );
        for (const s of optimizerStateNames(group)) {
          session.#state.set(
            `${s}.${p.name}`,
            new ort.Tensor("float32", new Float32Array(options.initial[p.name].length), shape),
          );
        }
      }
    }
    return session;
  }

  /** Optimizer steps taken so far. */
  get step(): number {
    return this.#step;
  }

  /** Micro-batches whose gradients are waiting for the next optimizer step. */
  get pendingMicroBatches(): number {
    return this.#pendingMicroBatches;
  }

  #parameterFeeds(): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    for (const group of this.#groups) {
      for (const p of group.parameters) feeds[p.name] = this.#state.get(p.name)!;
    }
    return feeds;
  }

  /** The gradient sums so far (zeros before the first micro-batch), for a session that accumulates. */
  #accumulatorFeeds(): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    if (!this.#accumulates) return feeds;
    for (const name of this.#shapes.keys()) {
      feeds[`grad_acc.${name}`] = this.#grads.get(name) ?? this.#zeroGradient(name);
    }
    return feeds;
  }

  /** A zero tensor shaped like parameter `name` (made once). */
  #zeroGradient(name: string): OrtTensor {
    let zero = this.#zeros.get(name);
    if (!zero) {
      const shape = this.#shapes.get(name)!;
      zero = new ort.Tensor("float32", new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
      this.#zeros.set(name, zero);
    }
    return zero;
  }

  #count(feeds: Record<string, OrtTensor>): void {
    for (const t of Object.values(feeds)) this.transfers.hostToDevice += byteSize(t);
  }

  /**
   * Runs forward and backward on one micro-batch and accumulates its gradients.
   *
   * @param batch Data inputs of the forward graph (e.g. `input_ids`, `labels`).
   * @param lossScale Weight of this micro-batch's gradient (e.g. its share of the batch's tokens). @default 1
   * @returns The micro-batch's loss.
   * @throws {Error} When accumulating a second micro-batch without `gradientAccumulation`.
   */
  async trainStep(batch: Record<string, OrtTensor>, lossScale = 1): Promise<number> {
    const accumulate = this.#pendingMicroBatches > 0;
    if (accumulate && !this.#accumulates) {
      throw new Error("Cannot accumulate gradients: create the session with gradientAccumulation: true");
    }
    const feeds: Record<string, OrtTensor> = {
      ...batch,
      ...this.#parameterFeeds(),
      ...this.#accumulatorFeeds(),
      loss_scale: new ort.Tensor("float32", new Float32Array([lossScale]), []),
      [COMPUTE_GRADIENTS]: new ort.Tensor("bool", new Uint8Array([1]), []),
    };
    this.#count(feeds);
    const out = await this.#stepSession.run(feeds);
    const lossTensor = out[this.#loss];
    const loss = (await lossTensor.getData())[0] as number;
    this.transfers.deviceToHost += 4;
    for (const name of this.#shapes.keys()) {
      const previous = this.#grads.get(name);
      this.#grads.set(name, out[`grad.${name}`]);
      disposeTensors([previous]);
    }
    this.#pendingMicroBatches++;
    return loss;
  }

  /**
   * Applies the accumulated gradients and clears them.
   *
   * @param lr Learning rate per group name (a number applies to every group).
   * @param options Gradient scale and extra inputs (a gate group's mode, K and weights).
   * @returns The global gradient norm before clipping, and for each parameter of a `gateProjection` group
   *   whether it was projected.
   * @throws {Error} When no gradients are pending.
   */
  async optimizerStep(
    lr: Record<string, number> | number,
    options: OptimizerStepOptions = {},
  ): Promise<{ gradNorm: number; gateProjected: Record<string, boolean> }> {
    if (this.#pendingMicroBatches === 0) {
      throw new Error("Cannot take an optimizer step: no gradients (call trainStep first)");
    }
    this.#step++;
    const feeds: Record<string, OrtTensor> = {
      step: new ort.Tensor("float32", new Float32Array([this.#step]), []),
      grad_scale: new ort.Tensor("float32", new Float32Array([options.gradScale ?? 1]), []),
      ...this.#gateDefaults(),
      ...options.inputs,
    };
    for (const group of this.#groups) {
      const rate = typeof lr === "number" ? lr : lr[group.name];
      if (rate === undefined || !Number.isFinite(rate)) {
        throw new TypeError(`Cannot take an optimizer step: no learning rate for group "${group.name}"`);
      }
      feeds[`lr.${group.name}`] = new ort.Tensor("float32", new Float32Array([rate]), []);
    }
    for (const [name, tensor] of this.#state) feeds[name] = tensor;
    for (const [name, g] of this.#grads) feeds[`grad.${name}`] = g;
    this.#count(feeds);
    const out = await this.#optimizer.run(feeds);
    const gradNorm = (await out.grad_norm.getData())[0] as number;
    this.transfers.deviceToHost += 4;
    const gateProjected: Record<string, boolean> = {};
    for (const group of this.#groups) {
      if (!group.gateProjection) continue;
      for (const p of group.parameters) {
        gateProjected[p.name] = (await out[`gate_projected.${p.name}`].getData())[0] === 1;
        this.transfers.deviceToHost += 4;
      }
    }
    for (const name of [...this.#state.keys()]) {
      const previous = this.#state.get(name)!;
      this.#state.set(name, out[`updated.${name}`]);
      disposeTensors([previous]);
    }
    this.#clearGradients();
    return { gradNorm, gateProjected };
  }

  /** A `gateProjection` group's inputs when none are given: mode 0 (the gates stay), K = n, weights 1. */
  #gateDefaults(): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    for (const group of this.#groups) {
      if (!group.gateProjection) continue;
      const n = Math.min(...group.parameters.map((p) => this.#shapes.get(p.name)![0]));
      feeds[`gate_mode.${group.name}`] = new ort.Tensor("float32", new Float32Array([0]), []);
      feeds[`gate_k.${group.name}`] = new ort.Tensor("int64", new BigInt64Array([BigInt(n)]), [1]);
      for (const p of group.parameters) {
        const shape = this.#shapes.get(p.name)!;
        feeds[`gate_weight.${p.name}`] = new ort.Tensor("float32", new Float32Array(shape[0]).fill(1), shape);
      }
    }
    return feeds;
  }

  #clearGradients(): void {
    disposeTensors(this.#grads.values());
    this.#grads.clear();
    this.#pendingMicroBatches = 0;
  }

  /** Drops accumulated gradients without applying them. */
  resetGradients(): void {
    this.#clearGradients();
  }

  /**
   * Computes the loss on a batch with the current parameters (no gradients).
   *
   * @param batch Data inputs of the forward graph.
   * @returns The loss.
   */
  async evalLoss(batch: Record<string, OrtTensor>): Promise<number> {
    const feeds: Record<string, OrtTensor> = {
      ...batch,
      ...this.#parameterFeeds(),
      loss_scale: new ort.Tensor("float32", new Float32Array([1]), []),
      [COMPUTE_GRADIENTS]: new ort.Tensor("bool", new Uint8Array([0]), []),
    };
    if (this.#accumulates) {
      // the evaluation branch does not read them
      for (const name of this.#shapes.keys()) feeds[`grad_acc.${name}`] = this.#zeroGradient(name);
    }
    this.#count(feeds);
    const out = await this.#stepSession.run(feeds, [this.#loss]);
    this.transfers.deviceToHost += 4;
    return (await out[this.#loss].getData())[0] as number;
  }

  /**
   * Downloads one parameter or state tensor (`w`, `adam_m.w`, …).
   *
   * @param name Tensor name.
   * @returns A copy of its values.
   */
  async parameter(name: string): Promise<Float32Array> {
    const tensor = this.#state.get(name);
    if (!tensor) throw new TypeError(`Unknown training tensor "${name}"`);
    const data = Float32Array.from((await tensor.getData()) as Float32Array);
    this.transfers.deviceToHost += data.byteLength;
    return data;
  }

  /**
   * Replaces one parameter or state tensor's values (e.g. after projecting gates on the host).
   *
   * @param name Tensor name.
   * @param data New values (same element count).
   * @throws {TypeError} When the name is unknown or the length differs.
   */
  setParameter(name: string, data: Float32Array): void {
    const current = this.#state.get(name);
    if (!current) throw new TypeError(`Unknown training tensor "${name}"`);
    if (data.length !== current.size) {
      throw new TypeError(
        `Cannot set training tensor "${name}": ${data.length} values for ${current.size} elements`,
      );
    }
    disposeTensors([current]);
    this.#state.set(name, new ort.Tensor("float32", Float32Array.from(data), current.dims));
  }

  /**
   * Downloads one pending gradient.
   *
   * @param name Parameter name.
   * @returns A copy of the gradient (sum over the micro-batches since the last optimizer step).
   * @throws {TypeError} When no gradient is pending for `name`.
   */
  async gradient(name: string): Promise<Float32Array> {
    const g = this.#grads.get(name);
    if (!g) throw new TypeError(`No pending gradient for "${name}"`);
    const data = Float32Array.from((await g.getData()) as Float32Array);
    this.transfers.deviceToHost += data.byteLength;
    return data;
  }

  /**
   * Downloads the pending gradients (sum over the micro-batches since the last optimizer step).
   *
   * @returns Gradient values per parameter name.
   */
  async gradients(): Promise<Record<string, Float32Array>> {
    const out: Record<string, Float32Array> = {};
    for (const [name, g] of this.#grads) {
      out[name] = Float32Array.from((await g.getData()) as Float32Array);
      this.transfers.deviceToHost += out[name].byteLength;
    }
    return out;
  }

  /**
   * Downloads parameters and optimizer state (for checkpoints).
   *
   * @returns The step count and every tensor.
   */
  async state(): Promise<TrainingState> {
    const tensors: TrainingState["tensors"] = {};
    for (const [name, t] of this.#state) {
      tensors[name] = { shape: [...t.dims], data: await this.parameter(name) };
    }
    return { step: this.#step, tensors };
  }

  /**
   * Replaces parameters and optimizer state (from a checkpoint). Tensors not named keep their values.
   *
   * @param state Step count and tensors.
   * @throws {TypeError} When a tensor is unknown or has the wrong shape.
   */
  loadState(state: TrainingState): void {
    for (const [name, { shape, data }] of Object.entries(state.tensors)) {
      const current = this.#state.get(name);
      if (!current) throw new TypeError(`Cannot load training state: unknown tensor "${name}"`);
      if (shape.join() !== current.dims.join()) {
        throw new TypeError(
          `Cannot load training state: tensor "${name}" has shape [${shape.join(", ")}], expected [${
            current.dims.join(", ")
          }]`,
        );
      }
      disposeTensors([current]);
      this.#state.set(name, new ort.Tensor("float32", Float32Array.from(data), shape));
    }
    this.#step = state.step;
    this.#clearGradients();
  }

  /** Releases every session and GPU buffer. */
  async release(): Promise<void> {
    this.#clearGradients();
    disposeTensors(this.#state.values());
    this.#state.clear();
    disposeTensors(this.#zeros.values());
    this.#zeros.clear();
    await Promise.all([this.#stepSession, this.#optimizer].map((s) => s.release()));
  }
}
