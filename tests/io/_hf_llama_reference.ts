// A float64 reference forward pass of a Hugging Face Llama checkpoint (rotate-half RoPE, GQA, SwiGLU,
// optional q/k/v biases), written from transformers' modeling_llama.py for the tests.

import type { LlamaConfig } from "../../src/models/config.ts";
import { float32Values } from "../../src/io/half.ts";
import type { TensorData } from "../../src/onnx/types.ts";
import { matmul, rmsnorm } from "./_llama2c_reference.ts";

/** Logits of every position of `tokens` (no RoPE scaling). */
export function hfLlamaForward(
  config: LlamaConfig,
  weights: Map<string, TensorData>,
  tokens: number[],
): Float64Array[] {
  const w = (name: string) => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`reference forward: missing ${name}`);
    return float32Values(t);
  };
  const h = config.hiddenSize;
  const hd = config.headDim;
  const half = hd / 2;
  const nq = config.numAttentionHeads;
  const nkv = config.numKeyValueHeads;
  const group = nq / nkv;
  const f = config.intermediateSize;
  const embed = w("model.embed_tokens.weight");
  const head = config.tieWordEmbeddings ? embed : w("lm_head.weight");
  const invFreq = Array.from({ length: half }, (_, j) => 1 / Math.pow(config.ropeTheta, (2 * j) / hd));
  const rope = (vec: Float64Array, heads: number, pos: number) => {
    for (let hh = 0; hh < heads; hh++) {
      for (let j = 0; j < half; j++) {
        const c = Math.cos(pos * invFreq[j]);
        const s = Math.sin(pos * invFreq[j]);
        const a = vec[hh * hd + j];
        const b = vec[hh * hd + j + half];
        vec[hh * hd + j] = a * c - b * s;
        vec[hh * hd + j + half] = b * c + a * s;
      }
    }
  };
  const addBias = (vec: Float64Array, name: string) => {
    if (!config.attentionBias) return vec;
    const b = w(name);
    return vec.map((v, i) => v + b[i]);
  };
  const keys: Float64Array[][] = Array.from({ length: config.numHiddenLayers }, () => []);
  const values: Float64Array[][] = Array.from({ length: config.numHiddenLayers }, () => []);
  return tokens.map((token, pos) => {
    let x = Float64Array.from(embed.subarray(token * h, (token + 1) * h));
    for (let l = 0; l < config.numHiddenLayers; l++) {
      const p = `model.layers.${l}`;
      const xn = rmsnorm(x, w(`${p}.input_layernorm.weight`), config.rmsNormEps);
      const q = addBias(
        matmul(w(`${p}.self_attn.q_proj.weight`), xn, h, nq * hd),
        `${p}.self_attn.q_proj.bias`,
      );
      const k = addBias(
        matmul(w(`${p}.self_attn.k_proj.weight`), xn, h, nkv * hd),
        `${p}.self_attn.k_proj.bias`,
      );
      const v = addBias(
        matmul(w(`${p}.self_attn.v_proj.weight`), xn, h, nkv * hd),
        `${p}.self_attn.v_proj.bias`,
      );
      rope(q, nq, pos);
      rope(k, nkv, pos);
      keys[l].push(k);
      values[l].push(v);
      const att = new Float64Array(nq * hd);
      for (let hh = 0; hh < nq; hh++) {
        const kv = Math.floor(hh / group);
        const scores = keys[l].map((kk) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[hh * hd + i] * kk[kv * hd + i];
          return s / Math.sqrt(hd);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        e.forEach((ev, t) => {
          for (let i = 0; i < hd; i++) att[hh * hd + i] += (ev / sum) * values[l][t][kv * hd + i];
        });
      }
      const o = matmul(w(`${p}.self_attn.o_proj.weight`), att, nq * hd, h);
      x = x.map((xv, i) => xv + o[i]);
      const xn2 = rmsnorm(x, w(`${p}.post_attention_layernorm.weight`), config.rmsNormEps);
      const g = matmul(w(`${p}.mlp.gate_proj.weight`), xn2, h, f);
      const u = matmul(w(`${p}.mlp.up_proj.weight`), xn2, h, f);
      const d = matmul(
        w(`${p}.mlp.down_proj.weight`),
        g.map((a, i) => (a / (1 + Math.exp(-a))) * u[i]),
        f,
        h,
      );
      x = x.map((xv, i) => xv + d[i]);
    }
    return matmul(head, rmsnorm(x, w("model.norm.weight"), config.rmsNormEps), h, config.vocabSize);
  });
}

/** Index of the largest value. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
