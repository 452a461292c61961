/**
 * Serving graphs whose adapter cost follows the adapters: a **variant** of the fused inference graphs
 * computes LoRA only at the sites its batch's adapters touch, so a K = 5 WeightLoRA adapter costs five
 * sites' updates and a batch without adapters runs the plain graph.
 *
 * A variant is a site set and a mode:
 * - `single` — every row uses the same adapter: each site adds `(x · Aᵀ) · Bᵀ` (scale folded into `Bᵀ`):
 *   two MatMuls and an Add;
 * - `bank` — rows use different adapters (or none): each site gathers row i's slot `lora_index[i]` from a
 *   stack of every slot's tensors (the BGMV idea of Punica / S-LoRA), two Gathers more per site;
 * - `rows` — the same batch as `bank`, its tensors laid out per row by the host instead (row i's slot
 *   copied to position i): no Gathers, each site's two MatMuls batched over the rows. On wasm, where the
 *   inputs are host tensors rebuilt when the batch changes anyway, this is the mixed-batch mode of the batch
 *   runner (a decode pass of 7 rows with 7 adapters on stories260K: 0.77 vs 0.81–0.94 ms in `session.run`,
 *   same logits); on WebGPU the bank's inputs stay on the GPU per set of adapters, so `bank` stays.
 *
 * **Packed inputs.** A variant takes its sites' tensors in **two** inputs, whatever its site count (every fed
 * tensor costs a copy and a call into onnxruntime): the sites' `Aᵀ` stacked along their input axis and
 * their `Bᵀ` along their output axis, split apart inside the graph (one Split each):
 * `lora_at` `[Σ in, r]` and `lora_bt` `[r, Σ out]` (single), `lora_at_bank` `[slots, Σ in, r]` and
 * `lora_bt_bank` `[slots, r, Σ out]` with `lora_index` int64 `[batch]` (bank), `lora_at_rows`
 * `[batch, Σ in, r]` and `lora_bt_rows` `[batch, r, Σ out]` (rows). Sites are in forward order;
 * ranks are padded with zeros to the largest (exact); a slot without the site (or the base model's slot) is
 * zeros. The names do not depend on the sites, so variants with different site sets read the same inputs
 * (`shared_variants.ts` composes them into one session).
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { modelFamily } from "../models/families.ts";
import type { AdapterHook, AdapterSite } from "../models/sites.ts";
import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { Model } from "../onnx/types.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";
import { type PackScratch, packSlot, type SlotPack, type SlotPacks } from "./slot_packs.ts";

/** The int64 `[batch]` input choosing each row's slot (bank mode). */
export const LORA_INDEX_INPUT = "lora_index";

/** How a variant takes its adapters. */
export type VariantMode = "none" | "single" | "bank" | "rows";

/** A graph variant: the sites that take LoRA and how. */
export interface ServingVariant {
  /** Adapted sites (PEFT module paths), in forward order; empty in mode `none`. */
  sites: readonly string[];
  /**
   * `none` (no adapter), `single` (one adapter for every row), `bank` (a slot per row, gathered in the
   * graph) or `rows` (a slot per row, laid out per row by the host).
   */
  mode: VariantMode;
}

/** The graph input names of a variant's packed LoRA tensors. */
export interface VariantInputNames {
  /** Every site's `Aᵀ` stacked: `[Σ in, r]` (single), `[slots, Σ in, r]` (bank), `[batch, Σ in, r]` (rows). */
  at: string;
  /**
   * Every site's `scale · Bᵀ` side by side: `[r, Σ out]` (single), `[slots, r, Σ out]` (bank),
   * `[batch, r, Σ out]` (rows).
   */
  bt: string;
}

/**
 * The input names of a mode's packed LoRA tensors (the same for every site set).
 *
 * @param mode `single`, `bank` or `rows`.
 * @returns The two names.
 * @example
 * ```ts
 * import { variantInputNames } from "./variant_graphs.ts";
 * console.assert(variantInputNames("bank").at === "lora_at_bank");
 * ```
 */
export function variantInputNames(mode: "single" | "bank" | "rows"): VariantInputNames {
  if (mode === "single") return { at: "lora_at", bt: "lora_bt" };
  return { at: `lora_at_${mode}`, bt: `lora_bt_${mode}` };
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
  /** Identifies the variant and its slots, and in mode `rows` each row's slot (for caching feeds). */
  key: string;
}

/** Options of {@linkcode composeBatch}. */
export interface ComposeBatchOptions {
  /**
   * Lay a mixed batch's tensors out per row (mode `rows`) instead of gathering them from slots in the graph
   * (mode `bank`).
   * @default {false}
   */
  rows?: boolean;
}

/**
 * The variant and slots of a batch from its rows' adapters: no adapter → `none`; one adapter for every
 * row → `single` at its sites; otherwise `bank` (or `rows`) at the union of the adapters' sites.
 *
 * @param adapters Each row's adapter.
 * @param sites Every site of the model, in forward order.
 * @param options Whether a mixed batch is laid out per row.
 * @returns The composition.
 */
export function composeBatch(
  adapters: readonly (PreparedAdapter | null)[],
  sites: readonly AdapterSite[],
  options: ComposeBatchOptions = {},
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
  const mixed: VariantMode = options.rows ? "rows" : "bank";
  const mode: VariantMode = used.size === 0 ? "none" : slots.length === 1 ? "single" : mixed;
  const variant = { sites: siteList, mode };
  const key = `${variantKey(variant)}|${keys.join("\n")}${mode === "rows" ? `|${index.join(",")}` : ""}`;
  return { variant, slots, index, key };
}

/**
 * The adapter hook of a variant: LoRA at its sites only, from the two packed inputs.
 *
 * @param variant The variant.
 * @param sites Every site of the model (for the sites' widths).
 * @returns The hook (for one graph: it declares the inputs once).
 */
export function variantAdapterHook(variant: ServingVariant, sites: readonly AdapterSite[]): AdapterHook {
  const wanted = new Set(variant.sites);
  const byName = new Map(sites.map((s) => [s.name, s]));
  let parts: Map<string, { at: Value; bt: Value }> | undefined;
  let index: Value | undefined;
  // the packed inputs and their Splits, declared at the first adapted site
  const unpack = (b: GraphBuilder) => {
    const list = variant.sites.map((name) => {
      const site = byName.get(name);
      if (!site) throw new RangeError(`Cannot build graph variant: "${name}" is not a site of this model`);
      return site;
    });
    const mode = variant.mode as "single" | "bank" | "rows";
    const names = variantInputNames(mode);
    const ins = list.map((s) => s.inFeatures);
    const outs = list.map((s) => s.outFeatures);
    const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
    const lead = mode === "bank" ? ["lora_slots"] : mode === "rows" ? ["batch"] : [];
    const at = b.input(names.at, "float32", [...lead, sum(ins), "lora_rank"]);
    const bt = b.input(names.bt, "float32", [...lead, "lora_rank", sum(outs)]);
    if (mode === "bank") index = b.input(LORA_INDEX_INPUT, "int64", ["batch"]);
    const axis = lead.length;
    const ats = b.withScope("lora_pack", () => splitMany(b, at, ins, axis));
    const bts = b.withScope("lora_pack", () => splitMany(b, bt, outs, axis + 1));
    return new Map(list.map((s, j) => [s.name, { at: ats[j], bt: bts[j] }]));
  };
  const hook = (b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value): Value => {
    if (!wanted.has(site.name) || variant.mode === "none") return baseOut;
    parts ??= unpack(b);
    const { at, bt } = parts.get(site.name)!;
    if (variant.mode === "single") {
      return b.withScope("lora", () => b.add(baseOut, b.matmul(b.matmul(x, at), bt)));
    }
    if (variant.mode === "rows") {
      // [batch, seq, in] × [batch, in, r] × [batch, r, out]: row i's own slot, laid out by the host
      return b.withScope("lora_rows", () => b.add(baseOut, b.matmul(b.matmul(x, at), bt)));
    }
    const rowIndex = index!;
    return b.withScope("lora_bank", () => {
      const down = b.matmul(x, b.gather(at, rowIndex, 0)); // [batch, seq, in] × [batch, in, r]
      return b.add(baseOut, b.matmul(down, b.gather(bt, rowIndex, 0))); // × [batch, r, out]
    });
  };
  return Object.assign(hook, { covers: (name: string) => variant.mode !== "none" && wanted.has(name) });
}

/**
 * Most outputs of one Split: onnxruntime's WebGPU kernel binds every output as a storage buffer, and a
 * shader stage may have 32 at most.
 */
const MAX_SPLIT = 16;

/** Splits `x` into parts of `sizes` along `axis`: no node for one part, two levels of Splits past 16. */
function splitMany(b: GraphBuilder, x: Value, sizes: number[], axis: number): Value[] {
  if (sizes.length === 1) return [x];
  if (sizes.length <= MAX_SPLIT) return b.split(x, sizes, axis);
  const groups: number[][] = [];
  for (let i = 0; i < sizes.length; i += MAX_SPLIT) groups.push(sizes.slice(i, i + MAX_SPLIT));
  const parts = b.split(x, groups.map((g) => g.reduce((n, s) => n + s, 0)), axis);
  return groups.flatMap((g, i) => splitMany(b, parts[i], g, axis));
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
  const sites = family.listSites(model.config);
  const decode = family.buildFusedGraph(model, {
    kind: "decode",
    adapter: variantAdapterHook(variant, sites),
  });
  const prefill = options.prefill
    ? family.buildFusedGraph(model, { kind: "prefill", adapter: variantAdapterHook(variant, sites) })
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

/** Options of {@linkcode variantArrays}. */
export interface VariantArraysOptions {
  /** Reuse each slot's pack across passes (see `slot_packs.ts`); without it every slot is packed anew. */
  packs?: SlotPacks;
  /**
   * Write `bank` and `rows` inputs into these buffers instead of new arrays (the arrays returned are views
   * of them, valid until the next call with the same scratch).
   */
  scratch?: PackScratch;
}

/**
 * The packed LoRA inputs of a composition (without `lora_index`): every site's `Aᵀ` stacked along the input
 * axis and `Bᵀ` along the output axis, ranks padded with zeros to the largest; in `bank` mode one such pack
 * per slot, stacked, in `rows` mode one per row (its slot's), stacked (a slot without a site, or the base
 * model's slot, is zeros there).
 *
 * @param comp The batch composition.
 * @param config The model's shape.
 * @param options Where packs are reused.
 * @returns Two arrays (none in mode `none`).
 */
export function variantArrays(
  comp: BatchComposition,
  config: LlamaConfig,
  options: VariantArraysOptions = {},
): VariantArray[] {
  const { variant, slots } = comp;
  if (variant.mode === "none") return [];
  const byName = new Map(modelFamily(config).listSites(config).map((s) => [s.name, s]));
  const list = variant.sites.map((name) => byName.get(name)!);
  const wanted = new Set(variant.sites);
  const rank = Math.max(
    1,
    ...slots.flatMap((a) => a?.sites.filter((s) => wanted.has(s.site)).map((s) => s.rank) ?? []),
  );
  const sumIn = list.reduce((n, s) => n + s.inFeatures, 0);
  const sumOut = list.reduce((n, s) => n + s.outFeatures, 0);
  const pack = (slot: number): SlotPack =>
    options.packs ? options.packs.get(slots[slot], list, rank) : packSlot(slots[slot], list, rank);
  const names = variantInputNames(variant.mode);
  if (variant.mode === "single") {
    const { at, bt } = pack(0);
    return [
      { name: names.at, data: at, dims: [sumIn, rank] },
      { name: names.bt, data: bt, dims: [rank, sumOut] },
    ];
  }
  // bank: one pack per slot; rows: one per row, its slot's
  const order = variant.mode === "bank" ? slots.map((_, slot) => slot) : comp.index;
  const packs = slots.map((_, slot) => pack(slot));
  const atSize = order.length * sumIn * rank;
  const btSize = order.length * rank * sumOut;
  // every element is written below: a reused buffer needs no clearing
  const at = options.scratch ? options.scratch.take("at", atSize) : new Float32Array(atSize);
  const bt = options.scratch ? options.scratch.take("bt", btSize) : new Float32Array(btSize);
  order.forEach((slot, i) => {
    at.set(packs[slot].at, i * sumIn * rank);
    bt.set(packs[slot].bt, i * rank * sumOut);
  });
  return [
    { name: names.at, data: at, dims: [order.length, sumIn, rank] },
    { name: names.bt, data: bt, dims: [order.length, rank, sumOut] },
  ];
}
