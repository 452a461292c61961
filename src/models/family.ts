/**
 * The model-family seam: everything the toolkit needs of an architecture — which `config.json`s it reads,
 * its adapter sites, and its graph builders (training forward, standard and fused inference graphs) — in one
 * {@linkcode ModelFamily} record. A family is one folder (`src/models/llama/` holds Llama, Mistral and
 * Qwen2) whose `mod.ts` exports its record; {@linkcode modelFamily} picks the record for a model, and the
 * generator, the serving variants and the trainer build their graphs through it.
 *
 * @module
 */

import type { Model } from "../onnx/types.ts";
import type { LlamaConfig } from "./config.ts";
import type { LlamaWeights } from "./llama/forward.ts";
import type { LlamaFusedGraphOptions } from "./llama/fused.ts";
import type { LlamaInferenceGraphOptions } from "./llama/inference.ts";
import type { LlamaTrainingGraphOptions } from "./llama/training.ts";
import type { AdapterSite } from "./sites.ts";

/** A model: its shape and Hugging Face-named weights. */
export interface FamilyModel {
  /** The model's shape. */
  config: LlamaConfig;
  /** Its weights by Hugging Face name. */
  weights: LlamaWeights;
}

/** What the toolkit needs of one model architecture family. */
export interface ModelFamily {
  /** Family name (`llama`). */
  name: string;
  /** The `config.json` `model_type` values (and `config.architecture`) it serves. */
  architectures: readonly string[];
  /** The linear modules where adapters attach, in forward order (PEFT `target_modules` names). */
  modules: readonly string[];
  /** Every adapter site of a model, layer by layer in forward order. */
  listSites(config: LlamaConfig): AdapterSite[];
  /** The training forward (loss graph; standard ops that autodiff differentiates). */
  buildTrainingGraph(model: FamilyModel, options: LlamaTrainingGraphOptions): Model;
  /** The standard-op inference graphs (prefill/decode with a per-layer KV cache; references, exports). */
  buildInferenceGraph(model: FamilyModel, options: LlamaInferenceGraphOptions): Model;
  /** The fused inference graphs the decode path runs (one packed KV cache; see `llama/fused.ts`). */
  buildFusedGraph(model: FamilyModel, options: LlamaFusedGraphOptions): Model;
}

const FAMILIES: ModelFamily[] = [];

/**
 * Adds a family to the registry (each family's `mod.ts` registers itself when imported).
 *
 * @param family The record.
 * @throws {Error} When an architecture is already served by another family.
 */
export function registerModelFamily(family: ModelFamily): void {
  for (const arch of family.architectures) {
    const other = FAMILIES.find((f) => f !== family && f.architectures.includes(arch));
    if (other) {
      throw new Error(
        `Cannot register model family "${family.name}": "${arch}" is served by "${other.name}"`,
      );
    }
  }
  if (!FAMILIES.includes(family)) FAMILIES.push(family);
}

/**
 * The family of a model.
 *
 * @param config The model's shape (its `architecture`).
 * @returns The family record.
 * @throws {RangeError} When no registered family serves the architecture (the message lists those that exist).
 */
export function modelFamily(config: Pick<LlamaConfig, "architecture">): ModelFamily {
  const family = FAMILIES.find((f) => f.architectures.includes(config.architecture));
  if (!family) {
    const known = FAMILIES.flatMap((f) => f.architectures).join(", ");
    throw new RangeError(`No model family serves architecture "${config.architecture}" (known: ${known})`);
  }
  return family;
}

/**
 * The registered families.
 *
 * @returns The records, in registration order.
 */
export function modelFamilies(): readonly ModelFamily[] {
  return FAMILIES;
}
