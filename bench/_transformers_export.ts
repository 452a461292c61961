/**
 * Exports a model folder (as `deno task convert` writes it) into the layout transformers.js
 * (`@huggingface/transformers`) loads offline: `config.json`, `generation_config.json`, `tokenizer.json`,
 * `tokenizer_config.json` copied as they are (model_type `llama`), and `onnx/model.onnx`: our own decode
 * graph ({@linkcode buildLlamaInferenceGraph}, standard ONNX ops, logits of the last position) with the
 * cache tensors renamed to the names transformers.js feeds: inputs `input_ids`, `attention_mask`,
 * `position_ids`, `past_key_values.N.key` / `.value`; outputs `logits`, `present.N.key` / `.value`. Its
 * first step feeds an empty past (`[batch, kvHeads, 0, headDim]`), which the wasm EP runs.
 *
 * Bench-only: the peers bench runs transformers.js on this export.
 *
 * @example
 * ```ts ignore
 * import { exportForTransformersJs } from "./_transformers_export.ts";
 * await exportForTransformersJs("/tmp/stories260K", "/tmp/stories260K-tjs");
 * ```
 *
 * @module
 */

import { loadModelFolder } from "../src/io/model_folder.ts";
import { buildLlamaInferenceGraph, kvCacheNames } from "../src/models/llama/inference.ts";
import { encodeModel } from "../src/onnx/proto.ts";
import type { Model } from "../src/onnx/types.ts";

/** The files copied from the model folder (generation_config.json only when present). */
const COPIED = ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"];

/**
 * Renames graph inputs and outputs (and every node port that uses them), in place.
 *
 * @param model The model.
 * @param names Old name → new name.
 * @returns The model.
 * @throws {RangeError} When a name to rename is not a graph input or output.
 */
export function renameGraphPorts(model: Model, names: ReadonlyMap<string, string>): Model {
  const g = model.graph;
  const ports = new Set([...g.inputs, ...g.outputs].map((v) => v.name));
  for (const old of names.keys()) {
    if (!ports.has(old)) throw new RangeError(`Cannot rename "${old}": it is not a graph input or output`);
  }
  const rename = (n: string) => names.get(n) ?? n;
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) v.name = rename(v.name);
  for (const node of g.nodes) {
    node.inputs = node.inputs.map(rename);
    node.outputs = node.outputs.map(rename);
  }
  return model;
}

/**
 * The decode graph of a model folder with transformers.js's port names.
 *
 * @param dir Model folder.
 * @returns The ONNX model.
 */
export async function transformersJsGraph(dir: string): Promise<Model> {
  const folder = await loadModelFolder(dir);
  const model = buildLlamaInferenceGraph(folder, { kind: "decode", logits: "last" });
  const names = new Map<string, string>();
  for (let l = 0; l < folder.config.numHiddenLayers; l++) {
    const n = kvCacheNames(l);
    names.set(n.pastKey, `past_key_values.${l}.key`);
    names.set(n.pastValue, `past_key_values.${l}.value`);
  }
  return renameGraphPorts(model, names);
}

/**
 * Writes the transformers.js folder of a model folder (into a temporary sibling, then renamed).
 *
 * @param dir Model folder (`config.json`, `model.safetensors`, `tokenizer.json`, …).
 * @param out Destination folder (must not exist).
 * @returns Nothing.
 * @throws {Error} When the destination exists or the model folder cannot be loaded.
 */
export async function exportForTransformersJs(dir: string, out: string): Promise<void> {
  try {
    await Deno.lstat(out);
    throw new Error(`Cannot export to ${out}: it exists`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const { model } = encodeModel(await transformersJsGraph(dir));
  const tmp = `${out}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(`${tmp}/onnx`, { recursive: true });
  try {
    await Deno.writeFile(`${tmp}/onnx/model.onnx`, model);
    for (const name of COPIED) {
      try {
        await Deno.copyFile(`${dir}/${name}`, `${tmp}/${name}`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound) || name !== "generation_config.json") throw e;
      }
    }
    await Deno.rename(tmp, out);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
