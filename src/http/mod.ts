/**
 * The HTTP server: an OpenAI-compatible Hono app ({@linkcode createApp}) with tenant API keys
 * ({@linkcode KeyTable}, {@linkcode tenantAuth}), limits, Prometheus metrics ({@linkcode ServeMetrics}),
 * the adapter routes, {@linkcode startServer} for `Deno.serve`, and {@linkcode createEdgeHandler} for edge
 * runtimes. Deployment notes: `src/http/README.md`.
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./mod.ts";
 * import { FolderAdapterStore } from "../store/mod.ts";
 * const server = await startServer({ model: "models/stories260K", store: new FolderAdapterStore("adapters"), port: 0 });
 * console.log(`Listening on ${server.url}`);
 * await server.shutdown();
 * ```
 *
 * @module
 */

export * from "./adapter_routes.ts";
export * from "./app.ts";
export * from "./auth.ts";
export * from "./context.ts";
export * from "./edge.ts";
export * from "./errors.ts";
export * from "./inference_routes.ts";
export * from "./limits.ts";
export * from "./metrics.ts";
export * from "./schemas.ts";
export * from "./server.ts";
