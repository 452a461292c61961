/**
 * Optimizer graphs: AdamW (bias-corrected, decoupled weight decay) and SGD (optional momentum) over any
 * list of parameters, with global gradient-norm clipping. The learning rate of each parameter group and
 * the step number are graph inputs, so schedules need no rebuild.
 *
 * Inputs: `step` (float32 scalar, 1-based), `lr.<group>` (float32 scalar) per group, `grad_scale` (float32
 * scalar, multiplies every gradient first, e.g. 1/micro-batches), and per parameter `<name>`,
 * `grad.<name>` and its state (`adam_m.<name>`, `adam_v.<name>` or `momentum.<name>`).
 * Outputs: `updated.<name>`, `updated.adam_m.<name>`, … and `grad_norm` (before clipping).
 *
 * A group with `gateProjection` is WeightLoRA's gates: an SGD step on the (per-site weighted) gradient, then
 * the top-K projection, in the graph (see {@linkcode ParameterGroup.gateProjection}).
 *
 * @module
 */

import { GraphBuilder, type Value } from "../onnx/builder.ts";
import type { Graph, Shape } from "../onnx/types.ts";
import { topKMask } from "../lora/top_k_graph.ts";

/** One parameter the optimizer updates. */
export interface OptimizerParameter {
  /** Graph input name of the parameter (its gradient input is `grad.<name>`). */
  name: string;
  /** Its shape. */
  shape: Shape;
}

/** A group of parameters sharing an update rule and learning-rate input. */
export interface ParameterGroup {
  /** Group name; the learning rate input is `lr.<name>`. */
  name: string;
  /** Update rule. */
  kind: "adamw" | "sgd";
  /** Parameters in the group. */
  parameters: OptimizerParameter[];
  /** Decoupled weight decay (AdamW) or L2 coefficient (SGD). @default {0} */
  weightDecay?: number;
  /** AdamW β₁. @default {0.9} */
  beta1?: number;
  /** AdamW β₂. @default {0.999} */
  beta2?: number;
  /** AdamW ε. @default {1e-8} */
  epsilon?: number;
  /** SGD momentum (0 = plain SGD, no state). @default {0} */
  momentum?: number;
  /** Whether this group's gradients count in (and are scaled by) global-norm clipping. @default {true} */
  clip?: boolean;
  /**
   * WeightLoRA's gate step in the graph (a plain `sgd` group, unclipped, of rank-1 parameters): with the group's
   * input `gate_mode.<group>` (float32 scalar) 0 the parameters stay; 1: when some gradient is not 0 (|g| ≥
   * 1e-12), a step `w ← w − lr·∂L/∂w / gate_weight.<name>` and the top-K projection (the K = `gate_k.<group>`
   * (int64 `[1]`) largest kept, ties to the lower index, the rest 0), else nothing; 2: the same, but project
   * even when every gradient is 0. Each parameter carries the states `gate_kept` (1 where the last projection
   * kept), `gate_scores` (the values it chose from), `gate_movement` (Σ of the steps) and `gate_taylor`
   * (Σ −w·∂L/∂w, w before each step), and takes the input `gate_weight.<name>` (float32, its shape: the
   * per-site divisors of the gradient); its output `gate_projected.<name>` (float32 scalar) is 1 when it was
   * projected.
   * @default {false}
   */
  gateProjection?: boolean;
}

/** The states of a parameter in a `gateProjection` group. */
export const GATE_STATES: readonly string[] = ["gate_kept", "gate_scores", "gate_movement", "gate_taylor"];

/** Options for {@linkcode buildOptimizerGraph}. */
export interface OptimizerGraphOptions {
  /** The parameter groups. */
  groups: ParameterGroup[];
  /** Clip the global L2 norm of the clipped groups' gradients to this value; 0 disables. @default {0} */
  maxGradNorm?: number;
}

/** State tensors a parameter carries for its group's rule, by state name (`adam_m`, `adam_v`, `momentum`). */
export function optimizerStateNames(group: ParameterGroup): string[] {
  if (group.gateProjection) return [...GATE_STATES];
  if (group.kind === "adamw") return ["adam_m", "adam_v"];
  return (group.momentum ?? 0) > 0 ? ["momentum"] : [];
}

/**
 * Builds the optimizer-step graph.
 *
 * @param options Parameter groups and clipping.
 * @returns A graph whose outputs are the updated parameters and states, and `grad_norm`.
 * @throws {TypeError} When a parameter appears twice or a group is empty, or a `gateProjection` group is not
 *   plain unclipped SGD of rank-1 parameters.
 * @example
 * ```ts
 * import { buildOptimizerGraph } from "./optimizer.ts";
 * const graph = buildOptimizerGraph({ groups: [{ name: "all", kind: "adamw", parameters: [{ name: "w", shape: [2] }] }] });
 * console.assert(graph.outputs.some((o) => o.name === "updated.w"));
 * ```
 */
export function buildOptimizerGraph(options: OptimizerGraphOptions): Graph {
  const b = new GraphBuilder("optimizer");
  const step = b.input("step", "float32", []);
  const gradScale = b.input("grad_scale", "float32", []);
  const seen = new Set<string>();
  const grads = new Map<string, Value>();
  for (const group of options.groups) {
    if (group.parameters.length === 0) {
      throw new TypeError(`Cannot build optimizer: group "${group.name}" is empty`);
    }
    if (group.gateProjection) checkGateGroup(group);
    for (const p of group.parameters) {
      if (seen.has(p.name)) {
        throw new TypeError(`Cannot build optimizer: parameter "${p.name}" is in two groups`);
      }
      seen.add(p.name);
      grads.set(p.name, b.mul(b.input(`grad.${p.name}`, "float32", p.shape), gradScale));
    }
  }

  // Global gradient norm over the clipped groups: √Σ‖g‖², and the clip coefficient min(1, max/(norm+1e-6)).
  const clipped = options.groups.filter((g) => g.clip !== false).flatMap((g) => g.parameters);
  const squares = clipped.map((p) => b.reduceSumSquare(grads.get(p.name)!, undefined, false));
  const gradNorm = squares.length ? b.sqrt(squares.reduce((acc, s) => b.add(acc, s))) : b.scalar(0);
  b.output(gradNorm, "grad_norm");
  const maxNorm = options.maxGradNorm ?? 0;
  const coefficient = maxNorm > 0 ? b.min(b.div(b.scalar(maxNorm), b.add(gradNorm, 1e-6)), 1) : undefined;

  for (const group of options.groups) {
    const lr = b.input(`lr.${group.name}`, "float32", []);
    const decay = group.weightDecay ?? 0;
    if (group.gateProjection) {
      const mode = b.input(`gate_mode.${group.name}`, "float32", []);
      const k = b.input(`gate_k.${group.name}`, "int64", [1]);
      b.withScope(group.name, () => {
        for (const p of group.parameters) {
          gateStep(b, { name: p.name, shape: p.shape, grad: grads.get(p.name)!, lr, mode, k });
        }
      });
      continue;
    }
    b.withScope(group.name, () => {
      for (const p of group.parameters) {
        const param = b.input(p.name, "float32", p.shape);
        let g = grads.get(p.name)!;
        if (coefficient && group.clip !== false) g = b.mul(g, coefficient);
        if (group.kind === "adamw") {
          const beta1 = group.beta1 ?? 0.9, beta2 = group.beta2 ?? 0.999, eps = group.epsilon ?? 1e-8;
          const m = b.input(`adam_m.${p.name}`, "float32", p.shape);
          const v = b.input(`adam_v.${p.name}`, "float32", p.shape);
          // m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
          const mNew = b.add(b.mul(m, beta1), b.mul(g, 1 - beta1));
          const vNew = b.add(b.mul(v, beta2), b.mul(b.mul(g, g), 1 - beta2));
          // bias corrections 1−βᵗ use the step input
          const mHat = b.div(mNew, b.sub(1, b.pow(b.scalar(beta1), step)));
          const vHat = b.div(vNew, b.sub(1, b.pow(b.scalar(beta2), step)));
          // decoupled weight decay: θ ← θ(1 − lr·λ) − lr·m̂/(√v̂ + ε)
          const decayed = decay ? b.mul(param, b.sub(1, b.mul(lr, decay))) : param;
          const update = b.div(mHat, b.add(b.sqrt(vHat), eps));
          b.output(b.sub(decayed, b.mul(lr, update)), `updated.${p.name}`);
          b.output(mNew, `updated.adam_m.${p.name}`);
          b.output(vNew, `updated.adam_v.${p.name}`);
        } else {
          if (decay) g = b.add(g, b.mul(param, decay));
          const momentum = group.momentum ?? 0;
          if (momentum > 0) {
            const buf = b.input(`momentum.${p.name}`, "float32", p.shape);
            g = b.add(b.mul(buf, momentum), g);
            b.output(g, `updated.momentum.${p.name}`);
          }
          b.output(b.sub(param, b.mul(lr, g)), `updated.${p.name}`);
        }
      }
    });
  }
  return b.toGraph();
}

/** Throws unless a `gateProjection` group is plain unclipped SGD of static rank-1 parameters. */
function checkGateGroup(group: ParameterGroup): void {
  const notVector = group.parameters.find((p) => p.shape.length !== 1 || typeof p.shape[0] !== "number");
  const why = group.kind !== "sgd"
    ? `its kind is "${group.kind}", not "sgd"`
    : (group.momentum ?? 0) > 0 || (group.weightDecay ?? 0) > 0
    ? "it has momentum or weight decay"
    : group.clip !== false
    ? "it is clipped (set clip: false)"
    : notVector
    ? `parameter "${notVector.name}" is not of static rank 1`
    : undefined;
  if (why) throw new TypeError(`Cannot build optimizer: gate group "${group.name}" cannot project: ${why}`);
}

/** One gate parameter's step and top-K projection ({@linkcode ParameterGroup.gateProjection}). */
function gateStep(
  b: GraphBuilder,
  p: { name: string; shape: Shape; grad: Value; lr: Value; mode: Value; k: Value },
): void {
  const param = b.input(p.name, "float32", p.shape);
  const weight = b.input(`gate_weight.${p.name}`, "float32", p.shape);
  const state = Object.fromEntries(
    GATE_STATES.map((s) => [s, b.input(`${s}.${p.name}`, "float32", p.shape)]),
  );
  const g = p.grad;
  // a step when asked (mode ≥ 1) and some gradient is not 0; a projection also when forced (mode 2)
  const nonZero = b.not(b.less(b.reduceMax(b.abs(g), undefined, false), 1e-12));
  const stepping = b.and(b.greater(p.mode, 0.5), nonZero);
  const projecting = b.node("Or", [stepping, b.greater(p.mode, 1.5)])[0];
  // the step, −lr·∂L/∂g / weight, taken only when stepping
  const move = b.where(stepping, b.div(b.mul(b.neg(p.lr), g), weight), 0);
  const values = b.add(param, move);
  // the projection: the top K kept, the rest exactly 0
  const mask = topKMask(b, values, p.k);
  const projected = b.where(b.greater(mask, 0.5), values, 0);
  b.output(b.cast(projecting, "float32"), `gate_projected.${p.name}`);
  b.output(b.where(projecting, projected, param), `updated.${p.name}`);
  b.output(b.where(projecting, mask, state.gate_kept), `updated.gate_kept.${p.name}`);
  b.output(b.where(projecting, values, state.gate_scores), `updated.gate_scores.${p.name}`);
  b.output(b.add(state.gate_movement, move), `updated.gate_movement.${p.name}`);
  const taylor = b.where(stepping, b.mul(param, g), 0);
  b.output(b.sub(state.gate_taylor, taylor), `updated.gate_taylor.${p.name}`);
}
