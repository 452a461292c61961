/**
 * The training forward of a Llama-family model: `input_ids`, `labels` and `attention_mask` (int64
 * `[batch, seq]`, fixed per build) → `loss`, the mean next-token cross-entropy over counted targets
 * (Hugging Face convention: `labels` has the length of `input_ids` and is shifted inside the loss; -100 is
 * ignored). Optionally also `logits` `[batch, seq, vocab]`.
 *
 * Autodiff differentiates this graph from the adapter inputs to the loss, so on those paths it uses only
 * MatMul, Gemm, Add, Sub, Mul, Div, Sqrt, Sigmoid, Softmax, ReduceMean, Reshape, Transpose, Unsqueeze,
 * Slice, Concat, Split, Gather and SoftmaxCrossEntropyLoss; masks and RoPE tables depend only on int
 * inputs and constants.
 *
 * @module
 */

import { attr, GraphBuilder } from "../../onnx/builder.ts";
import type { Model } from "../../onnx/types.ts";
import type { LlamaConfig } from "../config.ts";
import { llamaForward, type LlamaWeights } from "./forward.ts";
import type { AdapterHook } from "../sites.ts";
import { dequantizeModelWeights } from "../../io/quantized_weights.ts";

/** The label id the loss ignores (PyTorch's and Hugging Face's convention). */
export const IGNORE_INDEX = -100;

/** Options for {@linkcode buildLlamaTrainingGraph}. */
export interface LlamaTrainingGraphOptions {
  /** Rows per step. */
  batchSize: number;
  /**
   * Tokens per row (at least 2: one input and one target), or `"dynamic"`: each run's inputs set it (a batch
   * padded to its own longest row, not the dataset's).
   */
  seqLen: number | "dynamic";
  /** Called at every linear layer (gated LoRA attaches here; its tensors become graph inputs). */
  adapter?: AdapterHook;
  /**
   * Also output `logits` `[batch, seq, vocab]`.
   * @default {false}
   */
  outputLogits?: boolean;
}

/**
 * Builds the training forward (loss graph). Positions are `0 … seq − 1` in every row (right padding).
 *
 * @param quantizedOrFloat Model shape and Hugging Face-named weights; quantized linear weights
 *   (`config.quantization`) are dequantized to float32 first ({@linkcode dequantizeModelWeights}), so the
 *   graph holds float base weights and only standard ops.
 * @param options Static batch and sequence sizes, adapter hook, logits output.
 * @returns The ONNX model: inputs `input_ids`, `labels`, `attention_mask` (plus the hook's), outputs
 *   `loss` (float32 scalar) and optionally `logits`.
 * @throws {RangeError} When the sizes are not positive integers or `seqLen` < 2.
 * @example
 * ```ts ignore
 * const model = buildLlamaTrainingGraph({ config, weights }, { batchSize: 8, seqLen: 256 });
 * ```
 */
export function buildLlamaTrainingGraph(
  quantizedOrFloat: { config: LlamaConfig; weights: LlamaWeights },
  options: LlamaTrainingGraphOptions,
): Model {
  // autodiff has rules for standard ops only: a quantized base is dequantized to float32 here
  const model = dequantizeModelWeights(quantizedOrFloat);
  const { batchSize: batch, seqLen: seq } = options;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(
      `Cannot build the training graph: batchSize must be a positive integer, got ${batch}`,
    );
  }
  if (seq !== "dynamic" && (!Number.isInteger(seq) || seq < 2)) {
    throw new RangeError(`Cannot build the training graph: seqLen must be an integer ≥ 2, got ${seq}`);
  }
  const vocab = model.config.vocabSize;
  const b = new GraphBuilder(`${model.config.architecture}_train`);
  const dims = [batch, seq === "dynamic" ? "seq" : seq];
  const inputIds = b.input("input_ids", "int64", dims);
  const labels = b.input("labels", "int64", dims);
  const attentionMask = b.input("attention_mask", "int64", dims);
  let positionIds;
  if (seq === "dynamic") {
    // 0 … seq − 1 in every row, from the run's sequence length
    const length = b.reshape(b.shapeOf(inputIds, 1, 2), []);
    const row = b.unsqueeze(b.range(b.constant([0], "int64", []), length, b.constant([1], "int64", [])), [0]);
    positionIds = b.expand(row, b.shapeOf(inputIds));
  } else {
    const positions = new Array<number>(batch * seq);
    for (let i = 0; i < positions.length; i++) positions[i] = i % seq;
    positionIds = b.constant(positions, "int64", [batch, seq]);
  }

  const { logits } = llamaForward(b, model, { inputIds, positionIds, attentionMask }, {
    adapter: options.adapter,
    logits: "all",
  });

  // next-token loss: logits at 0 … seq−2 predict labels at 1 … seq−1; -100 targets are not counted
  const loss = b.withScope("loss", () => {
    const scores = b.reshape(b.slice(logits, [0], [-1], [1]), [-1, vocab]);
    const targets = b.reshape(b.slice(labels, [1], [Number.MAX_SAFE_INTEGER], [1]), [-1]);
    return b.node("SoftmaxCrossEntropyLoss", [scores, targets], {
      ignore_index: attr.int(IGNORE_INDEX),
      reduction: attr.string("mean"),
    }, { outputNames: ["loss"], name: "loss/SoftmaxCrossEntropyLoss" })[0];
  });
  b.output(loss);
  if (options.outputLogits) b.output(logits, "logits");
  return b.toModel({
    metadata: { "weightlora.graph": "train", "weightlora.config": JSON.stringify(model.config) },
  });
}
