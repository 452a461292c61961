/**
 * `deno task convert`: converts a llama2.c checkpoint or a GGUF file into a Hugging Face model folder.
 *
 *     deno task convert --from llama2c --model stories260K.bin --tokenizer tok512.bin --out DIR [--force]
 *     deno task convert --from gguf --model model.gguf --out DIR [--force]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type ConversionSummary, convertGguf, convertLlama2c } from "../io/convert.ts";

const USAGE = `Usage:
  deno task convert --from llama2c --model X.bin --tokenizer tok.bin --out DIR [--force]
  deno task convert --from gguf --model X.gguf --out DIR [--force]`;

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
  switch (values.from) {
    case "llama2c":
      if (values.tokenizer === undefined) throw new Error(`Missing --tokenizer for --from llama2c\n${USAGE}`);
      return await convertLlama2c({
        model: values.model,
        tokenizer: values.tokenizer,
        out: values.out,
        force: values.force,
      });
    case "gguf":
      if (values.tokenizer !== undefined) {
        throw new Error(`--tokenizer is not used with --from gguf (the GGUF file has one)\n${USAGE}`);
      }
      return await convertGguf({ model: values.model, out: values.out, force: values.force });
    default:
      throw new Error(`--from is ${JSON.stringify(values.from)}, expected llama2c or gguf\n${USAGE}`);
  }
}

if (import.meta.main) {
  try {
    const s = await main(Deno.args);
    console.log(`Wrote ${s.out}: ${s.tensors} tensors, ${s.parameters.toLocaleString("en-US")} parameters`);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
