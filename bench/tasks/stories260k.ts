/**
 * The base model of the tasks and the reproduction: stories260K, read from `../shared/models/stories260K/`
 * beside the repository (never copied into the project) and converted once to a Hugging Face folder.
 *
 * @example
 * ```ts ignore
 * import { ensureStories260k } from "./stories260k.ts";
 * const dir = await ensureStories260k("out/repro/model");
 * ```
 *
 * @module
 */

import { convertLlama2c } from "../../src/io/convert.ts";

/**
 * The folder holding `stories260K.bin` and `tok512.bin`.
 *
 * @returns Its absolute path (it may not exist).
 */
export function stories260kSource(): string {
  return decodeURIComponent(new URL("../../../shared/models/stories260K", import.meta.url).pathname);
}

/**
 * Converts stories260K to a Hugging Face folder at `<dir>/stories260K` unless it is already there.
 *
 * @param dir Parent folder of the converted model.
 * @param source The llama2.c files' folder. @default {@linkcode stories260kSource}()
 * @returns The converted model's folder.
 * @throws {Error} When the source files are missing.
 */
export async function ensureStories260k(dir: string, source: string = stories260kSource()): Promise<string> {
  const out = `${dir}/stories260K`;
  try {
    await Deno.stat(`${out}/model.safetensors`);
    return out;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const file of ["stories260K.bin", "tok512.bin"]) {
    try {
      await Deno.stat(`${source}/${file}`);
    } catch {
      throw new Error(
        `Cannot prepare the base model: ${source}/${file} is missing (stories260K lives in ` +
          `../shared/models/stories260K/ beside the repository; see its SOURCE.md)`,
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await convertLlama2c({
    model: `${source}/stories260K.bin`,
    tokenizer: `${source}/tok512.bin`,
    out,
    force: true,
  });
  return out;
}
