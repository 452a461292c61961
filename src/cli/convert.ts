/**
 * `deno task convert`: converts a llama2.c checkpoint or a GGUF file into a Hugging Face model folder.
 *
 *     deno task convert --from llama2c --model stories260K.bin --tokenizer tok512.bin --out DIR [--force]
 *     deno task convert --from gguf --model model.gguf --out DIR [--force]
 *
 * @module
 */

import { type ConversionSummary, convertGguf, convertLlama2c } from "../io/convert.ts";
import { UsageError } from "./_args.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task convert`: the parser and `--help` both read them. */
export const CONVERT_COMMAND = defineCommand({
  name: "convert",
  usage: [
    "--from llama2c --model X.bin --tokenizer tok.bin --out DIR [--force]",
    "--from gguf --model X.gguf --out DIR [--force]",
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
  switch (values.from) {
    case "llama2c":
      if (values.tokenizer === undefined) throw new Error(`Missing --tokenizer for --from llama2c\n${USAGE}`);
      return await convertLlama2c({ model, tokenizer: values.tokenizer, out, force: values.force });
    case "gguf":
      if (values.tokenizer !== undefined) {
        throw new Error(`--tokenizer is not used with --from gguf (the GGUF file has one)\n${USAGE}`);
      }
      return await convertGguf({ model, out, force: values.force });
    default:
      throw new Error(`--from is ${JSON.stringify(values.from)}, expected llama2c or gguf\n${USAGE}`);
  }
}

if (import.meta.main) {
  try {
    const s = await main(Deno.args);
    if (s) {
      console.log(`Wrote ${s.out}: ${s.tensors} tensors, ${s.parameters.toLocaleString("en-US")} parameters`);
    }
  } catch (e) {
    console.error(`convert: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
