/**
 * The host-side state of a gated LoRA adapter between graph builds: per candidate site its rank, scale,
 * gate, whether it is still active, and its A and B factors. Training graphs are rebuilt from this state
 * whenever the set of active sites or their ranks change.
 *
 * @module
 */

import type { AdapterSite } from "../models/sites.ts";
import { Prng } from "../models/sampling.ts";

/** One candidate site of a gated adapter. */
export interface AdapterSiteState {
  /** The linear layer. */
  site: AdapterSite;
  /** Current rank. */
  rank: number;
  /** Scale s of B A x (fixed at the initial rank's `alpha / r`, or `alpha / √r` with rsLoRA). */
  scale: number;
  /** Gate value (1 until selection changes it; 0 for dropped sites). */
  gate: number;
  /** Whether the site still carries an adapter (dropped sites have no parameters and no compute). */
  active: boolean;
  /** A, `[rank, inFeatures]`. */
  a: Float32Array;
  /** B, `[outFeatures, rank]`. */
  b: Float32Array;
}

/** The LoRA scale for a rank. */
export function loraScale(alpha: number, rank: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

/**
 * A deterministic generator for one purpose and site, independent of how many numbers other purposes
 * drew: a resumed run re-creates exactly the same initialisations.
 *
 * @param seed The run's seed.
 * @param purpose What the numbers are for (e.g. `"init"`, `"grow-1"`).
 * @param index The site's index.
 * @returns A generator.
 */
export function purposePrng(seed: number, purpose: string, index: number): Prng {
  let h = 2166136261;
  for (const ch of `${purpose}#${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return new Prng((seed * 4294967296 + h) % Number.MAX_SAFE_INTEGER);
}

/**
 * Kaiming-uniform draws as PyTorch's `nn.Linear` / PEFT's `lora_A` init: U(−1/√in, 1/√in).
 *
 * @param prng The generator.
 * @param inFeatures Fan-in.
 * @returns A function drawing one value.
 */
export function kaimingUniform(prng: Prng, inFeatures: number): () => number {
  const bound = 1 / Math.sqrt(inFeatures);
  return () => (prng.next() * 2 - 1) * bound;
}

/** Options for {@linkcode initAdapter}. */
export interface InitAdapterOptions {
  /** Rank of every site. */
  rank: number;
  /** LoRA alpha. */
  alpha: number;
  /** rsLoRA scaling. */
  rslora: boolean;
  /** Seed of the A initialisation. */
  seed: number;
}

/**
 * A fresh adapter: A Kaiming-uniform, B zero, gate 1 at every site.
 *
 * @param sites Candidate sites in model order.
 * @param options Rank, alpha, scaling and seed.
 * @returns One state per site, all active.
 */
export function initAdapter(sites: readonly AdapterSite[], options: InitAdapterOptions): AdapterSiteState[] {
  return sites.map((site, i) =>
    reinitSite(
      {
        site,
        rank: options.rank,
        scale: loraScale(options.alpha, options.rank, options.rslora),
        gate: 1,
        active: true,
        a: new Float32Array(),
        b: new Float32Array(),
      },
      options.seed,
      i,
    )
  );
}

/**
 * Re-initialises a site's factors at its current rank (A Kaiming-uniform, B zero).
 *
 * @param state The site.
 * @param seed The run's seed.
 * @param index The site's index among the candidates.
 * @param purpose Distinguishes re-initialisations from the first one. @default "init"
 * @returns The site with new factors.
 */
export function reinitSite(
  state: AdapterSiteState,
  seed: number,
  index: number,
  purpose = "init",
): AdapterSiteState {
  const draw = kaimingUniform(purposePrng(seed, purpose, index), state.site.inFeatures);
  return {
    ...state,
    a: Float32Array.from({ length: state.rank * state.site.inFeatures }, draw),
    b: new Float32Array(state.site.outFeatures * state.rank),
  };
}

/** Trainable parameters of the active sites (A and B elements). */
export function adapterParameterCount(sites: readonly AdapterSiteState[]): number {
  return sites.filter((s) => s.active).reduce((n, s) => n + s.a.length + s.b.length, 0);
}
