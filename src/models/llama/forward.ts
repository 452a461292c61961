/**
 * The Llama-family decoder forward (Llama, Mistral, Qwen2) as an ONNX graph, written top to bottom like
 * llama2.c's `forward()`: token embedding, then per block attention RMSNorm → q/k/v → RoPE → attention
 * over the KV cache → output projection → residual, FFN RMSNorm → SwiGLU → down projection → residual,
 * then the final norm and the classifier. Hugging Face names throughout.
 *
 * The inference graphs ({@linkcode buildLlamaInferenceGraph}) and the training forward
 * ({@linkcode buildLlamaTrainingGraph}) both call {@linkcode llamaForward}.
 *
 * @module
 */

import { attr, type GraphBuilder, type Value } from "../../onnx/builder.ts";
import type { TensorData } from "../../onnx/types.ts";
import type { LlamaConfig } from "../config.ts";
import { type AdapterHook, adapterSite, linear, type LlamaModule, projectionMatMul } from "../sites.ts";
import { applyRope, ropeInverseFrequencies, ropeTables } from "../rope.ts";
import { WeightLoader } from "../_weights.ts";

/**
 * Model weights by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`), float32; a quantized
 * model (`config.quantization`) has `X.qweight`/`X.scales`/`X.qzeros` in place of linear `X.weight`.
 */
export type LlamaWeights = ReadonlyMap<string, TensorData>;

/** One layer's key/value cache, `[batch, numKeyValueHeads, positions, headDim]` each. */
export interface KvPair {
  /** Keys (after RoPE). */
  key: Value;
  /** Values. */
  value: Value;
}

/** The graph values the forward reads. */
export interface LlamaForwardInputs {
  /** int64 token ids `[batch, seq]`. */
  inputIds: Value;
  /** int64 positions `[batch, seq]` (per row, so left-padded rows start at 0 after their padding). */
  positionIds: Value;
  /** int64 `[batch, past + seq]`: 1 = attend, 0 = padding. */
  attentionMask: Value;
  /** The cache of earlier positions, one pair per layer (omit for a prefill). */
  past?: KvPair[];
}

/** Options for {@linkcode llamaForward}. */
export interface LlamaForwardOptions {
  /** Called at every linear layer with its base output (adapters attach here). */
  adapter?: AdapterHook;
  /**
   * Which positions get logits: `all` → `[batch, seq, vocab]`, `last` → `[batch, 1, vocab]`.
   * @default {"all"}
   */
  logits?: "all" | "last";
  /**
   * int64 `[count]` indices into the flattened `[batch · seq]` positions: only these get logits
   * (`[count, vocab]`), gathered before the final norm and the classifier (training counts only some
   * targets). Overrides `logits`.
   */
  logitRows?: Value;
  /** Graph names for the outputs (saves the Identity nodes that renaming would add). */
  names?: {
    /** Name of the logits value. */
    logits?: string;
    /** Names of layer `layer`'s present key and value. */
    present?: (layer: number) => { key: string; value: string };
  };
}

/** What the forward produces. */
export interface LlamaForwardResult {
  /** float32 logits `[batch, seq | 1, vocab]` (`[count, vocab]` with `logitRows`). */
  logits: Value;
  /** The cache including this call's positions, one pair per layer. */
  present: KvPair[];
}

/** The most negative float32: the additive bias of a masked attention score. */
const MASKED = -3.4028234663852886e38;

/**
 * Adds the decoder forward to `b`. Base weights become initializers (linear weights transposed to
 * `[in, out]`); every linear layer goes through {@linkcode linear}, so `options.adapter` sees all sites.
 *
 * @param b The graph builder.
 * @param model The model shape and weights.
 * @param inputs Token ids, positions, attention mask and optional past cache.
 * @param options Adapter hook and which logits to produce.
 * @returns Logits and the present cache.
 * @throws {Error} When a weight is missing or has the wrong shape (the message names the tensor).
 */
export function llamaForward(
  b: GraphBuilder,
  model: { config: LlamaConfig; weights: LlamaWeights },
  inputs: LlamaForwardInputs,
  options: LlamaForwardOptions = {},
): LlamaForwardResult {
  const { config } = model;
  const w = new WeightLoader(b, model.weights, { quantization: config.quantization });
  const dim = config.hiddenSize;
  const headDim = config.headDim;
  const nHeads = config.numAttentionHeads;
  const nKvHeads = config.numKeyValueHeads;
  const kvMul = nHeads / nKvHeads; // query heads sharing one key/value head (GQA)
  const vocab = config.vocabSize;
  if (!Number.isInteger(kvMul)) {
    throw new RangeError(
      `Cannot build the model graph: num_attention_heads (${nHeads}) is not a multiple of ` +
        `num_key_value_heads (${nKvHeads})`,
    );
  }
  if (inputs.past && inputs.past.length !== config.numHiddenLayers) {
    throw new RangeError(
      `Cannot build the model graph: ${inputs.past.length} past cache pairs for ${config.numHiddenLayers} layers`,
    );
  }

  // token embedding: embed_tokens [vocab, dim] gathered by input_ids → x [batch, seq, dim]
  const embedTokens = w.plain("model.embed_tokens.weight", [vocab, dim]);
  let x = b.withScope("model.embed_tokens", () => b.gather(embedTokens, inputs.inputIds, 0));

  // RoPE tables for this call's positions: cos, sin [batch, seq, 1, headDim]; the queries' tables also
  // carry the attention scale 1/√headDim (RoPE is linear, so scaling before or after is the same)
  const rope = ropeTables(b, inputs.positionIds, ropeInverseFrequencies(config));
  const scale = 1 / Math.sqrt(headDim);
  const ropeQ = b.withScope(
    "rotary_emb",
    () => ({ ...rope, cos: b.mul(rope.cos, scale), sin: b.mul(rope.sin, scale) }),
  );

  // attention bias [batch, 1, 1, seq, total]: 0 where query i may see key j (j ≤ past + i and key j is not
  // padding), the most negative float elsewhere; shared by every layer
  const bias = b.withScope("attention_mask", () => attentionBias(b, inputs.inputIds, inputs.attentionMask));

  const present: KvPair[] = [];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    const site = (module: LlamaModule) => adapterSite(config, l, module);
    const proj = (module: LlamaModule, input: Value, biasName?: string) => {
      const s = site(module);
      const weight = w.projection([s.name], [s.outFeatures], s.inFeatures);
      const bias = biasName ? w.plain(`${s.name}.${biasName}`, [s.outFeatures]) : undefined;
      return linear(b, s, input, weight, { bias, adapter: options.adapter });
    };
    b.withScope(p, () => {
      // attention RMSNorm
      const xb = rmsNorm(b, x, w.plain(`${p}.input_layernorm.weight`, [dim]), config.rmsNormEps);

      // q, k, v projections (Qwen2 adds biases): [batch, seq, heads, headDim]
      const qkvBias = config.attentionBias ? "bias" : undefined;
      let q = b.reshape(proj("q_proj", xb, qkvBias), [0, 0, nHeads, headDim]);
      let k = b.reshape(proj("k_proj", xb, qkvBias), [0, 0, nKvHeads, headDim]);
      const v = b.reshape(proj("v_proj", xb, qkvBias), [0, 0, nKvHeads, headDim]);

      // RoPE: rotate q (and scale it by 1/√headDim) and k by position
      q = b.withScope("rotary_q", () => applyRope(b, q, ropeQ));
      k = b.withScope("rotary_k", () => applyRope(b, k, rope));

      // kv_cache: append this call's keys and values, [batch, kvHeads, past + seq, headDim]
      const names = options.names?.present?.(l);
      const past = inputs.past?.[l];
      const cached = (fresh: Value, pastValue: Value | undefined, name: string | undefined) => {
        const outputNames = name ? [name] : undefined;
        if (!pastValue) {
          return b.node("Transpose", [fresh], { perm: attr.ints([0, 2, 1, 3]) }, { outputNames })[0];
        }
        const t = b.transpose(fresh, [0, 2, 1, 3]);
        return b.node("Concat", [pastValue, t], { axis: attr.int(2) }, { outputNames })[0];
      };
      const key = cached(k, past?.key, names?.key);
      const value = cached(v, past?.value, names?.value);
      present.push({ key, value });

      // attention over the cache; query head h reads key/value head h / kvMul, so queries are grouped
      // [batch, kvHeads, kvMul, seq, headDim] and keys broadcast over the group axis
      const qg = b.transpose(b.reshape(q, [0, 0, nKvHeads, kvMul, headDim]), [0, 2, 3, 1, 4]);
      // (Transpose feeding MatMul directly: onnxruntime fuses the pair into one transposed MatMul)
      const keyT = b.transpose(b.unsqueeze(key, [2]), [0, 1, 2, 4, 3]); // [batch, kvHeads, 1, headDim, total]
      const scores = b.add(b.matmul(qg, keyT), bias); // [batch, kvHeads, kvMul, seq, total]
      const att = b.softmax(scores, -1);
      const out = b.matmul(att, b.unsqueeze(value, [2])); // [batch, kvHeads, kvMul, seq, headDim]
      const merged = b.reshape(b.transpose(out, [0, 3, 1, 2, 4]), [0, 0, nHeads * headDim]);

      // output projection and residual
      x = b.add(x, proj("o_proj", merged));

      // FFN RMSNorm
      const xf = rmsNorm(b, x, w.plain(`${p}.post_attention_layernorm.weight`, [dim]), config.rmsNormEps);

      // SwiGLU: silu(gate_proj(x)) · up_proj(x), then down_proj, then residual
      const gate = proj("gate_proj", xf);
      const up = proj("up_proj", xf);
      const act = b.mul(b.mul(gate, b.sigmoid(gate)), up);
      x = b.add(x, proj("down_proj", act));
    });
  }

  // only the positions asked for: the given rows (training), or the last one (decoding)
  if (options.logitRows) {
    x = b.withScope("logit_rows", () => b.gather(b.reshape(x, [-1, dim]), options.logitRows!, 0));
  } else if (options.logits === "last") {
    x = b.unsqueeze(b.gather(x, b.constant([-1], "int64", []), 1), [1]);
  }

  // final RMSNorm
  x = b.withScope("model.norm", () => rmsNorm(b, x, w.plain("model.norm.weight", [dim]), config.rmsNormEps));

  // classifier into logits: lm_head, or the token embedding when tied
  const outputNames = options.names?.logits ? [options.names.logits] : undefined;
  const logits = b.withScope("lm_head", () => {
    if (config.tieWordEmbeddings) {
      const flat = b.reshape(x, [-1, dim]);
      const out = b.gemm(flat, embedTokens, undefined, { transB: true }); // [batch·seq, vocab]
      if (options.logitRows) return out;
      const [batch, seq] = x.shape;
      const target = typeof batch === "number" && typeof seq === "number"
        ? [batch, seq, vocab] // static shapes (training): no Shape op on the differentiated path
        : b.concat([b.shapeOf(x, 0, 2), b.ints([vocab])], 0);
      return b.node("Reshape", [out, Array.isArray(target) ? b.ints(target) : target], {}, {
        outputNames,
      })[0];
    }
    return projectionMatMul(b, x, w.projection(["lm_head"], [vocab], dim), {
      outputName: options.names?.logits,
    });
  });
  return { logits, present };
}

/**
 * RMSNorm: `x / sqrt(mean(x²) + eps) · weight` over the last axis, as Pow → ReduceMean → Add → Sqrt →
 * Div → Mul: the pattern onnxruntime fuses into one SimplifiedLayerNormalization kernel.
 */
function rmsNorm(b: GraphBuilder, x: Value, weight: Value, eps: number): Value {
  const variance = b.reduceMean(b.pow(x, 2), [-1]);
  return b.mul(b.div(x, b.sqrt(b.add(variance, eps))), weight);
}

/** The additive attention bias `[batch, 1, 1, seq, total]` from the mask and the causal order. */
function attentionBias(b: GraphBuilder, inputIds: Value, attentionMask: Value): Value {
  const scalarAt = (shapeOf: Value, axis: number) => b.gather(shapeOf, b.constant([axis], "int64", []), 0);
  const seq = scalarAt(b.shapeOf(inputIds), 1);
  const total = scalarAt(b.shapeOf(attentionMask), 1);
  const past = b.sub(total, seq);
  const keyPos = b.unsqueeze(b.range(0, total, 1), [0]); // [1, total]
  const queryPos = b.unsqueeze(b.add(b.range(0, seq, 1), past), [1]); // [seq, 1]
  const causal = b.cast(b.node("LessOrEqual", [keyPos, queryPos])[0], "float32"); // [seq, total]
  const keep = b.unsqueeze(b.cast(attentionMask, "float32"), [1, 2, 3]); // [batch, 1, 1, 1, total]
  const allowed = b.mul(causal, keep); // [batch, 1, 1, seq, total]: 1 or 0
  return b.mul(b.sub(1, allowed), MASKED);
}
