/**
 * The file an edge deployment runs: the weightlora server as one `fetch` handler, configured by
 * environment variables, for `deno serve` (and Deno Deploy, which runs the same default export).
 *
 * - `WEIGHTLORA_MODEL`: the model folder (required)
 * - `WEIGHTLORA_ADAPTERS`: the adapter folder, `<tenant>/<name>/<version>/…`, or `s3://BUCKET/PREFIX` (required)
 * - `WEIGHTLORA_KEYS`: the keys file's JSON text (without it: one tenant `default`, no authentication)
 * - `WEIGHTLORA_CACHE_MB`: the adapter cache's budget in MiB (default 64)
 *
 * The model loads in-process on wasm, with no Workers, no subprocess and no write access; with
 * `--unstable-raw-imports` onnxruntime's wasm binary is imported as a module, so reading the model and
 * adapter folders is all the file access it needs:
 *
 * ```sh
 * WEIGHTLORA_MODEL=models/stories260K WEIGHTLORA_ADAPTERS=adapters \
 *   deno serve --unstable-raw-imports --allow-read=models/stories260K,adapters \
 *   --allow-env=WEIGHTLORA_MODEL,WEIGHTLORA_ADAPTERS,WEIGHTLORA_KEYS,WEIGHTLORA_CACHE_MB,WEIGHTLORA_WASM_THREADS \
 *   --allow-net=127.0.0.1:8000 --host 127.0.0.1 --port 8000 --v8-flags=--max-old-space-size=256 \
 *   examples/edge/main.ts
 * ```
 *
 * @module
 */

import { createEdgeHandler } from "../../src/http/edge.ts";
import { edgeOptionsFromEnv } from "../../src/http/edge_env.ts";

const options = edgeOptionsFromEnv();
if (options.keys === undefined) {
  console.warn("Warning: WEIGHTLORA_KEYS is not set: serving without authentication, as tenant default");
}
const fetch = await createEdgeHandler(options);

export default { fetch } satisfies Deno.ServeDefaultExport;
