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

/** Opset versions of the non-default domains a graph may use (onnxruntime's contrib ops are version 1). */
const DOMAIN_VERSIONS: Readonly<Record<string, number>> = { "com.microsoft": 1 };

/**
 * Wraps a graph in a model with the matching IR version; every non-default domain its nodes use is
 * imported too (`com.microsoft` version 1).
 *
 * @param graph The main graph.
 * @param options Opset and producer.
 * @returns The model.
 */
export function modelFromGraph(graph: Graph, options: ModelFromGraphOptions = {}): Model {
  const opset = options.opset ?? 18;
  const domains = new Set(graph.nodes.map((n) => n.domain ?? "").filter((d) => d !== ""));
  return {
    irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : 8,
    opsetImports: [
      { domain: "", version: opset },
      ...[...domains].sort().map((domain) => ({ domain, version: DOMAIN_VERSIONS[domain] ?? 1 })),
    ],
    producerName: options.producerName ?? "weightlora",
    producerVersion: "0.1.0",
    domain: "",
    modelVersion: 0,
    docString: "",
    metadataProps: options.metadata ?? {},
    graph,
  };
}
