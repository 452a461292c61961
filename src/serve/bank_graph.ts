/**
 * The serving graphs: the Llama prefill and decode graphs with a LoRA **adapter bank** at every linear
 * layer, so one session per kind serves any mix of tenants (the BGMV idea of Punica / S-LoRA, written
 * with standard ONNX ops).
 *
 * For each site the graph takes `<site>.lora_A_bank` `[slots, r, in]` and `<site>.lora_BT_bank`
 * `[slots, r, out]` (the scale folded into `Bᵀ`), and once `lora_index` int64 `[batch]`: row `i` uses
 * slot `lora_index[i]`. The site's output is
 *
 *     baseOut + (x · Gather(A, index)ᵀ) · Gather(Bᵀ, index)          per row, [batch, seq, out]
 *
 * Ranks are symbolic per site; a batch pads every slot to the site's largest rank with zero rows (which
 * add exact zeros). A slot without an adapter (the base model), or a site no slot adapts, is zeros of
 * rank 1 — never rank 0, since zero-sized tensors fail on WebGPU.
 *
 * @module
 */

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { Model } from "../onnx/types.ts";
import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama.ts";
import { buildLlamaInferenceGraph } from "../models/llama_inference.ts";
import { type AdapterHook, type AdapterSite, listAdapterSites } from "../models/sites.ts";

/** The int64 `[batch]` input choosing each row's slot. */
export const LORA_INDEX_INPUT = "lora_index";

/** The bank inputs of one site. */
export interface BankInputNames {
  /** `<site>.lora_A_bank`, float32 `[slots, rank, inFeatures]`. */
  a: string;
  /** `<site>.lora_BT_bank`, float32 `[slots, rank, outFeatures]` (scale folded in). */
  bt: string;
}

/**
 * The bank input names of a site.
 *
 * @param site PEFT module path.
 * @returns The two input names.
 * @example
 * ```ts
 * import { bankInputNames } from "./bank_graph.ts";
 * console.assert(bankInputNames("model.layers.0.mlp.up_proj").a === "model.layers.0.mlp.up_proj.lora_A_bank");
 * ```
 */
export function bankInputNames(site: string): BankInputNames {
  return { a: `${site}.lora_A_bank`, bt: `${site}.lora_BT_bank` };
}

/**
 * An adapter hook that gives every site an adapter bank and the graph one `lora_index` input.
 *
 * @returns The hook (use it for one graph only: it remembers the index input it declared).
 */
export function bankAdapterHook(): AdapterHook {
  let index: Value | undefined;
  return (b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value): Value => {
    index ??= b.input(LORA_INDEX_INPUT, "int64", ["batch"]);
    const names = bankInputNames(site.name);
    const rank = `${site.name}.rank`;
    const a = b.input(names.a, "float32", ["slots", rank, site.inFeatures]);
    const bt = b.input(names.bt, "float32", ["slots", rank, site.outFeatures]);
    const rowIndex = index;
    return b.withScope("lora_bank", () => {
      const aRows = b.gather(a, rowIndex, 0); // [batch, rank, in]
      const btRows = b.gather(bt, rowIndex, 0); // [batch, rank, out]
      const down = b.matmul(x, b.transpose(aRows, [0, 2, 1])); // [batch, seq, rank]
      return b.add(baseOut, b.matmul(down, btRows)); // [batch, seq, out]
    });
  };
}

/** The serving graphs of one base model. */
export interface ServingGraphs {
  /** Prompt pass: no past inputs, `present.*` outputs. */
  prefill: Model;
  /** One-token step over the cache. */
  decode: Model;
  /** Every site, in forward order (each has bank inputs in both graphs). */
  sites: AdapterSite[];
}

/**
 * Builds the prefill and decode graphs with adapter banks at every linear layer (logits of the last
 * position only).
 *
 * @param model The base model's shape and float32 weights.
 * @returns Both graphs and the site list.
 * @throws {Error} When a weight is missing or misshapen.
 */
export function buildServingGraphs(model: { config: LlamaConfig; weights: LlamaWeights }): ServingGraphs {
  const prefill = buildLlamaInferenceGraph(model, {
    kind: "prefill",
    logits: "last",
    adapter: bankAdapterHook(),
  });
  const decode = buildLlamaInferenceGraph(model, {
    kind: "decode",
    logits: "last",
    adapter: bankAdapterHook(),
  });
  return { prefill, decode, sites: listAdapterSites(model.config) };
}
