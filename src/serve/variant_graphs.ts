/**
 * Serving graphs whose adapter cost follows the adapters: a **variant** of the fused inference graphs
 * computes LoRA only at the sites its batch's adapters touch, so a K = 5 WeightLoRA adapter costs five
 * sites' updates and a batch without adapters runs the plain graph.
 *
 * A variant is a site set and a mode:
 * - `single` — every row uses the same adapter: each site takes `<site>.lora_AT` `[in, r]` and
 *   `<site>.lora_BT` `[r, out]` (scale folded in) and adds `(x · Aᵀ) · Bᵀ`: two MatMuls and an Add;
 * - `bank` — rows use different adapters (or none): each site takes a stack of every slot's tensors,
 *   `<site>.lora_AT_bank` `[slots, in, r]` and `<site>.lora_BT_bank` `[slots, r, out]`, and the graph one
 *   `lora_index` int64 `[batch]`; row i gathers slot `lora_index[i]` (the BGMV idea of Punica / S-LoRA).
 *   Ranks are padded with zeros to the site's largest rank (exact), a slot without the site (or the base
 *   model's slot) is zeros.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { modelFamily } from "../models/families.ts";
import type { AdapterHook, AdapterSite } from "../models/sites.ts";
import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { Model } from "../onnx/types.ts";
import type { PreparedAdapter, PreparedSite } from "./prepared_adapter.ts";

/** The int64 `[batch]` input choosing each row's slot (bank mode). */
export const LORA_INDEX_INPUT = "lora_index";

/** How a variant takes its adapters. */
export type VariantMode = "none" | "single" | "bank";

/** A graph variant: the sites that take LoRA and how. */
export interface ServingVariant {
  /** Adapted sites (PEFT module paths), in forward order; empty in mode `none`. */
  sites: readonly string[];
  /** `none` (no adapter), `single` (one adapter for every row) or `bank` (a slot per row). */
  mode: VariantMode;
}

/** The graph input names of one site's LoRA tensors in a variant. */
export interface VariantInputNames {
  /** `Aᵀ`: `[in, r]` (single) or `[slots, in, r]` (bank). */
  at: string;
  /** `scale · Bᵀ`: `[r, out]` (single) or `[slots, r, out]` (bank). */
  bt: string;
}

/**
 * The input names of a site's tensors.
 *
 * @param site PEFT module path.
 * @param mode `single` or `bank`.
 * @returns The two names.
 * @example
 * ```ts
 * import { variantInputNames } from "./variant_graphs.ts";
 * console.assert(variantInputNames("model.layers.0.mlp.up_proj", "bank").at === "model.layers.0.mlp.up_proj.lora_AT_bank");
 * ```
 */
export function variantInputNames(site: string, mode: "single" | "bank"): VariantInputNames {
  const suffix = mode === "bank" ? "_bank" : "";
  return { at: `${site}.lora_AT${suffix}`, bt: `${site}.lora_BT${suffix}` };
}

/**
 * A variant's identity: its mode and sites.
 *
 * @param variant The variant.
 * @returns A string key.
 */
export function variantKey(variant: ServingVariant): string {
  return `${variant.mode}:${variant.sites.join(",")}`;
}

/** What a batch needs: its variant, its distinct adapters (slots) and each row's slot. */
export interface BatchComposition {
  /** The graph variant. */
  variant: ServingVariant;
  /** Distinct adapters (`null` = the base model), in first-use order. */
  slots: (PreparedAdapter | null)[];
  /** Slot of each row. */
  index: number[];
  /** Identifies the variant and its slots (for caching feeds). */
  key: string;
}

/**
 * The variant and slots of a batch from its rows' adapters: no adapter → `none`; one adapter for every
 * row → `single` at its sites; otherwise `bank` at the union of the adapters' sites.
 *
 * @param adapters Each row's adapter.
 * @param sites Every site of the model, in forward order.
 * @returns The composition.
 */
export function composeBatch(
  adapters: readonly (PreparedAdapter | null)[],
  sites: readonly AdapterSite[],
): BatchComposition {
  const slots: (PreparedAdapter | null)[] = [];
  const keys: string[] = [];
  const index = adapters.map((adapter) => {
    const key = adapter?.key ?? "";
    let at = keys.indexOf(key);
    if (at < 0) {
      at = keys.length;
      keys.push(key);
      slots.push(adapter);
    }
    return at;
  });
  const used = new Set(slots.flatMap((a) => a?.sites.map((s) => s.site) ?? []));
  const siteList = sites.map((s) => s.name).filter((name) => used.has(name));
  const mode: VariantMode = used.size === 0 ? "none" : slots.length === 1 ? "single" : "bank";
  const variant = { sites: siteList, mode };
  return { variant, slots, index, key: `${variantKey(variant)}|${keys.join("\n")}` };
}

/**
 * The adapter hook of a variant: LoRA inputs at its sites only.
 *
 * @param variant The variant.
 * @returns The hook (for one graph: it declares the inputs once).
 */
export function variantAdapterHook(variant: ServingVariant): AdapterHook {
  const wanted = new Set(variant.sites);
  let index: Value | undefined;
  const hook = (b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value): Value => {
    if (!wanted.has(site.name) || variant.mode === "none") return baseOut;
    const rank = `${site.name}.rank`;
    if (variant.mode === "single") {
      const names = variantInputNames(site.name, "single");
      const at = b.input(names.at, "float32", [site.inFeatures, rank]);
      const bt = b.input(names.bt, "float32", [rank, site.outFeatures]);
      return b.withScope("lora", () => b.add(baseOut, b.matmul(b.matmul(x, at), bt)));
    }
    index ??= b.input(LORA_INDEX_INPUT, "int64", ["batch"]);
    const names = variantInputNames(site.name, "bank");
    const at = b.input(names.at, "float32", ["slots", site.inFeatures, rank]);
    const bt = b.input(names.bt, "float32", ["slots", rank, site.outFeatures]);
    const rowIndex = index;
    return b.withScope("lora_bank", () => {
      const down = b.matmul(x, b.gather(at, rowIndex, 0)); // [batch, seq, in] × [batch, in, r]
      return b.add(baseOut, b.matmul(down, b.gather(bt, rowIndex, 0))); // × [batch, r, out]
    });
  };
  return Object.assign(hook, { covers: (name: string) => variant.mode !== "none" && wanted.has(name) });
}

/** A variant's graphs. */
export interface VariantGraphs {
  /** Decode graph (on wasm it also runs prefills). */
  decode: Model;
  /** Prefill graph (built when asked: WebGPU needs one). */
  prefill?: Model;
}

/**
 * Builds a variant's fused graphs.
 *
 * @param model The base model's shape and weights.
 * @param variant Sites and mode.
 * @param options Whether to build the prefill graph too.
 * @returns The graphs.
 * @throws {Error} When a weight is missing or misshapen.
 */
export function buildVariantGraphs(
  model: { config: LlamaConfig; weights: LlamaWeights },
  variant: ServingVariant,
  options: { prefill?: boolean } = {},
): VariantGraphs {
  const family = modelFamily(model.config);
  const decode = family.buildFusedGraph(model, { kind: "decode", adapter: variantAdapterHook(variant) });
  const prefill = options.prefill
    ? family.buildFusedGraph(model, { kind: "prefill", adapter: variantAdapterHook(variant) })
    : undefined;
  return { decode, prefill };
}

/** One LoRA input's data. */
export interface VariantArray {
  /** Graph input name. */
  name: string;
  /** Elements. */
  data: Float32Array;
  /** Dimensions. */
  dims: number[];
}

/**
 * The LoRA inputs of a composition (without `lora_index`): in `single` mode the adapter's own tensors (no
 * copy); in `bank` mode every slot's tensors stacked, ranks padded to the site's largest.
 *
 * @param comp The batch composition.
 * @param config The model's shape.
 * @returns Two arrays per adapted site.
 */
export function variantArrays(comp: BatchComposition, config: LlamaConfig): VariantArray[] {
  const { variant, slots } = comp;
  if (variant.mode === "none") return [];
  const byName = new Map(modelFamily(config).listSites(config).map((s) => [s.name, s]));
  const bySlot = slots.map((adapter) =>
    new Map<string, PreparedSite>(adapter?.sites.map((s) => [s.site, s]) ?? [])
  );
  const out: VariantArray[] = [];
  for (const name of variant.sites) {
    const site = byName.get(name)!;
    if (variant.mode === "single") {
      const p = bySlot[0].get(name)!;
      const names = variantInputNames(name, "single");
      out.push({ name: names.at, data: p.at, dims: [site.inFeatures, p.rank] });
      out.push({ name: names.bt, data: p.bt, dims: [p.rank, site.outFeatures] });
      continue;
    }
    const parts = bySlot.map((m) => m.get(name));
    const rank = Math.max(1, ...parts.map((p) => p?.rank ?? 0));
    const n = slots.length;
    const at = new Float32Array(n * site.inFeatures * rank);
    const bt = new Float32Array(n * rank * site.outFeatures);
    parts.forEach((p, s) => {
      if (!p) return;
      // Aᵀ [in, r_p] into [in, rank]: in one copy when the ranks agree (the rows are then contiguous), else
      // row by row; Bᵀ [r_p, out] into the first r_p rows of [rank, out]
      if (p.rank === rank) at.set(p.at, s * site.inFeatures * rank);
      else {
        for (let i = 0; i < site.inFeatures; i++) {
          at.set(p.at.subarray(i * p.rank, (i + 1) * p.rank), (s * site.inFeatures + i) * rank);
        }
      }
      bt.set(p.bt, s * rank * site.outFeatures);
    });
    const names = variantInputNames(name, "bank");
    out.push({ name: names.at, data: at, dims: [n, site.inFeatures, rank] });
    out.push({ name: names.bt, data: bt, dims: [n, rank, site.outFeatures] });
  }
  return out;
}
