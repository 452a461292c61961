/**
 * Batches for static-shape training graphs: rows padded to `[batchSize, seqLen]` (labels −100 and
 * attention mask 0 on padding), drawn in a seeded shuffled order, epoch after epoch. The sampler's
 * position is plain data, so a resumed run draws the same batches as an uninterrupted one.
 *
 * @module
 */

import { Prng } from "../models/sampling.ts";
import { countTargets, type Example, IGNORE_LABEL } from "./data.ts";

/** One padded batch, ready to feed. */
export interface Batch {
  /** `[batchSize, seqLen]` token ids. */
  inputIds: BigInt64Array;
  /** `[batchSize, seqLen]` labels (−100 on padding and untrained tokens). */
  labels: BigInt64Array;
  /** `[batchSize, seqLen]`: 1 on real tokens, 0 on padding. */
  attentionMask: BigInt64Array;
  /** Counted next-token targets. */
  targets: number;
  /** Real (unpadded) tokens. */
  tokens: number;
  /** Tokens per row (the padded length). */
  seqLen: number;
}

/**
 * Pads examples into one batch.
 *
 * @param examples At most `batchSize` rows, each at most `seqLen` long.
 * @param shape Batch size, sequence length, the id used for padding, and whether rows are padded to
 *   `seqLen` (the default: a graph with a fixed sequence length) or to the batch's longest row (a graph
 *   whose sequence length each run sets).
 * @returns The batch.
 */
export function makeBatch(
  examples: readonly Example[],
  shape: { batchSize: number; seqLen: number; padId?: number; padTo?: "seqLen" | "longest" },
): Batch {
  const { batchSize } = shape;
  // padding per batch: rows are padded to the longest of them (at least 2 tokens), not to seqLen
  const seqLen = shape.padTo === "longest"
    ? Math.min(shape.seqLen, Math.max(2, ...examples.map((e) => e.inputIds.length)))
    : shape.seqLen;
  const n = batchSize * seqLen;
  const inputIds = new BigInt64Array(n).fill(BigInt(shape.padId ?? 0));
  const labels = new BigInt64Array(n).fill(BigInt(IGNORE_LABEL));
  // Rows with no example attend everywhere (no target is counted there) so no softmax row is empty.
  const attentionMask = new BigInt64Array(n).fill(1n);
  let targets = 0, tokens = 0;
  examples.forEach((example, row) => {
    if (row >= batchSize) {
      throw new RangeError(`Cannot batch ${examples.length} rows into a batch of ${batchSize}`);
    }
    if (example.inputIds.length > seqLen) {
      throw new RangeError(
        `Cannot batch a row of ${example.inputIds.length} tokens into sequences of ${seqLen}`,
      );
    }
    for (let t = 0; t < seqLen; t++) {
      const i = row * seqLen + t;
      if (t < example.inputIds.length) {
        inputIds[i] = BigInt(example.inputIds[t]);
        labels[i] = BigInt(example.labels[t]);
      } else attentionMask[i] = 0n;
    }
    targets += countTargets(example);
    tokens += example.inputIds.length;
  });
  return { inputIds, labels, attentionMask, targets, tokens, seqLen };
}

/** Where a {@linkcode BatchSampler} stands (for checkpoints). */
export interface SamplerState {
  /** Completed passes over the data. */
  epoch: number;
  /** Rows drawn in the current epoch. */
  position: number;
}

/** Draws rows in a shuffled order that depends only on the seed and the epoch. */
export class BatchSampler {
  #examples: readonly Example[];
  #seed: number;
  #order: number[] = [];
  #state: SamplerState = { epoch: 0, position: 0 };
  #groupBy: number;

  /**
   * Creates a sampler.
   *
   * @param examples The rows.
   * @param seed Shuffle seed.
   * @param options `groupByLength`: the batch size, to draw batches of rows of similar length (0: plain
   *   shuffle).
   */
  constructor(examples: readonly Example[], seed: number, options: { groupByLength?: number } = {}) {
    if (examples.length === 0) throw new RangeError("Cannot sample from an empty data set");
    this.#examples = examples;
    this.#seed = seed;
    this.#groupBy = options.groupByLength ?? 0;
    this.#shuffle();
  }

  #shuffle(): void {
    const prng = new Prng(this.#seed * 1000003 + this.#state.epoch);
    this.#order = Array.from({ length: this.#examples.length }, (_, i) => i);
    for (let i = this.#order.length - 1; i > 0; i--) {
      const j = prng.nextUint32() % (i + 1);
      [this.#order[i], this.#order[j]] = [this.#order[j], this.#order[i]];
    }
    const size = this.#groupBy;
    if (size > 1) {
      // group by length: within windows of 16 batches, sort rows by length and cut them into batches, then
      // shuffle the batches: a batch's rows have similar lengths, so little of it is padding
      const lengthOf = (i: number) => this.#examples[i].inputIds.length;
      const batches: number[][] = [];
      for (let w = 0; w < this.#order.length; w += size * 16) {
        const window = this.#order.slice(w, w + size * 16).sort((a, b) => lengthOf(b) - lengthOf(a));
        for (let k = 0; k < window.length; k += size) batches.push(window.slice(k, k + size));
      }
      for (let i = batches.length - 1; i > 0; i--) {
        const j = prng.nextUint32() % (i + 1);
        [batches[i], batches[j]] = [batches[j], batches[i]];
      }
      this.#order = batches.flat();
    }
  }

  /** The current position. */
  get state(): SamplerState {
    return { ...this.#state };
  }

  /** Moves to a saved position. */
  set state(state: SamplerState) {
    this.#state = { ...state };
    this.#shuffle();
  }

  /** Fractional epochs drawn so far. */
  get epochs(): number {
    return this.#state.epoch + this.#state.position / this.#examples.length;
  }

  /**
   * Draws the next `count` rows (crossing into the next epoch, reshuffled, when one ends).
   *
   * @param count Rows to draw.
   * @returns The rows.
   */
  next(count: number): Example[] {
    const out: Example[] = [];
    while (out.length < count) {
      if (this.#state.position >= this.#order.length) {
        this.#state = { epoch: this.#state.epoch + 1, position: 0 };
        this.#shuffle();
      }
      out.push(this.#examples[this.#order[this.#state.position++]]);
    }
    return out;
  }
}
