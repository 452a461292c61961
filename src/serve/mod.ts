/**
 * Serving many tenants on one base model: the serving graphs with per-row adapter banks
 * ({@linkcode buildServingGraphs}), prepared adapters and their byte-bounded cache
 * ({@linkcode AdapterCache}), continuous mixed-adapter batching ({@linkcode BatchRunner}), inference
 * workers ({@linkcode WorkerRunner}), the graph variants' sessions in one of three layouts
 * ({@linkcode VariantSessions}: per variant, shared `If` branches, or one gated graph) and the engine that ties them to an adapter store
 * ({@linkcode ServeEngine}).
 *
 * @example
 * ```ts ignore
 * import { ServeEngine } from "./mod.ts";
 * import { FolderAdapterStore } from "../store/mod.ts";
 * const engine = await ServeEngine.create({ model: "models/stories260K", store: new FolderAdapterStore("adapters") });
 * const story = await engine.adapter("acme", "story");
 * for await (const events of engine.generate({
 *   rows: [{ promptIds: [1], maxTokens: 32, seed: 0, stop: [], temperature: 0 }],
 *   adapter: story?.adapter ?? null,
 * })) console.log(events.map((e) => e.text).join(""));
 * await engine.close();
 * ```
 *
 * @module
 */

export * from "./adapter_cache.ts";
export * from "./variant_graphs.ts";
export * from "./slot_packs.ts";
export * from "./variant_sessions.ts";
export * from "./shared_variants.ts";
export * from "./gated_graph.ts";
export * from "./batch_runner.ts";
export * from "./engine.ts";
export * from "./ort_wasm.ts";
export * from "./prepared_adapter.ts";
export * from "./runner_types.ts";
export * from "./worker_runner.ts";
