import assert from "node:assert/strict";
import { argMax, Prng, sampleToken, validateSampling } from "../../src/models/sampling.ts";

Deno.test("Prng: the same seed gives the same stream, values lie in [0, 1) and look uniform", () => {
  const a = new Prng(2026), b = new Prng(2026), c = new Prng(2027);
  const xs = Array.from({ length: 20000 }, () => a.next());
  const ys = Array.from({ length: 20000 }, () => b.next());
  assert.deepEqual(xs, ys);
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c.next()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  const buckets = new Array(10).fill(0);
  for (const x of xs) buckets[Math.floor(x * 10)]++;
  assert.ok(buckets.every((n) => Math.abs(n - 2000) < 200), `buckets ${buckets}`);
  // seeds past 2^32 still differ
  assert.notEqual(new Prng(2 ** 40).next(), new Prng(2 ** 40 + 2 ** 32).next());
  assert.throws(() => new Prng(-1), /seed must be a non-negative integer, got -1/);
  assert.throws(() => new Prng(1.5), /got 1\.5/);
});

function frequencies(logits: number[], options: Parameters<typeof sampleToken>[1], draws: number): number[] {
  const rng = new Prng(99);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(Float32Array.from(logits), options, rng)]++;
  return counts.map((n) => n / draws);
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** Each frequency within 4 standard errors of its probability. */
function assertMatches(freq: number[], probs: number[], draws: number): void {
  freq.forEach((f, i) => {
    const se = Math.sqrt((probs[i] * (1 - probs[i])) / draws) + 1e-9;
    assert.ok(Math.abs(f - probs[i]) <= 4 * se, `token ${i}: frequency ${f}, probability ${probs[i]}`);
  });
}

const LOGITS = [Math.log(0.4), Math.log(0.1), Math.log(0.3), Math.log(0.2)];

Deno.test("temperature sampling follows softmax(logits / T)", () => {
  const draws = 40000;
  assertMatches(frequencies(LOGITS, { temperature: 1 }, draws), [0.4, 0.1, 0.3, 0.2], draws);
  assertMatches(frequencies(LOGITS, { temperature: 2 }, draws), softmax(LOGITS.map((l) => l / 2)), draws);
  assertMatches(frequencies(LOGITS, { temperature: 0.5 }, draws), softmax(LOGITS.map((l) => l / 0.5)), draws);
});

Deno.test("top-k keeps the k most likely tokens, renormalised", () => {
  const draws = 40000;
  assertMatches(frequencies(LOGITS, { temperature: 1, topK: 2 }, draws), [4 / 7, 0, 3 / 7, 0], draws);
  assert.deepEqual(frequencies(LOGITS, { temperature: 5, topK: 1 }, 100), [1, 0, 0, 0]);
});

Deno.test("top-p keeps the smallest most-likely set reaching p", () => {
  const draws = 40000;
  // sorted: 0.4, 0.3 (cumulative 0.7 ≥ 0.5) → tokens 0 and 2
  assertMatches(frequencies(LOGITS, { temperature: 1, topP: 0.5 }, draws), [4 / 7, 0, 3 / 7, 0], draws);
  // 0.4 + 0.3 + 0.2 = 0.9 ≥ 0.85 → drops token 1 only
  assertMatches(frequencies(LOGITS, { temperature: 1, topP: 0.85 }, draws), [4 / 9, 0, 3 / 9, 2 / 9], draws);
  assert.deepEqual(frequencies(LOGITS, { temperature: 1, topP: 0.01 }, 100), [1, 0, 0, 0]);
  // top-k then top-p (Hugging Face's order): top-2 renormalised is 4/7, 3/7; p = 0.5 keeps only token 0
  assert.deepEqual(frequencies(LOGITS, { temperature: 1, topK: 2, topP: 0.5 }, 100), [1, 0, 0, 0]);
});

Deno.test("greedy is argmax (first index on ties) and ignores the generator", () => {
  assert.equal(sampleToken(Float32Array.from([1, 3, 3, 2]), { temperature: 0 }, new Prng(1)), 1);
  assert.equal(argMax([5, 1, 5]), 0);
  const big = Float32Array.from({ length: 32000 }, (_, i) => Math.sin(i));
  assert.equal(sampleToken(big, {}, new Prng(3)), argMax(big));
  // top-k over a large vocabulary picks among the k best only
  const rng = new Prng(4);
  const best = new Set([...big.keys()].sort((a, b) => big[b] - big[a]).slice(0, 5));
  for (let i = 0; i < 200; i++) assert.ok(best.has(sampleToken(big, { temperature: 1, topK: 5 }, rng)));
});

Deno.test("invalid sampling settings are rejected with the value", () => {
  assert.throws(() => validateSampling({ temperature: -0.5 }), /Invalid temperature -0\.5/);
  assert.throws(() => validateSampling({ temperature: Infinity }), /Invalid temperature Infinity/);
  assert.throws(() => validateSampling({ topK: -1 }), /Invalid top-k -1/);
  assert.throws(() => validateSampling({ topP: 1.2 }), /Invalid top-p 1\.2/);
  validateSampling({ temperature: 0.7, topK: 40, topP: 0.9 });
});
