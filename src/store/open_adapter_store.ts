/**
 * {@linkcode openAdapterStore}: the one place that turns an adapter location — a folder path or
 * `s3://BUCKET/PREFIX` — into an {@linkcode AdapterStore} (used by `deno task serve --adapters`, the edge
 * handler and `deno task adapters`).
 *
 * S3 settings come from the usual environment variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
 * `AWS_SESSION_TOKEN`, `AWS_REGION` (else `AWS_DEFAULT_REGION`, else `us-east-1`) and `AWS_ENDPOINT_URL_S3`
 * (else `AWS_ENDPOINT_URL`; with an endpoint, path-style addressing, for MinIO, R2, s3rver and the like).
 *
 * @module
 */

import type { AdapterStore } from "./adapter_store.ts";
import { FolderAdapterStore } from "./folder_adapter_store.ts";
import { S3AdapterStore, type S3AdapterStoreOptions } from "./s3_adapter_store.ts";

/** The environment variables read for an `s3://` location. */
export const S3_ENV_VARIABLES = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
] as const;

/** Options of {@linkcode openAdapterStore}. */
export interface OpenAdapterStoreOptions {
  /**
   * Refuse writes.
   * @default {false}
   */
  readOnly?: boolean;
  /**
   * The environment to read `AWS_*` from.
   * @default {Deno.env, only the variables this process may read}
   */
  env?: Record<string, string | undefined>;
  /** Further settings of an S3 store (caching, timeouts, fetch). */
  s3?: Pick<
    S3AdapterStoreOptions,
    "cacheBytes" | "freshnessMs" | "revalidateInBackground" | "timeoutMs" | "retries" | "fetch"
  >;
}

/** A parsed `s3://BUCKET/PREFIX`. */
export interface S3Location {
  /** Bucket. */
  bucket: string;
  /** Key prefix, without slashes at either end (`""` for the whole bucket). */
  prefix: string;
}

/**
 * Parses `s3://BUCKET[/PREFIX]`.
 *
 * @param location The location.
 * @returns Bucket and prefix, or `undefined` when the location is not an `s3://` URL.
 * @throws {RangeError} When it starts with `s3://` but names no bucket.
 * @example
 * ```ts
 * import { parseS3Location } from "./open_adapter_store.ts";
 * const { bucket, prefix } = parseS3Location("s3://models/prod/adapters/")!;
 * console.assert(bucket === "models" && prefix === "prod/adapters");
 * ```
 */
export function parseS3Location(location: string): S3Location | undefined {
  if (!/^s3:\/\//i.test(location)) return undefined;
  const rest = location.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (bucket === "") {
    throw new RangeError(`Invalid adapter location "${location}": expected s3://BUCKET/PREFIX`);
  }
  return { bucket, prefix: slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "") };
}

function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const variable of S3_ENV_VARIABLES) {
    try {
      // only what this process may read: no permission prompt, no error for an ungranted variable
      if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") continue;
      env[variable] = Deno.env.get(variable);
    } catch {
      // a runtime without the permissions API or env access: the variable counts as unset
    }
  }
  return env;
}

/**
 * Opens the adapter store at a location: `s3://BUCKET/PREFIX` ({@linkcode S3AdapterStore}, configured from
 * the `AWS_*` environment) or a folder ({@linkcode FolderAdapterStore}). Nothing is requested or created
 * until the store is used.
 *
 * @param location A folder path or `s3://BUCKET/PREFIX`.
 * @param options Read-only mode, the environment, S3 settings.
 * @returns The store.
 * @throws {RangeError} On an unsupported URL scheme, or an `s3://` location without credentials.
 * @example
 * ```ts ignore
 * import { openAdapterStore } from "./open_adapter_store.ts";
 * const store = await openAdapterStore("s3://adapters/prod", { readOnly: true });
 * console.log(await store.list("acme"));
 * ```
 */
export function openAdapterStore(
  location: string,
  options: OpenAdapterStoreOptions = {},
): Promise<AdapterStore> {
  return Promise.resolve().then(() => {
    const s3 = parseS3Location(location);
    if (!s3) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
        throw new RangeError(
          `Unsupported adapter location "${location}": expected a folder or s3://BUCKET/PREFIX`,
        );
      }
      if (location === "") {
        throw new RangeError('Invalid adapter location "": expected a folder or s3://BUCKET/PREFIX');
      }
      return new FolderAdapterStore(location, { readOnly: options.readOnly });
    }
    const env = options.env ?? readEnv();
    const missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].filter((v) => !env[v]);
    if (missing.length) {
      throw new RangeError(
        `Cannot open adapter store ${location}: ${missing.join(" and ")} ${
          missing.length === 1 ? "is" : "are"
        } not set (or not readable: grant --allow-env=${S3_ENV_VARIABLES.join(",")})`,
      );
    }
    return new S3AdapterStore({
      ...options.s3,
      bucket: s3.bucket,
      prefix: s3.prefix,
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
      endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined,
      accessKeyId: env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
      sessionToken: env.AWS_SESSION_TOKEN || undefined,
      readOnly: options.readOnly,
    });
  });
}
