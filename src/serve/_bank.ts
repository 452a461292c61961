// Adapter banks: the stacked per-site tensors of the adapters a batch uses (see bank_graph.ts).

import type { AdapterSite } from "../models/sites.ts";
import { bankInputNames } from "./bank_graph.ts";
import type { PreparedAdapter, PreparedSite } from "./prepared_adapter.ts";

/** The adapters of a batch, one slot each, and every row's slot. */
export interface Composition {
  /** Distinct adapters (`null` = the base model), in first-use order. */
  slots: (PreparedAdapter | null)[];
  /** Slot of each row. */
  index: number[];
  /** Identifies the slot list (the slot keys joined). */
  key: string;
}

/**
 * The slots of a batch from its rows' adapters.
 *
 * @param adapters Each row's adapter.
 * @returns Slots, row indices and a key.
 */
export function composeSlots(adapters: readonly (PreparedAdapter | null)[]): Composition {
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
  return { slots, index, key: keys.join("\n") };
}

/** One bank input's data. */
export interface BankArray {
  /** Graph input name. */
  name: string;
  /** Elements. */
  data: Float32Array;
  /** `[slots, rank, features]`. */
  dims: number[];
}

/**
 * The bank inputs of every site for some slots: a slot's rank is padded with zero rows to the site's
 * largest rank; a site that no slot adapts gets zeros of rank 1. A single slot's own tensors are used
 * without a copy.
 *
 * @param slots The slots.
 * @param sites Every site of the graph.
 * @returns Two arrays per site.
 */
export function bankArrays(
  slots: readonly (PreparedAdapter | null)[],
  sites: readonly AdapterSite[],
): BankArray[] {
  const bySlot = slots.map((adapter) =>
    new Map<string, PreparedSite>(adapter?.sites.map((s) => [s.site, s]) ?? [])
  );
  const n = slots.length;
  const out: BankArray[] = [];
  for (const site of sites) {
    const names = bankInputNames(site.name);
    const parts = bySlot.map((m) => m.get(site.name));
    const rank = Math.max(1, ...parts.map((p) => p?.rank ?? 0));
    if (n === 1 && parts[0] !== undefined) {
      out.push({ name: names.a, data: parts[0].a, dims: [1, rank, site.inFeatures] });
      out.push({ name: names.bt, data: parts[0].bt, dims: [1, rank, site.outFeatures] });
      continue;
    }
    const a = new Float32Array(n * rank * site.inFeatures);
    const bt = new Float32Array(n * rank * site.outFeatures);
    parts.forEach((p, s) => {
      if (!p) return;
      a.set(p.a, s * rank * site.inFeatures);
      bt.set(p.bt, s * rank * site.outFeatures);
    });
    out.push({ name: names.a, data: a, dims: [n, rank, site.inFeatures] });
    out.push({ name: names.bt, data: bt, dims: [n, rank, site.outFeatures] });
  }
  return out;
}
