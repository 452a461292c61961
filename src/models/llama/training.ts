/**
 * The training forward of a Llama-family model: `input_ids`, `labels` and `attention_mask` (int64
 * `[batch, seq]`, fixed per build) → `loss`, the mean next-token cross-entropy over counted targets
 * (Hugging Face convention: `labels` has the length of `input_ids` and is shifted inside the loss; -100 is
 * ignored). Optionally also `logits` `[batch, seq, vocab]`. By default only the positions whose target
 * counts reach the final norm and `lm_head` (found in the graph from `labels`), so prompt tokens and padding
 * cost no vocabulary projection.
 *
 * Autodiff differentiates this graph from the adapter inputs to the loss, so on those paths it uses only
 * MatMul (MatMulNBits on a quantized base), Gemm, Add, Sub, Mul, Div, Sqrt, Sigmoid, Softmax, ReduceMean,
 * Reshape, Transpose, Unsqueeze, Slice, Concat, Split, Gather and SoftmaxCrossEntropyLoss; masks, RoPE tables
 * and the counted positions depend only on int inputs and constants.
 *
 * @module
 */

import { attr, GraphBuilder, type Value } from "../../onnx/builder.ts";
import type { Model } from "../../onnx/types.ts";
import type { LlamaConfig } from "../config.ts";
import { llamaForward, type LlamaWeights } from "./forward.ts";
import type { AdapterHook } from "../sites.ts";

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
   * Also output `logits` `[batch, seq, vocab]` (implies `logitsAt: "all"`).
   * @default {false}
   */
  outputLogits?: boolean;
  /**
   * Where the classifier runs: `counted` gathers the positions whose next-token target is counted (not -100)
   * before the final norm and `lm_head`, so ignored targets (prompt tokens, padding) cost no vocabulary
   * projection; `all` projects every position, then ignores the uncounted ones in the loss. The loss is the
   * same.
   * @default {"counted"}
   */
  logitsAt?: "all" | "counted";
}

/**
 * Builds the training forward (loss graph). Positions are `0 … seq − 1` in every row (right padding).
 *
 * @param model Model shape and Hugging Face-named weights. Quantized linear weights (`config.quantization`)
 *   stay quantized: they run as onnxruntime's MatMulNBits, whose gradient rule dequantizes each layer in the
 *   graph only while its backward runs (QLoRA-style: the base costs its quantized size).
 * @param options Static batch and sequence sizes, adapter hook, logits output, where logits are computed.
 * @returns The ONNX model: inputs `input_ids`, `labels`, `attention_mask` (plus the hook's), outputs
 *   `loss` (float32 scalar) and optionally `logits`.
 * @throws {RangeError} When the sizes are not positive integers or `seqLen` < 2.
 * @example
 * ```ts ignore
 * const model = buildLlamaTrainingGraph({ config, weights }, { batchSize: 8, seqLen: 256 });
 * ```
 */
export function buildLlamaTrainingGraph(
  model: { config: LlamaConfig; weights: LlamaWeights },
  options: LlamaTrainingGraphOptions,
): Model {
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

  // next-token loss: position t predicts labels[t + 1]; -100 targets are not counted
  let scores: Value, targets: Value, logits: Value | undefined;
  if (options.outputLogits || (options.logitsAt ?? "counted") === "all") {
    logits =
      llamaForward(b, model, { inputIds, positionIds, attentionMask }, { adapter: options.adapter }).logits;
    scores = b.reshape(b.slice(logits, [0], [-1], [1]), [-1, vocab]);
    targets = b.reshape(b.slice(labels, [1], [Number.MAX_SAFE_INTEGER], [1]), [-1]);
  } else {
    // the flattened positions whose target counts (the last of each row has none), found from the labels
    // before the forward, so that only their hidden states go through the final norm and lm_head
    const counted = b.withScope("counted_targets", () => {
      const next = b.concat([
        b.slice(labels, [1], [Number.MAX_SAFE_INTEGER], [1]),
        b.constant(new Array<number>(batch).fill(IGNORE_INDEX), "int64", [batch, 1]),
      ], 1);
      const flat = b.reshape(next, [-1]);
      const keep = b.not(b.equal(flat, b.constant([IGNORE_INDEX], "int64", [])));
      const rows = b.reshape(b.node("NonZero", [keep])[0], [-1]);
      return { rows, targets: b.gather(flat, rows, 0) };
    });
    scores = llamaForward(b, model, { inputIds, positionIds, attentionMask }, {
      adapter: options.adapter,
      logitRows: counted.rows,
    }).logits;
    targets = counted.targets;
  }
  const loss = b.withScope("loss", () => {
    return b.node("SoftmaxCrossEntropyLoss", [scores, targets], {
      ignore_index: attr.int(IGNORE_INDEX),
      reduction: attr.string("mean"),
    }, { outputNames: ["loss"], name: "loss/SoftmaxCrossEntropyLoss" })[0];
  });
  b.output(loss);
  if (options.outputLogits) b.output(logits!, "logits");
  return b.toModel({
    metadata: { "weightlora.graph": "train", "weightlora.config": JSON.stringify(model.config) },
  });
}
