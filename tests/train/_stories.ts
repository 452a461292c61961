// The stories260K model converted to a Hugging Face folder once per test process, plus small data sets.

import { convertLlama2c } from "../../src/io/convert.ts";
import { loadModelFolder, type ModelFolder } from "../../src/io/model_folder.ts";
import { requireStories260k, stories260kDir } from "../_util/fixtures.ts";

let converted: Promise<ModelFolder> | undefined;

/**
 * The converted stories260K model, or undefined (after a skip message) when its files are absent outside CI.
 */
export async function stories260k(t: Deno.TestContext): Promise<ModelFolder | undefined> {
  if (!requireStories260k(t)) return undefined;
  converted ??= (async () => {
    const out = `${await Deno.makeTempDir({ prefix: "stories260k-" })}/hf`;
    await convertLlama2c({
      model: `${stories260kDir()}/stories260K.bin`,
      tokenizer: `${stories260kDir()}/tok512.bin`,
      out,
    });
    return await loadModelFolder(out, { id: "stories260K" });
  })();
  return await converted;
}

/** A small domain-shift task: the dog of every story has a new name and a recurring phrase. */
export function dogRows(count: number): string {
  const names = ["Zorp", "Blip"];
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      prompt: "Once upon a time, there was a dog named",
      completion: `${names[i % 2]}. He liked to bark at the moon.`,
    })).join("\n") + "\n";
}
