/**
 * The **fused** inference graphs of a Llama-family model: the same function as
 * {@linkcode buildLlamaInferenceGraph}, written with onnxruntime's contrib ops so that a decode step is a few
 * large kernels instead of ~60 small ones per layer:
 *
 *     embed_tokens ─► SimplifiedLayerNormalization
 *     per block:  q/k/v in one MatMul ─► GroupQueryAttention (RoPE, GQA, KV cache append inside)
 *                 ─► o_proj ─► SkipSimplifiedLayerNormalization (residual add + RMSNorm in one)
 *                 ─► gate/up in one MatMul ─► Split ─► SiLU·up ─► down_proj ─► SkipSimplifiedLayerNormalization
 *     the last position of every row ─► lm_head
 *
 * Training graphs keep the standard ops that `src/autodiff` differentiates; these graphs are for inference
 * only. LoRA sites still see each linear layer's input and base output (the fused q/k/v and gate/up outputs
 * are split where an adapter attaches).
 *
 * **Cache layout.** GroupQueryAttention keeps each row's positions at the *start* of the cache: row r's
 * keys are columns `[0, len_r)`, whatever the batch width (the columns after are scratch). A call names
 * each row's length through `seqlens_k` (int32 `[batch]`: the row's length after this call, minus one) and
 * the widest row through `total_sequence_length` (int32 scalar: max over rows of `seqlens_k + 1`). A prefill
 * batch is right-padded: row r's prompt fills `input_ids[r, 0:len_r]`. Positions are implicit (a row's
 * token t sits at position t), so rows never see padding and need no attention mask.
 *
 * Inputs: `input_ids` int64 `[batch, seq]`, `seqlens_k`, `total_sequence_length`, `logits_index` int64
 * `[batch]` (for row r, `r·seq + t` where t is the position within this call whose logits are wanted:
 * `len_r − 1` in a prefill, 0 in a decode step), `position_ids` (only for head sizes that are not a
 * multiple of 16), for decode `past_kv` (see {@linkcode FUSED_CACHE});
 * LoRA inputs as in {@linkcode loraInputAdapter}. Outputs: `logits` float32 `[batch, vocab]` and
 * `present_kv`.
 *
 * @module
 */

import { attr, GraphBuilder, type Value } from "../../onnx/builder.ts";
import type { Model } from "../../onnx/types.ts";
import type { LlamaConfig } from "../config.ts";
import type { LlamaWeights } from "./forward.ts";
import { loraInputAdapter } from "../lora_inputs.ts";
import { checkInferenceGraphOptions } from "./inference.ts";
import { applyRope, ropeInverseFrequencies, type RopeTables, ropeTables } from "../rope.ts";
import {
  type AdapterHook,
  type AdapterSite,
  adapterSite,
  type LlamaModule,
  projectionMatMul,
} from "../sites.ts";
import { type ProjectionWeight, WeightLoader } from "../_weights.ts";

/** The onnxruntime contrib-op domain. */
const MS = "com.microsoft";

/** The extra inputs of the fused graphs (besides `input_ids`, the cache and LoRA tensors). */
export const FUSED_INPUTS = {
  /** int32 `[batch]`: each row's length after this call, minus one. */
  seqlensK: "seqlens_k",
  /** int32 scalar: the widest row's length after this call. */
  totalSequenceLength: "total_sequence_length",
  /** int64 `[batch]`: flat index `r·seq + t` of the position whose logits row r wants. */
  logitsIndex: "logits_index",
  /**
   * int64 `[batch, seq]`: each token's position, only in graphs whose head size is not a multiple of 16
   * (onnxruntime's GroupQueryAttention applies RoPE itself only then; see {@linkcode fusedRopeInside}).
   */
  positionIds: "position_ids",
} as const;

/**
 * The cache of the fused graphs: every layer's keys and values in **one** tensor, float32
 * `[2·layers·batch, kvHeads, positions, headDim]`, concatenated along the first axis in the order key 0,
 * value 0, key 1, …, so layer l's keys are the contiguous rows `[2l·batch, (2l+1)·batch)`. The decode graph
 * takes it as `past_kv` and yields `present_kv` in the same layout, so a step feeds the previous step's
 * output back as it is: one tensor in and one out per step instead of two per layer (each tensor costs a
 * copy and a call into onnxruntime).
 */
export const FUSED_CACHE = { past: "past_kv", present: "present_kv" } as const;

/**
 * How a fused graph computes attention for a head size:
 * - `gqa-rope`: one GroupQueryAttention node that also applies RoPE (its rotary kernel needs a head size
 *   that is a multiple of 16: Llama, Mistral, Qwen2, SmolLM, stories15M…);
 * - `gqa`: RotaryEmbedding nodes on q and k, then GroupQueryAttention (head size a multiple of 8, e.g.
 *   stories260K's 8);
 * - `standard`: standard ONNX ops with the same inputs, outputs and cache layout (any other head size, e.g.
 *   tiny test models) — slower, but every model runs on the one decode path.
 *
 * The two last kinds take `position_ids`.
 *
 * @param config Model shape.
 * @returns The attention kind.
 */
export function fusedAttentionKind(config: Pick<LlamaConfig, "headDim">): "gqa-rope" | "gqa" | "standard" {
  if (config.headDim % 16 === 0) return "gqa-rope";
  if (config.headDim % 8 === 0) return "gqa";
  return "standard";
}

/**
 * Whether GroupQueryAttention applies RoPE itself (see {@linkcode fusedAttentionKind}); otherwise the
 * graph takes `position_ids`.
 *
 * @param config Model shape.
 * @returns True when RoPE is applied inside the attention node.
 */
export function fusedRopeInside(config: Pick<LlamaConfig, "headDim">): boolean {
  return fusedAttentionKind(config) === "gqa-rope";
}

/** Options for {@linkcode buildLlamaFusedGraph}. */
export interface LlamaFusedGraphOptions {
  /** `prefill` (no past inputs) or `decode` (past inputs; on wasm it also serves prefills, fed an empty past). */
  kind: "prefill" | "decode";
  /** Sites (PEFT module paths) that take LoRA tensors as graph inputs. */
  loraSites?: readonly string[];
  /** A custom adapter hook (exclusive with `loraSites`); see {@linkcode AdapterHook}'s `covers`. */
  adapter?: AdapterHook;
}

/**
 * Builds a fused prefill or decode graph.
 *
 * @param model Model shape and Hugging Face-named weights.
 * @param options Graph kind and LoRA sites.
 * @returns The ONNX model (opset 18 + com.microsoft 1); its metadata records the kind, `fused` and the config.
 * @throws {Error} When a weight is missing or misshapen, or a LoRA site is not in the model.
 * @example
 * ```ts ignore
 * const decode = buildLlamaFusedGraph({ config, weights }, { kind: "decode" });
 * ```
 */
export function buildLlamaFusedGraph(
  model: { config: LlamaConfig; weights: LlamaWeights },
  options: LlamaFusedGraphOptions,
): Model {
  const { config } = model;
  checkInferenceGraphOptions(options);
  const nHeads = config.numAttentionHeads;
  const nKvHeads = config.numKeyValueHeads;
  if (!Number.isInteger(nHeads / nKvHeads)) {
    throw new RangeError(
      `Cannot build the model graph: num_attention_heads (${nHeads}) is not a multiple of ` +
        `num_key_value_heads (${nKvHeads})`,
    );
  }
  const b = new GraphBuilder(`${config.architecture}_fused_${options.kind}`);
  const inputIds = b.input("input_ids", "int64", ["batch", "seq"]);
  const seqlensK = b.input(FUSED_INPUTS.seqlensK, "int32", ["batch"]);
  const totalLength = b.input(FUSED_INPUTS.totalSequenceLength, "int32", []);
  const logitsIndex = b.input(FUSED_INPUTS.logitsIndex, "int64", ["batch"]);
  const positionIds = fusedRopeInside(config)
    ? undefined
    : b.input(FUSED_INPUTS.positionIds, "int64", ["batch", "seq"]);
  const layers = config.numHiddenLayers;
  const past: { key: Value; value: Value }[] = [];
  if (options.kind === "decode") {
    // one input in present_kv's layout, split in equal parts along the first axis (num_outputs, so that
    // onnxruntime cannot equate a part's shape with a present's and reuse its buffer for it)
    const packed = b.input(FUSED_CACHE.past, "float32", ["past_rows", nKvHeads, "past", config.headDim]);
    const parts = b.withScope(
      FUSED_CACHE.past,
      () =>
        b.node("Split", [packed], { axis: attr.int(0), num_outputs: attr.int(2 * layers) }, {
          outputs: 2 * layers,
        }),
    );
    for (let l = 0; l < layers; l++) past.push({ key: parts[2 * l], value: parts[2 * l + 1] });
  }
  const lora = options.loraSites ? loraInputAdapter(options.loraSites) : undefined;
  const { logits, present } = fusedForward(b, model, {
    inputIds,
    seqlensK,
    totalLength,
    logitsIndex,
    positionIds,
    past: options.kind === "decode" ? past : undefined,
    adapter: lora ?? options.adapter,
  });
  const unused = lora?.unused() ?? [];
  if (unused.length > 0) {
    throw new RangeError(
      `Cannot build the inference graph: LoRA site "${unused[0]}" is not a linear layer of this model`,
    );
  }
  b.output(logits);
  b.withScope(
    "present_kv",
    () =>
      b.node("Concat", present.flatMap((p) => [p.key, p.value]), { axis: attr.int(0) }, {
        outputNames: [FUSED_CACHE.present],
      }),
  );
  b.output(FUSED_CACHE.present);
  return b.toModel({
    metadata: {
      "weightlora.graph": options.kind,
      "weightlora.fused": "true",
      "weightlora.config": JSON.stringify(config),
    },
  });
}

interface FusedForwardInputs {
  inputIds: Value;
  seqlensK: Value;
  totalLength: Value;
  logitsIndex: Value;
  positionIds?: Value;
  past?: { key: Value; value: Value }[];
  adapter?: AdapterHook;
}

/** The decoder forward with contrib ops; returns the logits `[batch, vocab]` and each layer's present cache. */
function fusedForward(
  b: GraphBuilder,
  model: { config: LlamaConfig; weights: LlamaWeights },
  inputs: FusedForwardInputs,
): { logits: Value; present: { key: Value; value: Value }[] } {
  const { config } = model;
  const w = new WeightLoader(b, model.weights, { quantization: config.quantization });
  const dim = config.hiddenSize;
  const nHeads = config.numAttentionHeads;
  const nKvHeads = config.numKeyValueHeads;
  const vocab = config.vocabSize;
  const eps = config.rmsNormEps;
  const hook = inputs.adapter;
  const covers = (site: AdapterSite) => hook !== undefined && (hook.covers?.(site.name) ?? true);
  const adapt = (site: AdapterSite, x: Value, baseOut: Value) =>
    hook && covers(site) ? b.withScope(site.name, () => hook(b, site, x, baseOut)) : baseOut;

  // token embedding: embed_tokens [vocab, dim] gathered by input_ids → x [batch, seq, dim]
  const embedTokens = w.plain("model.embed_tokens.weight", [vocab, dim]);
  let x = b.withScope("model.embed_tokens", () => b.gather(embedTokens, inputs.inputIds, 0));

  // RoPE tables for every position the model supports, [positions, headDim / 2], applied inside
  // GroupQueryAttention at each row's own positions
  const { cos, sin } = b.withScope("rotary_emb", () => ropeCaches(b, config));

  // standard-op attention (head sizes GroupQueryAttention cannot take): masks and cache moves shared by
  // every layer
  const kind = fusedAttentionKind(config);
  const standard = kind === "standard"
    ? b.withScope("attention_mask", () => standardAttentionShared(b, inputs, config))
    : undefined;

  // the first block's attention RMSNorm; later norms come fused with the residual add before them
  const firstNorm = w.plain("model.layers.0.input_layernorm.weight", [dim]);
  let xn = b.node("SimplifiedLayerNormalization", [x, firstNorm], normAttributes(eps))[0];

  const present: { key: Value; value: Value }[] = [];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    const site = (module: LlamaModule) => adapterSite(config, l, module);
    const [qSite, kSite, vSite, oSite] = (["q_proj", "k_proj", "v_proj", "o_proj"] as const).map(site);
    const [gateSite, upSite, downSite] = (["gate_proj", "up_proj", "down_proj"] as const).map(site);
    b.withScope(p, () => {
      // q, k, v in one MatMul (Qwen2 adds biases); split only where an adapter attaches
      const qkvSites = [qSite, kSite, vSite];
      let qkv = b.withScope("self_attn.qkv_proj", () => {
        const out = projectionMatMul(b, xn, projection(w, qkvSites));
        if (!config.attentionBias) return out;
        // the biases concatenated like the weights (a Concat of initializers, folded by onnxruntime)
        return b.add(out, b.concat(qkvSites.map((s) => w.plain(`${s.name}.bias`, [s.outFeatures])), 0));
      });
      let key: Value | undefined;
      let value: Value | undefined;
      if (qkvSites.some(covers) || inputs.positionIds) {
        const [q, k, v] = b.split(qkv, qkvSites.map((s) => s.outFeatures), -1);
        qkv = adapt(qSite, xn, q);
        key = adapt(kSite, xn, k);
        value = adapt(vSite, xn, v);
      }
      // attention: RoPE on q and k, the cache append, grouped-query attention over each row's positions
      const attention = b.withScope("self_attn", () => {
        if (standard) {
          return standardAttention(b, {
            q: qkv,
            k: key!,
            v: value!,
            past: inputs.past?.[l],
            shared: standard,
            config,
          });
        }
        if (inputs.positionIds) {
          // RoPE outside the attention node (head sizes GroupQueryAttention cannot rotate)
          const positions = inputs.positionIds;
          qkv = b.withScope("rotary_q", () => rotary(b, qkv, positions, cos, sin, nHeads));
          key = b.withScope("rotary_k", () => rotary(b, key!, positions, cos, sin, nKvHeads));
        }
        return attentionNode(b, {
          qkv,
          key,
          value,
          past: inputs.past?.[l],
          seqlensK: inputs.seqlensK,
          totalLength: inputs.totalLength,
          cos: inputs.positionIds ? undefined : cos,
          sin: inputs.positionIds ? undefined : sin,
          nHeads,
          nKvHeads,
        });
      });
      present.push(attention.present);

      // output projection, then residual add + FFN RMSNorm in one node
      const oProj = b.withScope(oSite.name, () => projectionMatMul(b, attention.out, projection(w, [oSite])));
      const attnOut = adapt(oSite, attention.out, oProj);
      const postNorm = w.plain(`${p}.post_attention_layernorm.weight`, [dim]);
      let xf: Value;
      [xf, x] = skipNorm(b, attnOut, x, postNorm, eps);

      // SwiGLU: gate and up in one MatMul, silu(gate) · up, down projection
      const gateUpSites = [gateSite, upSite];
      const gateUp = b.withScope(
        "mlp.gate_up_proj",
        () => projectionMatMul(b, xf, projection(w, gateUpSites)),
      );
      const [gateBase, upBase] = b.split(gateUp, [gateSite.outFeatures, upSite.outFeatures], -1);
      const gate = adapt(gateSite, xf, gateBase);
      const up = adapt(upSite, xf, upBase);
      // silu(gate) = gate · sigmoid(gate) is onnxruntime's QuickGelu with alpha 1 (one kernel)
      const act = b.withScope("mlp.act", () => {
        const silu = b.node("QuickGelu", [gate], { alpha: attr.float(1) }, { domain: MS })[0];
        return b.mul(silu, up);
      });
      const down = adapt(
        downSite,
        act,
        b.withScope(downSite.name, () => projectionMatMul(b, act, projection(w, [downSite]))),
      );

      // residual add + the next block's attention RMSNorm (or the final norm) in one node
      const nextNorm = l + 1 < config.numHiddenLayers
        ? w.plain(`model.layers.${l + 1}.input_layernorm.weight`, [dim])
        : w.plain("model.norm.weight", [dim]);
      [xn, x] = skipNorm(b, down, x, nextNorm, eps);
    });
  }

  // the wanted position of each row: [batch·seq, dim] gathered at logits_index → [batch, dim]
  const last = b.withScope("model.norm", () => b.gather(b.reshape(xn, [-1, dim]), inputs.logitsIndex, 0));

  // classifier into logits [batch, vocab]: lm_head, or the token embedding when tied
  const logits = b.withScope("lm_head", () => {
    const outputNames = ["logits"];
    return config.tieWordEmbeddings
      ? b.node("Gemm", [last, embedTokens], { transB: attr.int(1) }, { outputNames })[0]
      : b.node("MatMul", [last, w.transposed("lm_head.weight", vocab, dim)], {}, { outputNames })[0];
  });
  return { logits, present };
}

/** What every layer's standard-op attention shares: RoPE tables, the cache move and the mask. */
interface StandardShared {
  /** RoPE tables at `position_ids`. */
  rope: RopeTables;
  /** float32 `[batch, 1, width, width]` 0/1: present column c takes concat column `source(b, c)`. */
  move?: Value;
  /** Additive bias `[batch, 1, 1, seq, width]`: 0 where a query may see a key, the most negative float elsewhere. */
  bias: Value;
}

/** The most negative float32: the additive bias of a masked attention score. */
const MASKED = -3.4028234663852886e38;

/**
 * The shared parts of standard-op attention with GroupQueryAttention's cache semantics: row b's past
 * length is `max(seqlens_k[b] + 1 − seq, 0)` (0 in a first prompt), its new keys go to columns
 * `[past_b, past_b + seq)` of a present as wide as past + seq, and query s sees keys `c ≤ past_b + s`.
 */
function standardAttentionShared(
  b: GraphBuilder,
  inputs: FusedForwardInputs,
  config: LlamaConfig,
): StandardShared {
  const scalarAt = (shapeOf: Value, axis: number) => b.gather(shapeOf, b.constant([axis], "int64", []), 0);
  const seq = scalarAt(b.shapeOf(inputs.inputIds), 1);
  const past = inputs.past ? scalarAt(b.shapeOf(inputs.past[0].key), 2) : b.constant([0], "int64", []);
  const width = b.add(past, seq);
  const pastLen = b.max(b.sub(b.add(b.cast(inputs.seqlensK, "int64"), 1), seq), b.constant([0], "int64", [])); // [batch]
  const column = b.range(0, width, 1); // [width]
  // mask: query s of row b sees key c when c ≤ past_b + s
  const queryPos = b.add(b.unsqueeze(pastLen, [1]), b.unsqueeze(b.range(0, seq, 1), [0])); // [batch, seq]
  const allowed = b.cast(
    b.node("LessOrEqual", [b.unsqueeze(column, [0, 1]), b.unsqueeze(queryPos, [2])])[0],
    "float32",
  ); // [batch, seq, width]
  const bias = b.unsqueeze(b.mul(b.sub(1, allowed), MASKED), [1, 2]);
  const rope = ropeTables(b, inputs.positionIds!, ropeInverseFrequencies(config));
  if (!inputs.past) return { rope, bias };
  // cache move: concat(past, new) has row b's new keys at columns [past, past + seq); present wants them at
  // [past_b, past_b + seq): column c takes c (c < past_b) or c − past_b + past, clamped to the last column
  const c = b.unsqueeze(column, [0]); // [1, width]
  const pl = b.unsqueeze(pastLen, [1]); // [batch, 1]
  const moved = b.min(b.add(b.sub(c, pl), past), b.sub(width, 1));
  const source = b.where(b.node("Less", [c, pl])[0], c, moved); // [batch, width]
  const onehot = b.cast(
    b.node("Equal", [b.unsqueeze(source, [2]), b.unsqueeze(column, [0, 1])])[0],
    "float32",
  );
  return { rope, bias, move: b.unsqueeze(onehot, [1]) };
}

/** Attention with standard ops over the fused graphs' cache layout (see {@linkcode standardAttentionShared}). */
function standardAttention(
  b: GraphBuilder,
  a: {
    q: Value;
    k: Value;
    v: Value;
    past?: { key: Value; value: Value };
    shared: StandardShared;
    config: LlamaConfig;
  },
): { out: Value; present: { key: Value; value: Value } } {
  const { numAttentionHeads: nHeads, numKeyValueHeads: nKvHeads, headDim } = a.config;
  const kvMul = nHeads / nKvHeads;
  const q = b.withScope(
    "rotary_q",
    () => applyRope(b, b.mul(b.reshape(a.q, [0, 0, nHeads, headDim]), 1 / Math.sqrt(headDim)), a.shared.rope),
  );
  const k = b.withScope(
    "rotary_k",
    () => applyRope(b, b.reshape(a.k, [0, 0, nKvHeads, headDim]), a.shared.rope),
  );
  const v = b.reshape(a.v, [0, 0, nKvHeads, headDim]);
  const cache = (fresh: Value, past: Value | undefined) => {
    const t = b.transpose(fresh, [0, 2, 1, 3]); // [batch, kvHeads, seq, headDim]
    if (!past || !a.shared.move) return t;
    return b.matmul(a.shared.move, b.concat([past, t], 2)); // [batch, kvHeads, width, headDim]
  };
  const key = cache(k, a.past?.key);
  const value = cache(v, a.past?.value);
  const qg = b.transpose(b.reshape(q, [0, 0, nKvHeads, kvMul, headDim]), [0, 2, 3, 1, 4]);
  const keyT = b.transpose(b.unsqueeze(key, [2]), [0, 1, 2, 4, 3]);
  const att = b.softmax(b.add(b.matmul(qg, keyT), a.shared.bias), -1);
  const out = b.matmul(att, b.unsqueeze(value, [2])); // [batch, kvHeads, kvMul, seq, headDim]
  return {
    out: b.reshape(b.transpose(out, [0, 3, 1, 2, 4]), [0, 0, nHeads * headDim]),
    present: { key, value },
  };
}

/** Rotate-half RoPE of `x` `[batch, seq, heads·headDim]` at `positions` with one RotaryEmbedding node. */
function rotary(b: GraphBuilder, x: Value, positions: Value, cos: Value, sin: Value, heads: number): Value {
  return b.node("RotaryEmbedding", [x, positions, cos, sin], {
    interleaved: attr.int(0),
    num_heads: attr.int(heads),
  }, { domain: MS })[0];
}

function normAttributes(eps: number) {
  return { axis: attr.int(-1), epsilon: attr.float(eps), stash_type: attr.int(1) };
}

/** Residual add and RMSNorm in one node: returns `[norm(x + skip), x + skip]`. */
function skipNorm(b: GraphBuilder, x: Value, skip: Value, weight: Value, eps: number): [Value, Value] {
  const out = [b.freshName("normed"), "", "", b.freshName("residual")];
  const values = b.node("SkipSimplifiedLayerNormalization", [x, skip, weight], { epsilon: attr.float(eps) }, {
    domain: MS,
    outputNames: out,
  });
  return [values[0], values[3]];
}

interface AttentionInputs {
  qkv: Value;
  key?: Value;
  value?: Value;
  past?: { key: Value; value: Value };
  seqlensK: Value;
  totalLength: Value;
  cos?: Value;
  sin?: Value;
  nHeads: number;
  nKvHeads: number;
}

/**
 * One GroupQueryAttention node (packed q/k/v when `key` is absent); returns its output
 * `[batch, seq, heads·headDim]` and the present cache.
 */
function attentionNode(
  b: GraphBuilder,
  a: AttentionInputs,
): { out: Value; present: { key: Value; value: Value } } {
  const [out, key, value] = b.node(
    "GroupQueryAttention",
    [a.qkv, a.key, a.value, a.past?.key, a.past?.value, a.seqlensK, a.totalLength, a.cos, a.sin],
    {
      num_heads: attr.int(a.nHeads),
      kv_num_heads: attr.int(a.nKvHeads),
      do_rotary: attr.int(a.cos ? 1 : 0),
      rotary_interleaved: attr.int(0),
    },
    { domain: MS, outputs: 3 },
  );
  return { out, present: { key, value } };
}

/** cos/sin caches `[maxPositionEmbeddings, headDim / 2]` of the model's RoPE frequencies (float32, as HF). */
function ropeCaches(b: GraphBuilder, config: LlamaConfig): { cos: Value; sin: Value } {
  const inv = ropeInverseFrequencies(config);
  const half = inv.length;
  const positions = config.maxPositionEmbeddings;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]); // float32 product, as Hugging Face computes it
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return {
    cos: b.initializer("rotary_emb.cos_cache", cos, [positions, half]),
    sin: b.initializer("rotary_emb.sin_cache", sin, [positions, half]),
  };
}

/** The base weight of one or several sites that share an input, concatenated along the output axis. */
function projection(w: WeightLoader, sites: AdapterSite[]): ProjectionWeight {
  return w.projection(
    sites.map((s) => s.name),
    sites.map((s) => s.outFeatures),
    sites[0].inFeatures,
  );
}
