/**
 * The messages between the engine and its batch runners (in-process or in workers): rows to generate,
 * the events they produce, and the per-step figures.
 *
 * @module
 */

import type { SamplingOptions } from "../models/sampling.ts";

/** One sequence to generate. */
export interface RowRequest extends SamplingOptions {
  /** Unique id (assigned by the engine). */
  id: number;
  /** Prompt token ids (BOS included when wanted), shorter than the model's context. */
  promptIds: number[];
  /** Most tokens to generate (the EOS token counts). */
  maxTokens: number;
  /** PRNG seed of this row. */
  seed: number;
  /** Stop strings (the row ends before the first; it is not emitted). */
  stop: string[];
  /** Report log-probabilities with this many alternatives (0: only the sampled token's); omit for none. */
  logprobs?: number;
  /** Token ids that end the row. @default the tokenizer's and the config's EOS ids */
  eosIds?: number[];
}

/** A token alternative with its log-probability. */
export interface TopLogprob {
  /** Vocabulary text (`▁` shown as a space). */
  token: string;
  /** Token id. */
  tokenId: number;
  /** Natural log of its probability under the model (temperature 1). */
  logprob: number;
}

/** The sampled token's log-probability and the most likely alternatives. */
export interface TokenLogprob extends TopLogprob {
  /** The most likely tokens, best first. */
  top: TopLogprob[];
}

/** Why a row ended. */
export type RowFinishReason = "eos" | "stop" | "length" | "cancelled" | "error";

/** What a row produced at one step. */
export interface RowEvent {
  /** The row. */
  id: number;
  /** The sampled token (absent on `cancelled` and `error`). */
  tokenId?: number;
  /** Text this token completes (often `""`). */
  text: string;
  /** Present when the row asked for log-probabilities. */
  logprob?: TokenLogprob;
  /** Set on the row's last event. */
  finishReason?: RowFinishReason;
  /** The failure, on `error`. */
  error?: string;
}

/** Figures of one forward pass. */
export interface StepInfo {
  /** Which graph ran. */
  kind: "prefill" | "decode";
  /** Rows in the pass. */
  rows: number;
  /** Distinct adapter slots in the pass (the base model counts as one). */
  slots: number;
  /** Cache width (decode) or padded prompt length (prefill). */
  width: number;
  /** Wall time of the pass including feeds and reading logits, ms. */
  ms: number;
}
