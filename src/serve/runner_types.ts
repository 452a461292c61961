/**
 * The messages between the engine and its batch runners (in-process or in workers): rows to generate,
 * the events they produce, and the per-step figures.
 *
 * @module
 */

export type {
  RowEvent,
  RowFinishReason,
  RowRequest,
  TokenLogprob,
  TopLogprob,
} from "../models/decode_row.ts";

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
  /** Time inside `session.run` (onnxruntime, its copies of the inputs included), ms. */
  runMs: number;
  /** Time choosing the variant and building the adapter feeds (packing, index), ms. */
  feedMs: number;
}
