/**
 * Converters to Hugging Face model folders: {@linkcode convertLlama2c} (a llama2.c checkpoint and
 * `tokenizer.bin`) and {@linkcode convertGguf} (a `llama` GGUF file with F32/F16/BF16 tensors).
 * Both write the folder atomically and give byte-identical `model.safetensors` for the same weights.
 *
 * @module
 */

import { parseGguf } from "./gguf.ts";
import { ggufToHf } from "./gguf_llama.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "./llama2c.ts";
import { sentencePieceTokenizerConfig, sentencePieceTokenizerJson } from "./sentencepiece_bpe.ts";
import { writeModelFolder } from "./write_model_folder.ts";

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
}

/** Options of {@linkcode convertGguf}. */
export interface ConvertGgufOptions {
  /** The GGUF file. */
  model: string;
  /** Destination folder. */
  out: string;
  /** Replace a non-empty destination. @default false */
  force?: boolean;
}

/** A summary of a conversion. */
export interface ConversionSummary {
  /** Destination folder. */
  out: string;
  /** Number of tensors written. */
  tensors: number;
  /** Number of parameters written. */
  parameters: number;
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
  await writeModelFolder(options.out, {
    config: checkpoint.config,
    weights: checkpoint.weights.values(),
    tokenizerJson: sentencePieceTokenizerJson(vocab),
    tokenizerConfig: sentencePieceTokenizerConfig(vocab, {
      modelMaxLength: checkpoint.config.maxPositionEmbeddings,
    }),
  }, { force: options.force });
  return summary(options.out, checkpoint.weights);
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
  await writeModelFolder(options.out, {
    config: converted.config,
    weights: converted.weights.values(),
    tokenizerJson: sentencePieceTokenizerJson(converted.vocab),
    tokenizerConfig: sentencePieceTokenizerConfig(converted.vocab, {
      modelMaxLength: converted.config.maxPositionEmbeddings,
      chatTemplate: converted.chatTemplate,
    }),
  }, { force: options.force });
  return summary(options.out, converted.weights);
}

/** Counts tensors and parameters. */
function summary(out: string, weights: Map<string, { data: Uint8Array }>): ConversionSummary {
  let parameters = 0;
  for (const t of weights.values()) parameters += t.data.byteLength / 4;
  return { out, tensors: weights.size, parameters };
}
