// Reference implementations of llama2.c's run.c, written from its C source for the tests (not the code
// under test): the tokenizer file reader, the BPE encoder `encode()`, and the float32 forward pass with
// interleaved RoPE over the raw `.bin` tensors.

/** llama2.c's in-memory tokenizer: raw vocab strings (spaces, "\n<s>\n") and scores. */
export interface Llama2cVocab {
  vocab: string[];
  scores: number[];
}

/** Reads `tokenizer.bin` like run.c's `build_tokenizer`. */
export function readLlama2cVocab(bytes: Uint8Array, vocabSize: number): Llama2cVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const vocab: string[] = [];
  const scores: number[] = [];
  let o = 4;
  for (let i = 0; i < vocabSize; i++) {
    scores.push(view.getFloat32(o, true));
    const len = view.getInt32(o + 4, true);
    o += 8;
    vocab.push(new TextDecoder().decode(bytes.subarray(o, o + len)));
    o += len;
  }
  return { vocab, scores };
}

/**
 * run.c's `encode(t, text, bos, eos, tokens, n_tokens)`: a dummy-prefix space, then one token per UTF-8
 * code point (byte fallback `byte + 3` when a code point is not in the vocabulary), then repeatedly
 * merge the adjacent pair whose concatenation is in the vocabulary with the best score (the first such
 * pair on ties).
 */
export function llama2cEncode(
  tok: Llama2cVocab,
  text: string,
  options: { bos: boolean; eos: boolean },
): number[] {
  const lookup = new Map<string, number>();
  tok.vocab.forEach((s, i) => {
    if (!lookup.has(s)) lookup.set(s, i);
  });
  const tokens: number[] = [];
  if (options.bos) tokens.push(1);
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > 0) tokens.push(lookup.get(" ")!);
  const decoder = new TextDecoder();
  let buf: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    // Reset on a non-continuation byte, as run.c does.
    if ((c & 0xc0) !== 0x80) buf = [];
    buf.push(c);
    const next = bytes[i + 1];
    if (next !== undefined && (next & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup.get(decoder.decode(new Uint8Array(buf)));
    if (id !== undefined) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  while (true) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup.get(tok.vocab[tokens[i]] + tok.vocab[tokens[i + 1]]);
      if (id !== undefined && tok.scores[id] > bestScore) {
        bestScore = tok.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  if (options.eos) tokens.push(2);
  return tokens;
}

/** The raw float32 tensors of a legacy llama2.c `.bin`, as run.c's `memory_map_weights` sees them. */
export interface Llama2cModel {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  tokenEmbedding: Float32Array;
  rmsAtt: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  rmsFfn: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
  rmsFinal: Float32Array;
  wcls: Float32Array;
}

/** Reads a legacy (v0) llama2.c checkpoint. */
export function readLlama2cModel(bytes: Uint8Array): Llama2cModel {
  const header = new Int32Array(bytes.slice(0, 28).buffer);
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = header;
  const vocabSize = Math.abs(rawVocab);
  const floats = new Float32Array(bytes.slice(28).buffer);
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;
  let o = 0;
  const take = (n: number) => floats.subarray(o, o += n);
  const tokenEmbedding = take(vocabSize * dim);
  const m: Llama2cModel = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize,
    seqLen,
    tokenEmbedding,
    rmsAtt: take(nLayers * dim),
    wq: take(nLayers * dim * dim),
    wk: take(nLayers * dim * kvDim),
    wv: take(nLayers * dim * kvDim),
    wo: take(nLayers * dim * dim),
    rmsFfn: take(nLayers * dim),
    w1: take(nLayers * dim * hiddenDim),
    w2: take(nLayers * hiddenDim * dim),
    w3: take(nLayers * dim * hiddenDim),
    rmsFinal: take(dim),
    wcls: tokenEmbedding,
  };
  take(seqLen * headSize); // freq_cis_real
  take(seqLen * headSize); // freq_cis_imag (seq_len * head_size / 2 each; two of them)
  if (rawVocab < 0) m.wcls = take(vocabSize * dim);
  return m;
}

/** `xout = W x` for W `[d, n]` row-major. */
export function matmul(w: Float32Array, x: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += w[i * n + j] * x[j];
    out[i] = s;
  }
  return out;
}

/** RMSNorm with llama2.c's eps 1e-5. */
export function rmsnorm(x: Float64Array, w: Float32Array, eps = 1e-5): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * w[i]);
}

/**
 * Logits of every position of `tokens` under run.c's forward pass (interleaved RoPE on pairs (2i, 2i+1),
 * theta 10000), with weights given as the per-layer slices of a {@linkcode Llama2cModel}.
 */
export function llama2cForward(m: Llama2cModel, tokens: number[]): Float64Array[] {
  const { dim, hiddenDim, nHeads, nKvHeads } = m;
  const hs = dim / nHeads;
  const kvDim = nKvHeads * hs;
  const kvMul = nHeads / nKvHeads;
  const keys: Float64Array[][] = [];
  const values: Float64Array[][] = [];
  for (let l = 0; l < m.nLayers; l++) {
    keys.push([]);
    values.push([]);
  }
  const logits: Float64Array[] = [];
  tokens.forEach((token, pos) => {
    let x = Float64Array.from(m.tokenEmbedding.subarray(token * dim, (token + 1) * dim));
    for (let l = 0; l < m.nLayers; l++) {
      const xb = rmsnorm(x, m.rmsAtt.subarray(l * dim, (l + 1) * dim));
      const q = matmul(m.wq.subarray(l * dim * dim, (l + 1) * dim * dim), xb, dim, dim);
      const k = matmul(m.wk.subarray(l * dim * kvDim, (l + 1) * dim * kvDim), xb, dim, kvDim);
      const v = matmul(m.wv.subarray(l * dim * kvDim, (l + 1) * dim * kvDim), xb, dim, kvDim);
      for (let i = 0; i < dim; i += 2) {
        const headDim = i % hs;
        const freq = 1 / Math.pow(10000, headDim / hs);
        const val = pos * freq;
        const fcr = Math.cos(val);
        const fci = Math.sin(val);
        for (const vec of i < kvDim ? [q, k] : [q]) {
          const v0 = vec[i];
          const v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      keys[l].push(k);
      values[l].push(v);
      const att = new Float64Array(dim);
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / kvMul);
        const scores = keys[l].map((kk) => {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i] * kk[kvh * hs + i];
          return s / Math.sqrt(hs);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++) {
          for (let i = 0; i < hs; i++) att[h * hs + i] += (e[t] / sum) * values[l][t][kvh * hs + i];
        }
      }
      const o = matmul(m.wo.subarray(l * dim * dim, (l + 1) * dim * dim), att, dim, dim);
      x = x.map((xv, i) => xv + o[i]);
      const xb2 = rmsnorm(x, m.rmsFfn.subarray(l * dim, (l + 1) * dim));
      const h1 = matmul(m.w1.subarray(l * dim * hiddenDim, (l + 1) * dim * hiddenDim), xb2, dim, hiddenDim);
      const h3 = matmul(m.w3.subarray(l * dim * hiddenDim, (l + 1) * dim * hiddenDim), xb2, dim, hiddenDim);
      const hb = h1.map((a, i) => (a / (1 + Math.exp(-a))) * h3[i]);
      const down = matmul(m.w2.subarray(l * dim * hiddenDim, (l + 1) * dim * hiddenDim), hb, hiddenDim, dim);
      x = x.map((xv, i) => xv + down[i]);
    }
    logits.push(matmul(m.wcls, rmsnorm(x, m.rmsFinal), dim, m.vocabSize));
  });
  return logits;
}
