/**
 * Token sampling: greedy (temperature 0), temperature, top-k and top-p (nucleus) over one row of logits,
 * driven by {@linkcode Prng}, a seeded deterministic generator (xoshiro128**), so the same seed gives the
 * same tokens on every run and platform.
 *
 * @module
 */

/** Sampling settings (Hugging Face order: temperature, then top-k, then top-p). */
export interface SamplingOptions {
  /**
   * Softmax temperature; 0 picks the most likely token (greedy).
   * @default {0}
   */
  temperature?: number;
  /**
   * Keep only the k most likely tokens; 0 keeps all.
   * @default {0}
   */
  topK?: number;
  /**
   * Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
   * @default {1}
   */
  topP?: number;
}

function splitMix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A seeded pseudo-random generator (xoshiro128**, state seeded by SplitMix32 from both 32-bit halves of
 * the seed). Deterministic across runs and platforms.
 *
 * @example
 * ```ts
 * import { Prng } from "./sampling.ts";
 * const a = new Prng(42), b = new Prng(42);
 * console.assert(a.next() === b.next());
 * ```
 */
export class Prng {
  #s = new Uint32Array(4);

  /**
   * Creates a generator.
   *
   * @param seed A non-negative safe integer.
   * @throws {RangeError} When the seed is not a non-negative safe integer.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Cannot seed the sampler: the seed must be a non-negative integer, got ${seed}`);
    }
    const mix = splitMix32((seed % 2 ** 32) ^ Math.imul(Math.floor(seed / 2 ** 32), 0x9e3779b9));
    for (let i = 0; i < 4; i++) this.#s[i] = mix();
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A float in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextUint32() / 2 ** 32;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Checks sampling settings, naming the bad one.
 *
 * @param options The settings.
 * @throws {RangeError} When temperature < 0, top-k is not a non-negative integer, or top-p ∉ (0, 1].
 */
export function validateSampling(options: SamplingOptions): void {
  const { temperature = 0, topK = 0, topP = 1 } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`Invalid temperature ${temperature}: it must be a finite number ≥ 0`);
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(`Invalid top-k ${topK}: it must be an integer ≥ 0 (0 keeps all tokens)`);
  }
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`Invalid top-p ${topP}: it must be in (0, 1]`);
}

/**
 * The index of the largest value (the first one on ties).
 *
 * @param logits One row of logits.
 * @returns The argmax.
 */
export function argMax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Picks the next token from one row of logits.
 *
 * @param logits Logits over the vocabulary (not modified).
 * @param options Temperature, top-k, top-p.
 * @param rng The random source (unused when greedy).
 * @returns The token id.
 * @example
 * ```ts
 * import { Prng, sampleToken } from "./sampling.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * console.assert(sampleToken(logits, { temperature: 0 }, new Prng(1)) === 1);
 * console.assert(sampleToken(logits, { temperature: 1, topK: 1 }, new Prng(1)) === 1);
 * ```
 */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Prng): number {
  const { temperature = 0, topK = 0, topP = 1 } = options;
  if (temperature === 0) return argMax(logits);
  const n = logits.length;
  if (n === 1) return 0;
  let max = logits[0];
  for (let i = 1; i < n; i++) if (logits[i] > max) max = logits[i];
  // candidates, most likely first: the top k, or every token that can be in the nucleus
  let order: number[];
  let mass = 0; // the softmax denominator over the candidates (over all tokens when not top-k)
  if (topK > 0 && topK < n) order = topIndices(logits, topK);
  else if (topP < 1) {
    // llama2.c's shortcut: a token below (1 − p) / (n − 1) of the mass can never be needed to reach p
    for (let i = 0; i < n; i++) mass += Math.exp((logits[i] - max) / temperature);
    const cutoff = ((1 - topP) / (n - 1)) * mass;
    order = [];
    for (let i = 0; i < n; i++) if (Math.exp((logits[i] - max) / temperature) >= cutoff) order.push(i);
    order.sort((a, b) => logits[b] - logits[a] || a - b);
  } else {
    order = [];
    for (let i = 0; i < n; i++) order.push(i);
  }
  // softmax over the candidates at this temperature (the full sum when every token is a candidate)
  const probs = new Float64Array(order.length);
  let sum = 0;
  for (let i = 0; i < order.length; i++) {
    probs[i] = Math.exp((logits[order[i]] - max) / temperature);
    sum += probs[i];
  }
  if (mass === 0) mass = sum;
  // nucleus: the shortest prefix whose probability reaches top-p
  let keep = order.length;
  if (topP < 1) {
    let cumulative = 0;
    for (let i = 0; i < order.length; i++) {
      cumulative += probs[i] / mass;
      if (cumulative >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let total = 0;
  for (let i = 0; i < keep; i++) total += probs[i];
  const r = rng.next() * total;
  let acc = 0;
  for (let i = 0; i < keep; i++) {
    acc += probs[i];
    if (r < acc) return order[i];
  }
  return order[keep - 1];
}

/** Indices of the k largest values, in decreasing order (ties: lower index first). */
function topIndices(values: ArrayLike<number>, k: number): number[] {
  const n = values.length;
  // keep a sorted window of the best k seen so far; cheap when k ≪ n
  const best: number[] = [];
  for (let i = 0; i < n; i++) {
    if (best.length === k && values[i] <= values[best[k - 1]]) continue;
    let lo = 0, hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[best[mid]] >= values[i]) lo = mid + 1;
      else hi = mid;
    }
    best.splice(lo, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
