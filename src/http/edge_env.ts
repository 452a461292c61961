/**
 * {@linkcode edgeOptionsFromEnv}: the options of `createEdgeHandler` read from environment
 * variables, as an edge deployment configures them (`examples/edge/main.ts`):
 *
 * - `WEIGHTLORA_MODEL`: the model folder inside the deployment (required).
 * - `WEIGHTLORA_ADAPTERS`: the adapter folder (one sub-folder per tenant), or an object-store location
 *   (`s3://BUCKET/PREFIX`), passed on unchanged (required).
 * - `WEIGHTLORA_KEYS`: the keys file's JSON text (`{"tenants": {…}}`); without it one tenant `default`
 *   and no authentication.
 * - `WEIGHTLORA_CACHE_MB`: the adapter cache's budget in MiB (default 64).
 *
 * Only these names are read, so `--allow-env=WEIGHTLORA_MODEL,WEIGHTLORA_ADAPTERS,…` suffices.
 *
 * @module
 */

import type { EdgeHandlerOptions } from "./edge.ts";

/** The environment variables {@linkcode edgeOptionsFromEnv} reads. */
export const EDGE_ENV_NAMES = [
  "WEIGHTLORA_MODEL",
  "WEIGHTLORA_ADAPTERS",
  "WEIGHTLORA_KEYS",
  "WEIGHTLORA_CACHE_MB",
] as const;

/** One of {@linkcode EDGE_ENV_NAMES}. */
export type EdgeEnvName = typeof EDGE_ENV_NAMES[number];

/** Reads one variable; `undefined` when unset. */
export type EnvReader = (name: EdgeEnvName) => string | undefined;

/** Reads a variable from `Deno.env`, naming the permission to grant when it is refused. */
function denoEnv(name: EdgeEnvName): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `Cannot read ${name}: no permission (grant --allow-env=${EDGE_ENV_NAMES.join(",")})`,
      );
    }
    throw e;
  }
}

function required(env: EnvReader, name: EdgeEnvName, what: string): string {
  const value = env(name)?.trim();
  if (!value) throw new Error(`Cannot start the edge handler: ${name} is not set (${what})`);
  return value;
}

/**
 * Builds the edge handler's options from environment variables.
 *
 * @param env Reads a variable (default: `Deno.env.get`).
 * @returns The options, with `keys` parsed from JSON (validated later by `createEdgeHandler`).
 * @throws {Error} When `WEIGHTLORA_MODEL` or `WEIGHTLORA_ADAPTERS` is unset or empty,
 *   `WEIGHTLORA_KEYS` is not JSON, or `WEIGHTLORA_CACHE_MB` is not a positive number.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { edgeOptionsFromEnv } from "./edge_env.ts";
 * const env = { WEIGHTLORA_MODEL: "models/stories260K", WEIGHTLORA_ADAPTERS: "adapters" };
 * const options = edgeOptionsFromEnv((name) => env[name as keyof typeof env]);
 * assert.deepEqual(options, { model: "models/stories260K", adapters: "adapters" });
 * ```
 */
export function edgeOptionsFromEnv(env: EnvReader = denoEnv): EdgeHandlerOptions {
  const model = required(env, "WEIGHTLORA_MODEL", "the model folder of the deployment");
  const adapters = required(
    env,
    "WEIGHTLORA_ADAPTERS",
    "the adapter folder of the deployment, or s3://BUCKET/PREFIX",
  );
  const options: EdgeHandlerOptions = { model, adapters };
  const keys = env("WEIGHTLORA_KEYS");
  if (keys !== undefined && keys.trim() !== "") {
    try {
      options.keys = JSON.parse(keys);
    } catch (e) {
      throw new Error(
        `Cannot start the edge handler: WEIGHTLORA_KEYS is not JSON (${(e as Error).message}); ` +
          `it holds the keys file's text, {"tenants": {"<tenant>": {"keys": ["<api key>"]}}}`,
      );
    }
  }
  const cache = env("WEIGHTLORA_CACHE_MB");
  if (cache !== undefined && cache.trim() !== "") {
    const mb = Number(cache);
    if (!Number.isFinite(mb) || mb <= 0) {
      throw new RangeError(
        `Cannot start the edge handler: WEIGHTLORA_CACHE_MB must be a positive number of MiB, got "${cache}"`,
      );
    }
    options.cacheBytes = Math.round(mb * 2 ** 20);
  }
  return options;
}
