/**
 * {@linkcode writeModelFolder}: writes a complete Hugging Face model folder atomically — into a temporary
 * folder beside the destination, renamed into place at the end, so a failure never leaves a
 * half-written folder.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { baseName, dirName, joinPath, randomSuffix } from "./_fs.ts";
import { llamaConfigToHf } from "./hf_config.ts";
import { encodeSafetensors } from "./safetensors.ts";
import { writeShardedSafetensors } from "./sharded_safetensors.ts";

/** What goes into a model folder. */
export interface ModelFolderContents {
  /** Written as `config.json`. */
  config: LlamaConfig;
  /** Written as `model.safetensors` (or shards with an index past `maxShardBytes`). */
  weights: Iterable<TensorData>;
  /** Written as `tokenizer.json`. */
  tokenizerJson: Record<string, unknown>;
  /** Written as `tokenizer_config.json`. */
  tokenizerConfig: Record<string, unknown>;
  /** Written as `generation_config.json`. @default BOS/EOS ids of the config */
  generationConfig?: Record<string, unknown>;
}

/** Options of {@linkcode writeModelFolder}. */
export interface WriteModelFolderOptions {
  /** Replace a non-empty destination. @default false */
  force?: boolean;
  /** Weights larger than this are sharded (`model-0000i-of-0000n.safetensors`). @default 2 GiB */
  maxShardBytes?: number;
}

/** A JSON file's text: two-space indentation and a final newline, as transformers writes them. */
function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/**
 * Writes `config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json` and
 * `generation_config.json` into `dir`, atomically. Refuses a non-empty `dir` unless `force` is set.
 *
 * @param dir Destination folder (created, with missing parent folders).
 * @param contents Config, weights and tokenizer files.
 * @param options Overwrite and sharding.
 * @throws {Error} When `dir` is a non-empty folder (without `force`) or a file, or any write fails;
 *   nothing is left behind then.
 *
 * @example
 * ```ts ignore
 * import { writeModelFolder } from "./write_model_folder.ts";
 * await writeModelFolder("out/stories260K", { config, weights: weights.values(), tokenizerJson, tokenizerConfig });
 * ```
 */
export async function writeModelFolder(
  dir: string,
  contents: ModelFolderContents,
  options: WriteModelFolderOptions = {},
): Promise<void> {
  const target = dir.replace(/\/+$/, "");
  const existing = await folderState(target);
  if (existing === "file") throw new Error(`Cannot write model folder ${target}: a file of that name exists`);
  if (existing === "non-empty" && !options.force) {
    throw new Error(
      `Cannot write model folder ${target}: the folder is not empty (pass --force / force: true to replace it)`,
    );
  }
  const parent = dirName(target);
  const tmp = joinPath(parent, `.${baseName(target)}.tmp-${randomSuffix()}`);
  try {
    await Deno.mkdir(parent, { recursive: true }); // output folders are created as needed
    await Deno.mkdir(tmp);
  } catch (e) {
    throw new Error(`Cannot write model folder ${target}: cannot create ${tmp}: ${(e as Error).message}`);
  }
  try {
    const { config } = contents;
    await Deno.writeTextFile(joinPath(tmp, "config.json"), jsonText(llamaConfigToHf(config)));
    const weights = [...contents.weights];
    const total = weights.reduce((a, t) => a + t.data.byteLength, 0);
    const maxShardBytes = options.maxShardBytes ?? 2 ** 31;
    if (total > maxShardBytes) {
      await writeShardedSafetensors(tmp, weights, { maxShardBytes, metadata: { format: "pt" } });
    } else {
      await Deno.writeFile(
        joinPath(tmp, "model.safetensors"),
        encodeSafetensors(weights, { metadata: { format: "pt" } }),
      );
    }
    await Deno.writeTextFile(joinPath(tmp, "tokenizer.json"), jsonText(contents.tokenizerJson));
    await Deno.writeTextFile(joinPath(tmp, "tokenizer_config.json"), jsonText(contents.tokenizerConfig));
    const eos = config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds;
    const generation = contents.generationConfig ??
      { _from_model_config: true, bos_token_id: config.bosTokenId ?? null, eos_token_id: eos };
    await Deno.writeTextFile(joinPath(tmp, "generation_config.json"), jsonText(generation));
    if (existing === "missing") {
      await Deno.rename(tmp, target);
    } else {
      const old = joinPath(parent, `.${baseName(target)}.old-${randomSuffix()}`);
      await Deno.rename(target, old);
      try {
        await Deno.rename(tmp, target);
      } catch (e) {
        await Deno.rename(old, target);
        throw e;
      }
      await Deno.remove(old, { recursive: true });
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`Cannot write model folder ${target}: ${(e as Error).message}`);
  }
}

/** Whether `path` is missing, an empty folder, a non-empty folder, or a file. */
async function folderState(path: string): Promise<"missing" | "empty" | "non-empty" | "file"> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "missing";
    throw new Error(`Cannot write model folder ${path}: ${(e as Error).message}`);
  }
  if (!info.isDirectory) return "file";
  for await (const _ of Deno.readDir(path)) return "non-empty";
  return "empty";
}
