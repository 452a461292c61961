/**
 * {@linkcode SlotPacks}: each adapter's packed LoRA tensors for a variant's site set, built once and reused
 * by every pass that has the adapter in its batch. A slot's pack is the adapter's part of a variant's two
 * packed inputs (`variant_graphs.ts`): its sites' `Aᵀ` stacked along the input axis, `[Σ in, r]`, and their
 * `scale · Bᵀ` side by side, `[r, Σ out]`, ranks padded with zeros, sites it lacks zeros. A batch's inputs
 * are then one contiguous copy per slot (or per row), instead of a copy per site and rank row at every pass
 * whose batch changed — with many tenants, nearly every pass.
 *
 * Packs are kept per adapter (its cache key) and dropped with it ({@linkcode SlotPacks.evict}, when the
 * adapter cache evicts it), within a byte budget (least recently used adapter first).
 *
 * @module
 */

import type { AdapterSite } from "../models/sites.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";

/** One slot's part of a variant's packed inputs. */
export interface SlotPack {
  /** `Aᵀ` of the variant's sites, stacked: `[Σ in, rank]`, row-major. */
  at: Float32Array;
  /** `scale · Bᵀ` of the variant's sites, side by side: `[rank, Σ out]`, row-major. */
  bt: Float32Array;
}

/**
 * Packs one slot: the adapter's tensors at the variant's sites, its rank padded with zeros to `rank`.
 *
 * @param adapter The slot's adapter, or `null` for the base model (zeros).
 * @param sites The variant's sites, in forward order.
 * @param rank The batch's rank (≥ every slot's rank at these sites).
 * @returns The slot's `Aᵀ` and `Bᵀ` packs.
 * @example
 * ```ts
 * import { packSlot } from "./slot_packs.ts";
 * const site = { name: "q", inFeatures: 2, outFeatures: 1, module: "q_proj", layer: 0 } as const;
 * const pack = packSlot(null, [site], 1);
 * console.assert(pack.at.length === 2 && pack.bt.length === 1);
 * ```
 */
export function packSlot(
  adapter: PreparedAdapter | null,
  sites: readonly AdapterSite[],
  rank: number,
): SlotPack {
  const sumIn = sites.reduce((n, s) => n + s.inFeatures, 0);
  const sumOut = sites.reduce((n, s) => n + s.outFeatures, 0);
  const at = new Float32Array(sumIn * rank);
  const bt = new Float32Array(rank * sumOut);
  if (!adapter) return { at, bt };
  const own = new Map(adapter.sites.map((s) => [s.site, s]));
  let row = 0; // first row of this site's Aᵀ in [Σin, rank]
  let column = 0; // first column of this site's Bᵀ in each [rank, Σout] row
  for (const site of sites) {
    const p = own.get(site.name);
    if (p) {
      if (p.rank > rank) {
        throw new RangeError(
          `Cannot pack adapter "${adapter.key}" at rank ${rank}: site "${site.name}" has rank ${p.rank}`,
        );
      }
      // Aᵀ [in, r_p] into rows [row, row + in): in one copy when the ranks agree (the rows are then
      // contiguous), else row by row; Bᵀ [r_p, out] into the first r_p rows
      if (p.rank === rank) at.set(p.at, row * rank);
      else {
        for (let i = 0; i < site.inFeatures; i++) {
          at.set(p.at.subarray(i * p.rank, (i + 1) * p.rank), (row + i) * rank);
        }
      }
      for (let c = 0; c < p.rank; c++) {
        bt.set(p.bt.subarray(c * site.outFeatures, (c + 1) * site.outFeatures), c * sumOut + column);
      }
    }
    row += site.inFeatures;
    column += site.outFeatures;
  }
  return { at, bt };
}

/**
 * Two growable buffers that a runner's mixed-batch inputs are written into, so that a pass whose batch
 * changed allocates nothing (fresh arrays of a few hundred KiB per pass kept the garbage collector at ~4% of
 * an inference worker's time with 1,000 tenants). Each {@linkcode PackScratch.take} overwrites what the
 * previous one of the same name returned: use the arrays before taking again.
 *
 * @example
 * ```ts
 * import { PackScratch } from "./slot_packs.ts";
 * const scratch = new PackScratch();
 * const a = scratch.take("at", 4);
 * console.assert(a.length === 4 && scratch.take("at", 2).buffer === a.buffer);
 * ```
 */
export class PackScratch {
  #buffers: Record<"at" | "bt", Float32Array> = { at: new Float32Array(0), bt: new Float32Array(0) };

  /**
   * A view of `n` elements of one buffer (grown when too small; its contents are left as they were).
   *
   * @param name Which buffer.
   * @param n Elements.
   * @returns The view.
   */
  take(name: "at" | "bt", n: number): Float32Array {
    if (this.#buffers[name].length < n) {
      this.#buffers[name] = new Float32Array(Math.max(n, 2 * this.#buffers[name].length));
    }
    return this.#buffers[name].subarray(0, n);
  }
}

/** Options of {@linkcode SlotPacks}. */
export interface SlotPacksOptions {
  /**
   * Bytes of packs kept; past it the least recently used adapter's packs are dropped.
   * @default {64 MiB}
   */
  maxBytes?: number;
}

/**
 * Slot packs by adapter, site set and rank, reused across passes.
 *
 * @example
 * ```ts
 * import { SlotPacks } from "./slot_packs.ts";
 * const packs = new SlotPacks();
 * const site = { name: "q", inFeatures: 2, outFeatures: 1, module: "q_proj", layer: 0 } as const;
 * console.assert(packs.get(null, [site], 1) === packs.get(null, [site], 1));
 * ```
 */
export class SlotPacks {
  /** The byte budget. */
  readonly maxBytes: number;
  /** Packs by adapter key (least recently used first), then by site set and rank. */
  #byAdapter = new Map<string, Map<string, SlotPack>>();
  #bytes = 0;
  #built = 0;

  /** @param options Byte budget. */
  constructor(options: SlotPacksOptions = {}) {
    this.maxBytes = options.maxBytes ?? 64 * 2 ** 20;
  }

  /** Bytes of packs kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Packs built so far (the others were reused). */
  get built(): number {
    return this.#built;
  }

  /**
   * A slot's pack, reused when this adapter was packed for the same sites and rank before.
   *
   * @param adapter The slot's adapter, or `null` for the base model.
   * @param sites The variant's sites, in forward order.
   * @param rank The batch's rank.
   * @returns The pack (do not modify it: later passes share it).
   */
  get(adapter: PreparedAdapter | null, sites: readonly AdapterSite[], rank: number): SlotPack {
    const owner = adapter?.key ?? "";
    const key = `${rank}|${sites.map((s) => s.name).join(",")}`;
    let packs = this.#byAdapter.get(owner);
    const hit = packs?.get(key);
    if (packs) {
      this.#byAdapter.delete(owner); // most recently used last
      this.#byAdapter.set(owner, packs);
    }
    if (hit) return hit;
    const pack = packSlot(adapter, sites, rank);
    this.#built++;
    if (!packs) this.#byAdapter.set(owner, packs = new Map());
    packs.set(key, pack);
    this.#bytes += pack.at.byteLength + pack.bt.byteLength;
    for (const [old] of this.#byAdapter) {
      if (this.#bytes <= this.maxBytes || old === owner) break;
      this.evict(old);
    }
    return pack;
  }

  /**
   * Drops an adapter's packs (after the adapter cache evicted it).
   *
   * @param key The adapter's cache key.
   */
  evict(key: string): void {
    const packs = this.#byAdapter.get(key);
    if (!packs) return;
    for (const p of packs.values()) this.#bytes -= p.at.byteLength + p.bt.byteLength;
    this.#byAdapter.delete(key);
  }
}
