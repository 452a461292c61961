/**
 * The models of the peers bench, each in every engine's format, all made from one llama2.c checkpoint so
 * that every engine runs the same weights: our model folder (`convertLlama2c`), a GGUF file for wllama
 * ({@linkcode llamaToGguf}) and a transformers.js folder ({@linkcode exportForTransformersJs}).
 *
 * - stories260K: the real checkpoint and `tok512.bin` beside the project.
 * - stories15M's shape (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000) with random weights, written
 *   here in llama2.c's format, with a synthetic 32000-piece SentencePiece vocabulary (byte fallback,
 *   letters, then letter strings with and without a leading space: every piece is the merge of two
 *   others, so it encodes like a trained one).
 *
 * @module
 */

import { convertLlama2c } from "../src/io/convert.ts";
import { llamaToGguf } from "../src/io/gguf_writer.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "../src/io/llama2c.ts";
import { Prng } from "../src/models/sampling.ts";
import { STORIES15M_SHAPE, STORIES260K_DIR } from "./_models.ts";
import { exportForTransformersJs } from "./_transformers_export.ts";

/** One model in every engine's format. */
export interface PeerModel {
  /** Display name. */
  name: string;
  /** llama2.c checkpoint. */
  llama2c: string;
  /** llama2.c tokenizer. */
  llama2cTokenizer: string;
  /** Our model folder. */
  folder: string;
  /** GGUF file (version 3, F32). */
  gguf: string;
  /** transformers.js folder (`config.json`, tokenizer files, `onnx/model.onnx`). */
  transformersJs: string;
}

/** The model names. */
export type PeerModelName = "stories260K" | "stories15M shape (random)";

/** Context length written into the random checkpoint: room for a prompt and 256+ generated tokens. */
const RANDOM_SEQ_LEN = 512;

/**
 * Writes a random llama2.c checkpoint (legacy v0 layout, shared classifier) of a shape.
 *
 * @param path Destination file.
 * @param options Seed and uniform scale.
 * @returns Nothing.
 */
export async function writeRandomLlama2c(
  path: string,
  options: { seed: number; scale?: number },
): Promise<void> {
  const c = STORIES15M_SHAPE;
  const dim = c.hiddenSize, hidden = c.intermediateSize, layers = c.numHiddenLayers;
  const kvDim = c.numKeyValueHeads * c.headDim;
  const header = [dim, hidden, layers, c.numAttentionHeads, c.numKeyValueHeads, c.vocabSize, RANDOM_SEQ_LEN];
  // token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag
  const sizes: [number, "weight" | "norm" | "zero"][] = [
    [c.vocabSize * dim, "weight"],
    [layers * dim, "norm"],
    [layers * dim * dim, "weight"],
    [layers * kvDim * dim, "weight"],
    [layers * kvDim * dim, "weight"],
    [layers * dim * dim, "weight"],
    [layers * dim, "norm"],
    [layers * hidden * dim, "weight"],
    [layers * dim * hidden, "weight"],
    [layers * hidden * dim, "weight"],
    [dim, "norm"],
    [RANDOM_SEQ_LEN * c.headDim / 2, "zero"],
    [RANDOM_SEQ_LEN * c.headDim / 2, "zero"],
  ];
  const total = sizes.reduce((a, [n]) => a + n, 0);
  const floats = new Float32Array(7 + total);
  new Int32Array(floats.buffer, 0, 7).set(header);
  const rng = new Prng(options.seed);
  const scale = options.scale ?? 0.1;
  let at = 7;
  for (const [n, kind] of sizes) {
    for (let i = 0; i < n; i++) {
      const u = (rng.next() * 2 - 1) * scale;
      floats[at++] = kind === "weight" ? u : kind === "norm" ? 1 + u : 0;
    }
  }
  await Deno.writeFile(path, new Uint8Array(floats.buffer));
}

/**
 * The synthetic vocabulary's pieces (llama2.c spelling: a space where SentencePiece writes `▁`).
 *
 * @param size Vocabulary size (≥ 259 + 1 + 104).
 * @returns `size` pieces.
 */
export function syntheticPieces(size: number): string[] {
  const pieces = ["<unk>", "\n<s>\n", "\n</s>\n"];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const lower = "abcdefghijklmnopqrstuvwxyz";
  pieces.push(" ");
  for (const ch of letters) pieces.push(ch);
  for (const ch of letters) pieces.push(` ${ch}`);
  // then lowercase strings of growing length, bare and after a space
  let level = [...lower];
  while (pieces.length < size) {
    const next: string[] = [];
    for (const s of level) for (const ch of lower) next.push(s + ch);
    for (const s of next) {
      if (pieces.length < size) pieces.push(s);
      if (pieces.length < size) pieces.push(` ${s}`);
    }
    level = next;
  }
  return pieces.slice(0, size);
}

/**
 * Writes a llama2.c tokenizer file of {@linkcode syntheticPieces} (scores fall with the id).
 *
 * @param path Destination file.
 * @param size Vocabulary size.
 * @returns Nothing.
 */
export async function writeSyntheticTokenizer(path: string, size: number): Promise<void> {
  const encoder = new TextEncoder();
  const encoded = syntheticPieces(size).map((p) => encoder.encode(p));
  const bytes = new Uint8Array(4 + encoded.reduce((a, e) => a + 8 + e.byteLength, 0));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, Math.max(...encoded.map((e) => e.byteLength)), true);
  let at = 4;
  encoded.forEach((e, id) => {
    view.setFloat32(at, id < 259 ? 0 : -id, true);
    view.setInt32(at + 4, e.byteLength, true);
    bytes.set(e, at + 8);
    at += 8 + e.byteLength;
  });
  await Deno.writeFile(path, bytes);
}

/**
 * Writes a model in every engine's format under `dir`.
 *
 * @param dir A temporary folder.
 * @param name Which model.
 * @returns The paths.
 */
export async function preparePeerModel(dir: string, name: PeerModelName): Promise<PeerModel> {
  const slug = name === "stories260K" ? "stories260K" : "stories15M_random";
  let llama2c: string, llama2cTokenizer: string;
  if (name === "stories260K") {
    llama2c = `${STORIES260K_DIR}stories260K.bin`;
    llama2cTokenizer = `${STORIES260K_DIR}tok512.bin`;
  } else {
    llama2c = `${dir}/${slug}.bin`;
    llama2cTokenizer = `${dir}/${slug}_tok.bin`;
    await writeRandomLlama2c(llama2c, { seed: 1 });
    await writeSyntheticTokenizer(llama2cTokenizer, STORIES15M_SHAPE.vocabSize);
  }
  const folder = `${dir}/${slug}`;
  await convertLlama2c({ model: llama2c, tokenizer: llama2cTokenizer, out: folder });
  const checkpoint = parseLlama2cCheckpoint(await Deno.readFile(llama2c), { file: llama2c });
  const vocab = parseLlama2cTokenizer(await Deno.readFile(llama2cTokenizer), {
    file: llama2cTokenizer,
    vocabSize: checkpoint.config.vocabSize,
  });
  const gguf = `${dir}/${slug}.gguf`;
  await Deno.writeFile(gguf, llamaToGguf({ ...checkpoint, vocab }, { name: slug }));
  const transformersJs = `${dir}/tjs/${slug}`;
  await Deno.mkdir(`${dir}/tjs`, { recursive: true });
  await exportForTransformersJs(folder, transformersJs);
  return { name, llama2c, llama2cTokenizer, folder, gguf, transformersJs };
}
