/**
 * LoRA adapters as graph inputs for inference: for each chosen site the graph takes `<site>.lora_A`
 * `[r, in]`, `<site>.lora_B` `[out, r]` (rank symbolic) and `<site>.lora_scale` (a float32 scalar) and
 * computes `baseOut + scale · (x Aᵀ) Bᵀ`. Switching adapters (tenants) is feeding other tensors: the
 * session is never rebuilt and the base weights are never merged.
 *
 * @module
 */

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import { hostTensor, type OrtTensor } from "../runtime/mod.ts";
import type { AdapterHook, AdapterSite } from "./sites.ts";

/** The graph input names of one site's LoRA tensors. */
export interface LoraInputNames {
  /** `<site>.lora_A`, float32 `[rank, inFeatures]`. */
  a: string;
  /** `<site>.lora_B`, float32 `[outFeatures, rank]`. */
  b: string;
  /** `<site>.lora_scale`, float32 scalar (`alpha / r`, or `alpha / √r` with rsLoRA). */
  scale: string;
}

/**
 * The graph input names for a site's adapter.
 *
 * @param site PEFT module path, e.g. `model.layers.0.self_attn.q_proj`.
 * @returns The three input names.
 * @example
 * ```ts
 * import { loraInputNames } from "./lora_inputs.ts";
 * console.assert(loraInputNames("model.layers.0.mlp.up_proj").a === "model.layers.0.mlp.up_proj.lora_A");
 * ```
 */
export function loraInputNames(site: string): LoraInputNames {
  return { a: `${site}.lora_A`, b: `${site}.lora_B`, scale: `${site}.lora_scale` };
}

/**
 * An {@linkcode AdapterHook} that gives each listed site LoRA inputs and leaves the others unchanged.
 *
 * @param sites PEFT module paths of the sites that take an adapter.
 * @returns The hook; it throws at build time if a listed site never appears in the model.
 */
export function loraInputAdapter(
  sites: Iterable<string>,
): AdapterHook & { unused(): string[]; covers(name: string): boolean } {
  const wanted = new Set(sites);
  const seen = new Set<string>();
  const hook = (b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value): Value => {
    if (!wanted.has(site.name)) return baseOut;
    seen.add(site.name);
    const names = loraInputNames(site.name);
    const rank = `${site.name}.rank`;
    const a = b.input(names.a, "float32", [rank, site.inFeatures]);
    const bMatrix = b.input(names.b, "float32", [site.outFeatures, rank]);
    const scale = b.input(names.scale, "float32", []);
    return b.withScope("lora", () => {
      const down = b.mul(b.matmul(x, b.transpose(a, [1, 0])), scale); // [..., rank]
      return b.add(baseOut, b.matmul(down, b.transpose(bMatrix, [1, 0])));
    });
  };
  return Object.assign(hook, {
    unused: () => [...wanted].filter((s) => !seen.has(s)),
    covers: (name: string) => wanted.has(name),
  });
}

/** One site's LoRA tensors, ready to feed. */
export interface LoraSiteTensors {
  /** `lora_A`, float32 `[rank, inFeatures]`, row-major. */
  a: Float32Array;
  /** `lora_B`, float32 `[outFeatures, rank]`, row-major. */
  b: Float32Array;
  /** Rank r. */
  rank: number;
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
  /** Scaling of the update (`alpha / r`, or `alpha / √r` with rsLoRA). */
  scale: number;
}

/**
 * The feeds of a graph built with `loraSites`: every listed site's A, B and scale.
 *
 * @param sites The sites the graph takes (in any order).
 * @param adapter Tensors by site; every listed site must have them.
 * @returns Feeds by input name.
 * @throws {Error} When a site has no tensors.
 */
export function loraFeeds(
  sites: readonly string[],
  adapter: ReadonlyMap<string, LoraSiteTensors>,
): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  for (const site of sites) {
    const t = adapter.get(site);
    if (!t) throw new Error(`Cannot feed LoRA inputs: the adapter has no tensors for site "${site}"`);
    const names = loraInputNames(site);
    feeds[names.a] = hostTensor(t.a, [t.rank, t.inFeatures]);
    feeds[names.b] = hostTensor(t.b, [t.outFeatures, t.rank]);
    feeds[names.scale] = hostTensor(new Float32Array([t.scale]), []);
  }
  return feeds;
}
