/**
 * {@linkcode createEdgeHandler}: the server as one `fetch` handler for edge runtimes (Deno Deploy and
 * other isolates): wasm in-process (no Workers), adapters read from a folder that ships with the
 * deployment or from S3-compatible object storage (`s3://BUCKET/PREFIX`, configured by the `AWS_*`
 * environment; see {@linkcode openAdapterStore}), read-only (uploads answer 403), no listening socket of its
 * own.
 *
 * @module
 */

import { openAdapterStore } from "../store/open_adapter_store.ts";
import { type AppLimits, createApp } from "./app.ts";
import { KeyTable } from "./auth.ts";
import { createMeteredEngine } from "./_metered_engine.ts";

/** Options of {@linkcode createEdgeHandler}. */
export interface EdgeHandlerOptions {
  /** The model folder inside the deployment. */
  model: string;
  /**
   * Where adapters are read from: a folder inside the deployment (one sub-folder per tenant), or
   * `s3://BUCKET/PREFIX` (credentials and endpoint from the `AWS_*` environment variables).
   */
  adapters: string;
  /** Parsed keys file (`{"tenants": {…}}`); without it one tenant `default` and no authentication. */
  keys?: unknown;
  /** Byte budget of the adapter cache. @default {64 MiB} */
  cacheBytes?: number;
  /** Request limits. */
  limits?: AppLimits;
}

/**
 * Loads the model and returns the app's fetch handler.
 *
 * @param options Model, adapters, keys, limits.
 * @returns `(request) => response`, e.g. for `export default { fetch }` or `Deno.serve(fetch)`.
 * @throws {Error} When the model cannot be loaded, the keys are invalid, or the adapter location is
 *   unsupported (or `s3://` without credentials).
 * @example
 * ```ts ignore
 * import { createEdgeHandler } from "./edge.ts";
 * const fetch = await createEdgeHandler({ model: "./models/stories260K", adapters: "./adapters" });
 * export default { fetch };
 * ```
 */
export async function createEdgeHandler(
  options: EdgeHandlerOptions,
): Promise<(request: Request) => Response | Promise<Response>> {
  const keys = options.keys === undefined ? undefined : await KeyTable.fromJson(options.keys, "keys");
  const { engine, metrics } = await createMeteredEngine({
    model: options.model,
    store: await openAdapterStore(options.adapters, { readOnly: true }),
    ep: "wasm",
    workers: 0,
    cacheBytes: options.cacheBytes ?? 64 * 2 ** 20,
  });
  return createApp({ engine, keys, limits: options.limits, metrics }).fetch;
}
