/**
 * Gated LoRA at the model's adapter hook: `h(x) = W x + w · s · B (A x)` with A `[r, in]`, B `[out, r]`,
 * scale s (`alpha / r`, or `alpha / √r` with rsLoRA) and one scalar gate w per site (WeightLoRA). The
 * trainable tensors become graph inputs named `<site>.lora_A`, `<site>.lora_B` and `lora_gates` (one
 * vector, entry i for the i-th active site); sites not in the spec get no adapter and no compute at all.
 *
 * @module
 */

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { AdapterHook, AdapterSite } from "../models/sites.ts";
import { loraInputNames } from "../models/lora_inputs.ts";

/** Name of the gate vector input. */
export const GATES_INPUT = "lora_gates";

/** One adapted site of a gated-LoRA graph. */
export interface GatedSite {
  /** PEFT module path (`model.layers.0.self_attn.q_proj`). */
  name: string;
  /** Rank r. */
  rank: number;
  /** Scale s multiplying B A x. */
  scale: number;
  /** Frozen gate value (used when gates are not trainable). */
  gate: number;
}

/** Options for {@linkcode gatedLoraHook}. */
export interface GatedLoraHookOptions {
  /** Adapted sites, in any order; the gate vector follows this order. */
  sites: readonly GatedSite[];
  /** Gates are a trainable graph input (`lora_gates`); otherwise each site's gate is folded into its scale. */
  trainableGates: boolean;
  /**
   * LoRA dropout: each site takes an input `<site>.lora_dropout` shaped like its input x, multiplied into x
   * before A (the caller feeds a fresh 0 / (1/(1−p)) mask each step, and ones to evaluate).
   * @default {false}
   */
  dropout?: boolean;
}

/** Name of a site's dropout-mask input. */
export function dropoutInputName(site: string): string {
  return `${site}.lora_dropout`;
}

/** The hook plus the names of the tensors it turned into graph inputs. */
export interface GatedLoraHook {
  /** The hook to pass to the Llama builders. */
  hook: AdapterHook;
  /** Names of the LoRA A and B inputs, per site. */
  inputs: Map<string, { a: string; b: string }>;
  /** Shapes of the dropout-mask inputs, per site (empty without dropout); symbolic dims as named in x. */
  dropoutShapes: Map<string, (number | string)[]>;
  /** Sites the model never offered to the hook (a spec error). */
  unused(): string[];
}

/**
 * Makes the adapter hook that inserts gated LoRA at the given sites.
 *
 * @param options Sites and gate handling.
 * @returns The hook and the input names it creates.
 * @example
 * ```ts
 * import { gatedLoraHook } from "./gated_lora.ts";
 * const { inputs } = gatedLoraHook({ sites: [{ name: "model.layers.0.self_attn.q_proj", rank: 4, scale: 2, gate: 1 }], trainableGates: true });
 * console.assert(inputs.get("model.layers.0.self_attn.q_proj")!.a === "model.layers.0.self_attn.q_proj.lora_A");
 * ```
 */
export function gatedLoraHook(options: GatedLoraHookOptions): GatedLoraHook {
  const index = new Map(options.sites.map((s, i) => [s.name, i]));
  const specs = new Map(options.sites.map((s) => [s.name, s]));
  const inputs = new Map(options.sites.map((s) => {
    const names = loraInputNames(s.name);
    return [s.name, { a: names.a, b: names.b }];
  }));
  const seen = new Set<string>();
  const dropoutShapes = new Map<string, (number | string)[]>();
  let gates: Value | undefined;
  const hook: AdapterHook = (b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value): Value => {
    const spec = specs.get(site.name);
    if (!spec) return baseOut;
    seen.add(site.name);
    const names = inputs.get(site.name)!;
    const a = b.input(names.a, "float32", [spec.rank, site.inFeatures]);
    const bMatrix = b.input(names.b, "float32", [site.outFeatures, spec.rank]);
    return b.withScope("lora", () => {
      let coefficient: Value;
      if (options.trainableGates) {
        gates ??= b.input(GATES_INPUT, "float32", [options.sites.length]);
        const gate = b.gather(gates, b.constant([index.get(site.name)!], "int64", []), 0);
        coefficient = b.mul(gate, spec.scale);
      } else {
        coefficient = b.scalar(spec.gate * spec.scale);
      }
      let input = x;
      if (options.dropout) {
        const shape = [...x.shape];
        dropoutShapes.set(site.name, shape);
        input = b.mul(x, b.input(dropoutInputName(site.name), "float32", shape));
      }
      // w · s · B (A x), with x [..., in]: (x Aᵀ) Bᵀ
      const down = b.matmul(input, b.transpose(a, [1, 0]));
      const up = b.matmul(down, b.transpose(bMatrix, [1, 0]));
      return b.add(baseOut, b.mul(up, coefficient));
    });
  };
  return {
    hook,
    inputs,
    dropoutShapes,
    unused: () => options.sites.map((s) => s.name).filter((n) => !seen.has(n)),
  };
}
