/**
 * The Llama family (Llama, Mistral, Qwen2): the decoder forward, its training, standard and fused
 * inference graphs, and its {@linkcode ModelFamily} record, {@linkcode LLAMA_FAMILY}, registered on import.
 *
 * @example
 * ```ts ignore
 * import { modelFamily } from "../family.ts";
 * import "./mod.ts";
 * const decode = modelFamily(config).buildFusedGraph({ config, weights }, { kind: "decode" });
 * ```
 *
 * @module
 */

import { type ModelFamily, registerModelFamily } from "../family.ts";
import { listAdapterSites, LLAMA_MODULES } from "../sites.ts";
import { buildLlamaFusedGraph } from "./fused.ts";
import { buildLlamaInferenceGraph } from "./inference.ts";
import { buildLlamaTrainingGraph } from "./training.ts";

export * from "./forward.ts";
export * from "./inference.ts";
export * from "./fused.ts";
export * from "./training.ts";

/** The Llama family's record. */
export const LLAMA_FAMILY: ModelFamily = {
  name: "llama",
  architectures: ["llama", "mistral", "qwen2"],
  modules: LLAMA_MODULES,
  listSites: listAdapterSites,
  buildTrainingGraph: buildLlamaTrainingGraph,
  buildInferenceGraph: buildLlamaInferenceGraph,
  buildFusedGraph: buildLlamaFusedGraph,
};

registerModelFamily(LLAMA_FAMILY);
