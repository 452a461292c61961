/**
 * Converters to Hugging Face model folders: {@linkcode convertLlama2c} (a llama2.c checkpoint and
 * `tokenizer.bin`) and {@linkcode convertGguf} (a `llama` GGUF file with F32/F16/BF16 tensors, or Q8_0/Q4_0
 * linear layers). Both write the folder atomically and give byte-identical `model.safetensors` for the same
 * weights; with `quantization`, linear weights are stored blockwise-quantized (`quantized_weights.ts`).
 *
 * @module
 */

import type { LlamaConfig, QuantizationConfig } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { parseGguf } from "./gguf.ts";
import { f32ToF16, float32Values } from "./half.ts";
import { llamaWeightShapes } from "./llama_weights.ts";
import { nbitsLayout } from "./quantize.ts";
import { quantizeModelWeights } from "./quantized_weights.ts";
import { ggufToHf } from "./gguf_llama.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "./llama2c.ts";
import { sentencePieceTokenizerConfig, sentencePieceTokenizerJson } from "./sentencepiece_bpe.ts";
import { writeModelFolder } from "./write_model_folder.ts";

/** Named quantization presets of `deno task convert --quantize`. */
export type QuantizePreset = "int8" | "int4";

/**
 * The quantization of a preset: `int8` is symmetric 8-bit (llama.cpp `Q8_0` style), `int4` asymmetric
 * 4-bit (a zero point per block), both with 32 weights per block unless `blockSize` says otherwise.
 *
 * @param preset `int8` or `int4`.
 * @param blockSize Weights per block (a power of two ≥ 16).
 * @returns Bits, block size and symmetry.
 * @throws {RangeError} On another preset or block size.
 */
export function quantizationPreset(preset: string, blockSize = 32): QuantizationConfig {
  if (preset !== "int8" && preset !== "int4") {
    throw new RangeError(`Unknown quantization ${JSON.stringify(preset)}: use int8 or int4`);
  }
  const config: QuantizationConfig = preset === "int8"
    ? { bits: 8, blockSize, symmetric: true }
    : { bits: 4, blockSize, symmetric: false };
  nbitsLayout(blockSize, config);
  return config;
}

/** Options of {@linkcode convertLlama2c}. */
export interface ConvertLlama2cOptions {
  /** The checkpoint (`.bin`, v0 or v1 float32). */
  model: string;
  /** The llama2.c tokenizer (`tokenizer.bin`, `tok512.bin`, …). */
  tokenizer: string;
  /** Destination folder. */
  out: string;
  /** Replace a non-empty destination. @default false */
  force?: boolean;
  /** Quantize the linear weights (see {@linkcode quantizationPreset}). @default float32 */
  quantization?: QuantizationConfig;
}

/** Options of {@linkcode convertGguf}. */
export interface ConvertGgufOptions {
  /** The GGUF file. */
  model: string;
  /** Destination folder. */
  out: string;
  /** Replace a non-empty destination. @default false */
  force?: boolean;
  /**
   * Quantize the linear weights of a float GGUF file; a file whose linear layers are `Q8_0`/`Q4_0` keeps
   * them as they are (and refuses this option). @default as stored
   */
  quantization?: QuantizationConfig;
}

/** A summary of a conversion. */
export interface ConversionSummary {
  /** Destination folder. */
  out: string;
  /** Number of tensors written. */
  tensors: number;
  /** Number of parameters written. */
  parameters: number;
  /** Bytes of tensor data written (quantized weights count their codes, scales and zero points). */
  weightBytes: number;
  /** The quantization of the linear weights, when quantized. */
  quantization?: QuantizationConfig;
}

/** Reads a file with an error that names it. */
async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot read ${what} ${path}: the file does not exist`);
    }
    throw new Error(`Cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/**
 * Converts a llama2.c checkpoint and tokenizer to a Hugging Face folder (`config.json`,
 * `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`).
 *
 * @param options Input files, destination, overwrite.
 * @returns What was written.
 * @throws {Error} When an input is missing or malformed, or the destination is not empty (without
 *   `force`); no output folder is left behind.
 *
 * @example
 * ```ts ignore
 * import { convertLlama2c } from "./convert.ts";
 * await convertLlama2c({ model: "stories260K.bin", tokenizer: "tok512.bin", out: "stories260K-hf" });
 * ```
 */
export async function convertLlama2c(options: ConvertLlama2cOptions): Promise<ConversionSummary> {
  const checkpoint = parseLlama2cCheckpoint(await readInput(options.model, "llama2.c checkpoint"), {
    file: options.model,
  });
  const vocab = parseLlama2cTokenizer(await readInput(options.tokenizer, "llama2.c tokenizer"), {
    file: options.tokenizer,
    vocabSize: checkpoint.config.vocabSize,
  });
  const model = options.quantization
    ? quantizeModelWeights(checkpoint, options.quantization)
    : { config: checkpoint.config, weights: checkpoint.weights };
  await writeModelFolder(options.out, {
    config: model.config,
    weights: storedTensors(model.weights),
    tokenizerJson: sentencePieceTokenizerJson(vocab),
    tokenizerConfig: sentencePieceTokenizerConfig(vocab, {
      modelMaxLength: checkpoint.config.maxPositionEmbeddings,
    }),
  }, { force: options.force });
  return summary(options.out, model);
}

/**
 * Converts a `llama` GGUF file (F32, F16 or BF16 tensors; SentencePiece tokenizer) to a Hugging Face
 * folder. F16/BF16 weights are widened to float32.
 *
 * @param options Input file, destination, overwrite.
 * @returns What was written.
 * @throws {Error} When the file is missing or malformed, has a quantized tensor (naming it and its
 *   type), another architecture or tokenizer, or the destination is not empty (without `force`).
 *
 * @example
 * ```ts ignore
 * import { convertGguf } from "./convert.ts";
 * await convertGguf({ model: "stories260K-f32.gguf", out: "stories260K-hf" });
 * ```
 */
export async function convertGguf(options: ConvertGgufOptions): Promise<ConversionSummary> {
  const gguf = parseGguf(await readInput(options.model, "GGUF file"), { file: options.model });
  const converted = ggufToHf(gguf, { file: options.model });
  if (options.quantization && converted.config.quantization) {
    throw new Error(
      `Cannot convert GGUF file ${options.model} with quantization: its linear layers are already quantized (${converted.config.quantization.bits}-bit); convert it without --quantize`,
    );
  }
  const model = options.quantization
    ? quantizeModelWeights(converted, options.quantization)
    : { config: converted.config, weights: converted.weights };
  await writeModelFolder(options.out, {
    config: model.config,
    weights: storedTensors(model.weights),
    tokenizerJson: sentencePieceTokenizerJson(converted.vocab),
    tokenizerConfig: sentencePieceTokenizerConfig(converted.vocab, {
      modelMaxLength: converted.config.maxPositionEmbeddings,
      chatTemplate: converted.chatTemplate,
    }),
  }, { force: options.force });
  return summary(options.out, model);
}

/** The tensors as the folder stores them: quantization scales as F16 (they are float16-exact). */
function* storedTensors(weights: ReadonlyMap<string, TensorData>): Iterable<TensorData> {
  for (const t of weights.values()) {
    if (t.name.endsWith(".scales") && t.dtype === "float32") {
      yield { ...t, dtype: "float16", data: f32ToF16(float32Values(t)) };
    } else yield t;
  }
}

/** Counts tensors, parameters and stored bytes. */
function summary(
  out: string,
  model: { config: LlamaConfig; weights: ReadonlyMap<string, TensorData> },
): ConversionSummary {
  let parameters = 0;
  for (const dims of llamaWeightShapes(model.config).values()) parameters += dims.reduce((a, d) => a * d, 1);
  let weightBytes = 0;
  for (const t of storedTensors(model.weights)) weightBytes += t.data.byteLength;
  const result: ConversionSummary = { out, tensors: model.weights.size, parameters, weightBytes };
  if (model.config.quantization) result.quantization = model.config.quantization;
  return result;
}
