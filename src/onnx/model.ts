/**
 * {@linkcode modelFromGraph}: wraps a graph in a ModelProto-shaped {@linkcode Model}.
 *
 * @module
 */

import type { Graph, Model } from "./types.ts";

/** Options for {@linkcode modelFromGraph}. */
export interface ModelFromGraphOptions {
  /** Default-domain opset version. @default {18} */
  opset?: number;
  /** Producer name. @default {"weightlora"} */
  producerName?: string;
  /** Key/value metadata. @default {{}} */
  metadata?: Record<string, string>;
}

/**
 * Wraps a graph in a model with the matching IR version.
 *
 * @param graph The main graph.
 * @param options Opset and producer.
 * @returns The model.
 */
export function modelFromGraph(graph: Graph, options: ModelFromGraphOptions = {}): Model {
  const opset = options.opset ?? 18;
  return {
    irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : 8,
    opsetImports: [{ domain: "", version: opset }, ...contribImports(graph)],
    producerName: options.producerName ?? "weightlora",
    producerVersion: "0.1.0",
    domain: "",
    modelVersion: 0,
    docString: "",
    metadataProps: options.metadata ?? {},
    graph,
  };
}

/** The opset imports of the non-default domains the graph's nodes use (`com.microsoft` is version 1). */
function contribImports(graph: Graph): { domain: string; version: number }[] {
  const domains = new Set<string>();
  for (const node of graph.nodes) if (node.domain) domains.add(node.domain);
  return [...domains].sort().map((domain) => ({ domain, version: 1 }));
}
