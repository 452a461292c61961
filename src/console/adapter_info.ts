/**
 * What the adapters page shows of a stored adapter, read from its two PEFT files: the adapted sites, their
 * ranks and the trainable parameters (A and B of every site), against the base model's candidate sites.
 *
 * @module
 */

import { parseSafetensors } from "../io/safetensors.ts";
import type { LlamaConfig } from "../models/config.ts";
import { listAdapterSites } from "../models/sites.ts";
import type { AdapterFiles } from "../store/adapter_store.ts";

/** An adapter's shape. */
export interface AdapterInfo {
  /** Sites the adapter adapts. */
  sites: number;
  /** Sites of the base model an adapter may adapt (every linear layer of every block). */
  candidates: number;
  /** Sites by rank (`{2: 3}`: three sites of rank 2). */
  ranks: Record<number, number>;
  /** Trainable parameters (elements of every `lora_A` and `lora_B`). */
  parameters: number;
  /** `base_model_name_or_path` of its config, when recorded. */
  baseModel: string | null;
}

/**
 * Reads an adapter's shape from its files.
 *
 * @param files `adapter_config.json` and `adapter_model.safetensors`.
 * @param config The base model's config (for the candidate count).
 * @returns The shape.
 * @throws {Error} When the weights are not a valid safetensors file.
 * @example
 * ```ts ignore
 * const info = adapterInfo(await store.read(record), engine.config);
 * ```
 */
export function adapterInfo(files: AdapterFiles, config: LlamaConfig): AdapterInfo {
  const { tensors } = parseSafetensors(files.weights, { file: "adapter_model.safetensors" });
  const rankOf = new Map<string, number>();
  let parameters = 0;
  for (const [name, t] of tensors) {
    const m = /^(?:base_model\.model\.)?(.+)\.lora_(A|B)(?:\.[^.]+)?\.weight$/.exec(name);
    if (!m) continue;
    parameters += t.dims.reduce((a, b) => a * b, 1);
    if (m[2] === "A") rankOf.set(m[1], t.dims[0]);
  }
  const ranks: Record<number, number> = {};
  for (const r of rankOf.values()) ranks[r] = (ranks[r] ?? 0) + 1;
  let baseModel: string | null = null;
  try {
    const json = JSON.parse(new TextDecoder().decode(files.config));
    if (typeof json?.base_model_name_or_path === "string") baseModel = json.base_model_name_or_path;
  } catch {
    // the upload was validated; an unreadable config only hides the base model's name
  }
  return { sites: rankOf.size, candidates: listAdapterSites(config).length, ranks, parameters, baseModel };
}

/**
 * Ranks as text: `2` when all sites share one, else `2 (×3), 4 (×1)`.
 *
 * @param ranks Sites by rank.
 * @returns The text.
 */
export function formatRanks(ranks: Record<number, number>): string {
  const entries = Object.entries(ranks).sort((a, b) => Number(a[0]) - Number(b[0]));
  if (entries.length === 0) return "–";
  if (entries.length === 1) return entries[0][0];
  return entries.map(([r, n]) => `${r} (×${n})`).join(", ");
}
