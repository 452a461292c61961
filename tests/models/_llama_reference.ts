// A float64 Llama forward written independently of the graph builder (plain loops, one token at a time,
// Hugging Face rotate-half RoPE), used as the reference for the ONNX graphs.

import type { LlamaConfig } from "../../src/models/config.ts";
import type { TensorData } from "../../src/onnx/types.ts";

/** A LoRA delta on one site: `W + scale · B A`. */
export interface ReferenceLora {
  a: Float32Array; // [r, in]
  b: Float32Array; // [out, r]
  rank: number;
  scale: number;
}

function read(weights: ReadonlyMap<string, TensorData>, name: string): Float64Array {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  const f = new Float32Array(t.data.slice().buffer);
  return Float64Array.from(f);
}

function matVec(w: Float64Array, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

/**
 * Logits at every position of `ids` (one row, no padding), in float64.
 * `invFreq` are the RoPE inverse frequencies; `lora` maps site names to deltas.
 */
export function referenceLogits(
  config: LlamaConfig,
  weights: ReadonlyMap<string, TensorData>,
  ids: number[],
  options: { invFreq?: ArrayLike<number>; lora?: Map<string, ReferenceLora> } = {},
): Float64Array[] {
  const { hiddenSize: dim, headDim: hd, numAttentionHeads: nh, numKeyValueHeads: nkv } = config;
  const invFreq = options.invFreq ??
    Array.from({ length: hd / 2 }, (_, i) => 1 / config.ropeTheta ** ((2 * i) / hd));
  const kvMul = nh / nkv;
  const embed = read(weights, "model.embed_tokens.weight");
  const lmHead = config.tieWordEmbeddings ? embed : read(weights, "lm_head.weight");
  const cacheK: Float64Array[][] = Array.from({ length: config.numHiddenLayers }, () => []);
  const cacheV: Float64Array[][] = Array.from({ length: config.numHiddenLayers }, () => []);
  const proj = (name: string, x: Float64Array, out: number, bias: boolean) => {
    const y = matVec(read(weights, `${name}.weight`), x, out);
    if (bias) {
      const bv = read(weights, `${name}.bias`);
      for (let i = 0; i < out; i++) y[i] += bv[i];
    }
    const lora = options.lora?.get(name);
    if (lora) {
      const ax = matVec(Float64Array.from(lora.a), x, lora.rank);
      const bax = matVec(Float64Array.from(lora.b), ax, out);
      for (let i = 0; i < out; i++) y[i] += lora.scale * bax[i];
    }
    return y;
  };
  const rope = (v: Float64Array, heads: number, pos: number) => {
    const out = new Float64Array(v.length);
    const half = hd / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * invFreq[i];
        const c = Math.cos(angle), s = Math.sin(angle);
        const x1 = v[h * hd + i], x2 = v[h * hd + half + i];
        out[h * hd + i] = x1 * c - x2 * s;
        out[h * hd + half + i] = x2 * c + x1 * s;
      }
    }
    return out;
  };
  const all: Float64Array[] = [];
  ids.forEach((token, pos) => {
    let x = embed.slice(token * dim, (token + 1) * dim);
    for (let l = 0; l < config.numHiddenLayers; l++) {
      const p = `model.layers.${l}`;
      const xb = rmsNorm(x, read(weights, `${p}.input_layernorm.weight`), config.rmsNormEps);
      const q = rope(proj(`${p}.self_attn.q_proj`, xb, nh * hd, config.attentionBias), nh, pos);
      const k = rope(proj(`${p}.self_attn.k_proj`, xb, nkv * hd, config.attentionBias), nkv, pos);
      const v = proj(`${p}.self_attn.v_proj`, xb, nkv * hd, config.attentionBias);
      cacheK[l].push(k);
      cacheV[l].push(v);
      const att = new Float64Array(nh * hd);
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / kvMul);
        const scores = cacheK[l].map((kt) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i] * kt[g * hd + i];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        cacheV[l].forEach((vt, t) => {
          for (let i = 0; i < hd; i++) att[h * hd + i] += (e[t] / z) * vt[g * hd + i];
        });
      }
      const o = proj(`${p}.self_attn.o_proj`, att, dim, false);
      x = x.map((val, i) => val + o[i]);
      const xf = rmsNorm(x, read(weights, `${p}.post_attention_layernorm.weight`), config.rmsNormEps);
      const gate = proj(`${p}.mlp.gate_proj`, xf, config.intermediateSize, false);
      const up = proj(`${p}.mlp.up_proj`, xf, config.intermediateSize, false);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = proj(`${p}.mlp.down_proj`, act, dim, false);
      x = x.map((val, i) => val + down[i]);
    }
    const xn = rmsNorm(x, read(weights, "model.norm.weight"), config.rmsNormEps);
    all.push(matVec(lmHead, xn, config.vocabSize));
  });
  return all;
}
