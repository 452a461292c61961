/**
 * Sharded safetensors checkpoints, as Hugging Face writes them: `model-00001-of-00003.safetensors` …
 * plus `model.safetensors.index.json` (`{"metadata": {"total_size": N}, "weight_map": {tensor: shard}}`).
 *
 * @module
 */

import type { TensorData } from "../onnx/types.ts";
import { baseName, dirName, joinPath, readJsonFile, writeFileAtomic } from "./_fs.ts";
import { readSafetensors, type SafetensorsFile, writeSafetensors } from "./safetensors.ts";

/** A parsed `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** The index's `metadata` object (e.g. `total_size`). */
  metadata: Record<string, unknown>;
  /** Tensor name → shard file name (relative to the index's folder). */
  weightMap: Map<string, string>;
}

/**
 * Reads and validates a safetensors index file.
 *
 * @param path Path of `model.safetensors.index.json`.
 * @returns The metadata and the weight map.
 * @throws {Error} When the file is missing or malformed, or a shard name leaves the folder.
 *
 * @example
 * ```ts ignore
 * import { readSafetensorsIndex } from "./sharded_safetensors.ts";
 * const { weightMap } = await readSafetensorsIndex("model/model.safetensors.index.json");
 * ```
 */
export async function readSafetensorsIndex(path: string): Promise<SafetensorsIndex> {
  const json = await readJsonFile(path);
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(`Cannot read safetensors index ${path}: it is not a JSON object`);
  }
  const { metadata, weight_map: weightMap } = json as Record<string, unknown>;
  if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
    throw new Error(
      `Cannot read safetensors index ${path}: "weight_map" is ${
        JSON.stringify(weightMap)
      }, expected an object`,
    );
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (
      typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes("\\") ||
      shard === ".."
    ) {
      throw new Error(
        `Cannot read safetensors index ${path}: tensor "${name}" maps to shard ${
          JSON.stringify(shard)
        }, expected a file name in the same folder`,
      );
    }
    map.set(name, shard);
  }
  return {
    metadata: metadata !== null && typeof metadata === "object" ? metadata as Record<string, unknown> : {},
    weightMap: map,
  };
}

/**
 * Loads every shard named by a safetensors index and merges their tensors. Checks that each tensor of
 * the weight map is in the shard the index names, and that no tensor appears in two shards.
 *
 * @param indexPath Path of `model.safetensors.index.json`.
 * @returns All tensors (views into each shard's bytes) and the first shard's `__metadata__`.
 * @throws {Error} When a shard is missing or malformed, or disagrees with the index (naming both).
 *
 * @example
 * ```ts ignore
 * import { readShardedSafetensors } from "./sharded_safetensors.ts";
 * const { tensors } = await readShardedSafetensors("model/model.safetensors.index.json");
 * ```
 */
export async function readShardedSafetensors(indexPath: string): Promise<SafetensorsFile> {
  const index = await readSafetensorsIndex(indexPath);
  const dir = dirName(indexPath);
  const shards = [...new Set(index.weightMap.values())].sort();
  const tensors = new Map<string, TensorData>();
  const owner = new Map<string, string>();
  let metadata: Record<string, string> | undefined;
  for (const shard of shards) {
    const path = joinPath(dir, shard);
    const file = await readSafetensors(path);
    metadata ??= file.metadata;
    for (const [name, t] of file.tensors) {
      const previous = owner.get(name);
      if (previous !== undefined) {
        throw new Error(
          `Cannot load sharded checkpoint ${indexPath}: tensor "${name}" is in both ${previous} and ${shard}`,
        );
      }
      owner.set(name, shard);
      tensors.set(name, t);
    }
  }
  for (const [name, shard] of index.weightMap) {
    const actual = owner.get(name);
    if (actual !== shard) {
      throw new Error(
        actual === undefined
          ? `Cannot load sharded checkpoint ${indexPath}: tensor "${name}" is missing from shard ${shard}`
          : `Cannot load sharded checkpoint ${indexPath}: tensor "${name}" is in ${actual} but the index says ${shard}`,
      );
    }
  }
  return { tensors, metadata: metadata ?? {} };
}

/** Options of {@linkcode writeShardedSafetensors}. */
export interface WriteShardedSafetensorsOptions {
  /** Largest shard, in tensor bytes (a tensor larger than this gets a shard of its own). @default 5e9 */
  maxShardBytes?: number;
  /** Shard file name prefix. @default "model" */
  prefix?: string;
  /** `__metadata__` written into every shard. @default {format: "pt"} */
  metadata?: Record<string, string>;
}

/**
 * Writes tensors as a sharded checkpoint (`<prefix>-0000i-of-0000n.safetensors` and
 * `<prefix>.safetensors.index.json`), each file atomically, tensors assigned to shards in name order.
 *
 * @param dir Destination folder (must exist).
 * @param tensors The tensors.
 * @param options Shard size, name prefix and metadata.
 * @returns The path of the index file.
 * @throws {Error} When a file cannot be written.
 *
 * @example
 * ```ts ignore
 * import { writeShardedSafetensors } from "./sharded_safetensors.ts";
 * await writeShardedSafetensors("out", tensors, { maxShardBytes: 1 << 20 });
 * ```
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: Iterable<TensorData>,
  options: WriteShardedSafetensorsOptions = {},
): Promise<string> {
  const maxShardBytes = options.maxShardBytes ?? 5e9;
  const prefix = options.prefix ?? "model";
  const metadata = options.metadata ?? { format: "pt" };
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const shards: TensorData[][] = [];
  let current: TensorData[] = [];
  let size = 0;
  let total = 0;
  for (const t of sorted) {
    if (current.length > 0 && size + t.data.byteLength > maxShardBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.data.byteLength;
    total += t.data.byteLength;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    await writeSafetensors(joinPath(dir, name), shards[i], { metadata });
    for (const t of shards[i]) weightMap[t.name] = name;
  }
  const indexPath = joinPath(dir, `${baseName(prefix)}.safetensors.index.json`);
  await writeFileAtomic(
    indexPath,
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n",
  );
  return indexPath;
}
