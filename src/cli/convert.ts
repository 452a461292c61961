/**
 * `deno task convert`: converts a llama2.c checkpoint or a GGUF file into a Hugging Face model folder.
 *
 *     deno task convert --from llama2c --model stories260K.bin --tokenizer tok512.bin --out DIR [--force]
 *     deno task convert --from gguf --model model.gguf --out DIR [--force]
 *
 * `--quantize int8|int4` stores the linear weights blockwise-quantized for onnxruntime's MatMulNBits
 * (`--quantize-block-size`, default 32 weights per block).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type ConversionSummary, convertGguf, convertLlama2c, quantizationPreset } from "../io/convert.ts";

const USAGE = `Usage:
  deno task convert --from llama2c --model X.bin --tokenizer tok.bin --out DIR [--force] [--quantize int8|int4]
  deno task convert --from gguf --model X.gguf --out DIR [--force] [--quantize int8|int4]

  --quantize none|int8|int4   store linear weights blockwise-quantized for MatMulNBits: int8 symmetric,
                              int4 with zero points (default: none, float32)
  --quantize-block-size N     weights per quantization block, a power of two >= 16 (default: 32)`;

/**
 * Runs the converter with command-line arguments.
 *
 * @param args The arguments (without the program name).
 * @returns What was written.
 * @throws {Error} On bad arguments (with the usage) or a failed conversion.
 *
 * @example
 * ```ts ignore
 * import { main } from "./convert.ts";
 * await main(["--from", "gguf", "--model", "m.gguf", "--out", "m-hf"]);
 * ```
 */
export async function main(args: string[]): Promise<ConversionSummary> {
  let values: {
    from?: string;
    model?: string;
    tokenizer?: string;
    out?: string;
    force?: boolean;
    quantize?: string;
    "quantize-block-size"?: string;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        from: { type: "string" },
        model: { type: "string" },
        tokenizer: { type: "string" },
        out: { type: "string" },
        force: { type: "boolean", default: false },
        quantize: { type: "string", default: "none" },
        "quantize-block-size": { type: "string", default: "32" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) throw new Error(USAGE);
  if (values.model === undefined || values.out === undefined) {
    throw new Error(`Missing --model or --out\n${USAGE}`);
  }
  const blockSize = Number(values["quantize-block-size"]);
  let quantization;
  try {
    if (values.quantize !== "none") quantization = quantizationPreset(values.quantize ?? "none", blockSize);
    else if (values["quantize-block-size"] !== "32") {
      throw new Error("--quantize-block-size needs --quantize");
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  switch (values.from) {
    case "llama2c":
      if (values.tokenizer === undefined) throw new Error(`Missing --tokenizer for --from llama2c\n${USAGE}`);
      return await convertLlama2c({
        model: values.model,
        tokenizer: values.tokenizer,
        out: values.out,
        force: values.force,
        quantization,
      });
    case "gguf":
      if (values.tokenizer !== undefined) {
        throw new Error(`--tokenizer is not used with --from gguf (the GGUF file has one)\n${USAGE}`);
      }
      return await convertGguf({ model: values.model, out: values.out, force: values.force, quantization });
    default:
      throw new Error(`--from is ${JSON.stringify(values.from)}, expected llama2c or gguf\n${USAGE}`);
  }
}

if (import.meta.main) {
  try {
    const s = await main(Deno.args);
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
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
