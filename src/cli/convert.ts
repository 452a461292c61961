/**
 * `deno task convert`: converts a llama2.c checkpoint or a GGUF file into a Hugging Face model folder.
 *
 *     deno task convert --from llama2c --model stories260K.bin --tokenizer tok512.bin --out DIR [--force]
 *     deno task convert --from gguf --model model.gguf --out DIR [--force]
 *
 * @module
 */

import { type ConversionSummary, convertGguf, convertLlama2c, quantizationPreset } from "../io/convert.ts";
import { UsageError } from "./_args.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task convert`: the parser and `--help` both read them. */
export const CONVERT_COMMAND = defineCommand({
  name: "convert",
  usage: [
    "--from llama2c --model X.bin --tokenizer tok.bin --out DIR [--force] [--quantize int8|int4]",
    "--from gguf --model X.gguf --out DIR [--force] [--quantize int8|int4]",
  ],
  description:
    `Converts a llama2.c checkpoint (with its tokenizer) or a GGUF file into a Hugging Face model folder
(config.json, model.safetensors, tokenizer.json, ...) that train, eval, generate and serve read. --out and
its missing parent folders are created.`,
  flags: [
    { name: "from", value: "FORMAT", required: true, doc: "llama2c or gguf." },
    { name: "model", value: "FILE", required: true, doc: "The checkpoint (.bin) or the GGUF file." },
    {
      name: "tokenizer",
      value: "FILE",
      doc: "llama2.c's tokenizer (tok512.bin, tokenizer.bin); required with --from llama2c.",
    },
    { name: "out", value: "DIR", required: true, doc: "The model folder to write." },
    { name: "force", type: "boolean", doc: "Replace --out when it exists and is not empty." },
    {
      name: "quantize",
      value: "KIND",
      default: "none",
      doc:
        "Store the linear weights blockwise-quantized for MatMulNBits: int8 (symmetric), int4 (with zero " +
        "points) or none (float32). GGUF Q8_0/Q4_0 tensors import quantized without this flag.",
    },
    {
      name: "quantize-block-size",
      value: "N",
      default: 32,
      doc: "Weights per quantization block, a power of two >= 16 (needs --quantize).",
    },
  ],
});

const USAGE = `Usage:\n${CONVERT_COMMAND.usage.map((u) => `  deno task convert ${u}`).join("\n")}`;

/**
 * Runs the converter with command-line arguments.
 *
 * @param args The arguments (without the program name).
 * @returns What was written, or `undefined` after printing `--help`.
 * @throws {Error} On bad arguments (with the usage) or a failed conversion.
 *
 * @example
 * ```ts ignore
 * import { main } from "./convert.ts";
 * await main(["--from", "gguf", "--model", "m.gguf", "--out", "m-hf"]);
 * ```
 */
export async function main(args: string[]): Promise<ConversionSummary | undefined> {
  let values;
  try {
    values = parseFlags(CONVERT_COMMAND, args);
  } catch (e) {
    if (e instanceof UsageError) throw new Error(`${e.message}\n${USAGE}`);
    throw e;
  }
  if (values.help) {
    console.log(helpText(CONVERT_COMMAND));
    return undefined;
  }
  const model = values.model!, out = values.out!;
  const blockSize = Number(values["quantize-block-size"]);
  let quantization;
  try {
    if (values.quantize !== "none") quantization = quantizationPreset(values.quantize ?? "none", blockSize);
    else if (String(values["quantize-block-size"]) !== "32") {
      throw new Error("--quantize-block-size needs --quantize");
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  switch (values.from) {
    case "llama2c":
      if (values.tokenizer === undefined) throw new Error(`Missing --tokenizer for --from llama2c\n${USAGE}`);
      return await convertLlama2c({
        model,
        tokenizer: values.tokenizer,
        out,
        force: values.force,
        quantization,
      });
    case "gguf":
      if (values.tokenizer !== undefined) {
        throw new Error(`--tokenizer is not used with --from gguf (the GGUF file has one)\n${USAGE}`);
      }
      return await convertGguf({ model, out, force: values.force, quantization });
    default:
      throw new Error(`--from is ${JSON.stringify(values.from)}, expected llama2c or gguf\n${USAGE}`);
  }
}

if (import.meta.main) {
  try {
    const s = await main(Deno.args);
    if (s) {
      const q = s.quantization
        ? `, ${s.quantization.bits}-bit linear weights (block ${s.quantization.blockSize}${
          s.quantization.symmetric ? ", symmetric" : ", zero points"
        })`
        : "";
      console.log(
        `Wrote ${s.out}: ${s.tensors} tensors, ${s.parameters.toLocaleString("en-US")} parameters, ${
          s.weightBytes.toLocaleString("en-US")
        } weight bytes${q}`,
      );
    }
  } catch (e) {
    console.error(`convert: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
