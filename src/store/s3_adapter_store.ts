/**
 * {@linkcode S3AdapterStore}: tenants' adapters as objects in S3-compatible storage, so that replicas and
 * edge isolates without a disk or a database serve the same adapters.
 *
 *     <prefix>/<tenant>/<name>/CURRENT                              the current version id (a small pointer)
 *     <prefix>/<tenant>/<name>/<version>/adapter_config.json
 *     <prefix>/<tenant>/<name>/<version>/adapter_model.safetensors
 *     <prefix>/<tenant>/<name>/<version>/meta.json                 {created_at, bytes, sha256}
 *
 * The layout is the folder store's. A put writes the version's objects first and the pointer last, so a
 * torn upload (objects without a pointer) is never visible; older versions are removed after the switch (a
 * reader holding one gets {@linkcode AdapterVersionGoneError} and resolves again). A delete removes the
 * pointer first. Versions are immutable, so their objects are cached in memory (byte-bounded, least
 * recently used evicted) without revalidation; pointers are cached for a short freshness window, then
 * revalidated with a conditional GET (`If-None-Match`), so a replica sees another's new version within
 * about that window without a full GET per request. The weights' SHA-256 is checked on every read from
 * the bucket: a corrupted object is an error naming it, never served.
 *
 * @module
 */

import {
  type AdapterFiles,
  type AdapterRecord,
  type AdapterStore,
  AdapterVersionGoneError,
  KeyedSerializer,
  newAdapterVersion,
  parseAdapterMeta,
  type PutAdapterResult,
  ReadOnlyStoreError,
  sha256Hex,
  validateStoreName,
} from "./adapter_store.ts";
import { S3Client } from "./_s3_client.ts";

/** Options of {@linkcode S3AdapterStore}. */
export interface S3AdapterStoreOptions {
  /** Bucket name. */
  bucket: string;
  /**
   * Key prefix of the store inside the bucket (no leading or trailing `/` needed).
   * @default {""}
   */
  prefix?: string;
  /**
   * Region, for the signature.
   * @default {"us-east-1"}
   */
  region?: string;
  /**
   * An S3-compatible endpoint such as `http://127.0.0.1:9000` (path-style addressing); without it, AWS S3
   * with virtual-hosted addressing.
   */
  endpoint?: string;
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
  /**
   * Refuse writes.
   * @default {false}
   */
  readOnly?: boolean;
  /**
   * Byte budget of the in-memory cache of version objects (0 disables it).
   * @default {64 MiB}
   */
  cacheBytes?: number;
  /**
   * How long a pointer read from the bucket is trusted before it is revalidated, milliseconds.
   * @default {1000}
   */
  freshnessMs?: number;
  /**
   * Past the freshness window, answer with the pointer already held and revalidate it in the background
   * (a pointer never read is still read first). For replicas whose writes are announced to each other
   * (`AnnouncedAdapterStore`, which calls {@linkcode S3AdapterStore.invalidate}): then only adapters written
   * to the bucket by other means (`deno task adapters push`) are seen one request late.
   * @default {false}
   */
  revalidateInBackground?: boolean;
  /**
   * Deadline of one request, milliseconds.
   * @default {10000}
   */
  timeoutMs?: number;
  /**
   * Retries of a request that failed with a server error (5xx, 429) or a network error.
   * @default {2}
   */
  retries?: number;
  /**
   * The fetch function requests go through.
   * @default {globalThis.fetch}
   */
  fetch?: (request: Request) => Promise<Response>;
}

const CONFIG_FILE = "adapter_config.json";
const WEIGHTS_FILE = "adapter_model.safetensors";
const META_FILE = "meta.json";
const CURRENT_FILE = "CURRENT";
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const PREFIX = /^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/;

/** A pointer as last read from the bucket. */
interface Pointer {
  version: string | undefined;
  etag: string;
  checkedAt: number;
}

/** An adapter whose pointer names objects that are not there (never served). */
class BrokenAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BrokenAdapterError";
  }
}

/**
 * Adapters in an S3 bucket.
 *
 * @example
 * ```ts ignore
 * import { S3AdapterStore } from "./s3_adapter_store.ts";
 * const store = new S3AdapterStore({
 *   bucket: "adapters",
 *   prefix: "prod",
 *   endpoint: "http://127.0.0.1:9000",
 *   accessKeyId: "…",
 *   secretAccessKey: "…",
 * });
 * const { record } = await store.put("acme", "story", { config, weights });
 * console.log(record.version, await store.list("acme"));
 * ```
 */
export class S3AdapterStore implements AdapterStore {
  /** Whether writes are refused. */
  readonly readOnly: boolean;
  /** `s3://BUCKET/PREFIX`. */
  readonly location: string;
  /** Byte budget of the object cache. */
  readonly cacheBytes: number;
  /** Pointer freshness window, milliseconds. */
  readonly freshnessMs: number;
  /** Whether stale pointers are answered at once and revalidated in the background. */
  readonly revalidateInBackground: boolean;
  #client: S3Client;
  #prefix: string;
  #pointers = new Map<string, Pointer>();
  #pointerLoads = new Map<string, Promise<string | undefined>>();
  #objects = new Map<string, Uint8Array>(); // least recently used first
  #objectBytes = 0;
  #writes = new KeyedSerializer();

  /**
   * Opens a store; nothing is requested until used.
   *
   * @param options Bucket, prefix, endpoint, credentials, caching.
   * @throws {RangeError} When the bucket, prefix, endpoint or a number is invalid.
   */
  constructor(options: S3AdapterStoreOptions) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new RangeError(
        `Invalid S3 bucket name ${
          JSON.stringify(options.bucket)
        }: use 3–63 lowercase letters, digits, "." or "-"`,
      );
    }
    const prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    if (prefix !== "" && !PREFIX.test(prefix)) {
      throw new RangeError(
        `Invalid S3 key prefix ${JSON.stringify(options.prefix)}: use letters, digits and !_.*'()- ` +
          "between single slashes",
      );
    }
    if (options.endpoint !== undefined) {
      let url: URL;
      try {
        url = new URL(options.endpoint);
      } catch {
        throw new RangeError(
          `Invalid S3 endpoint ${JSON.stringify(options.endpoint)}: expected an http(s) URL`,
        );
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new RangeError(
          `Invalid S3 endpoint ${JSON.stringify(options.endpoint)}: expected an http(s) URL`,
        );
      }
    }
    for (const [name, value] of [["cacheBytes", options.cacheBytes], ["freshnessMs", options.freshnessMs]]) {
      if (value !== undefined && !((value as number) >= 0)) {
        throw new RangeError(`Invalid ${name} ${value}: it must be a number ≥ 0`);
      }
    }
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
      throw new RangeError(`Invalid timeoutMs ${options.timeoutMs}: it must be a number > 0`);
    }
    this.readOnly = options.readOnly ?? false;
    this.cacheBytes = options.cacheBytes ?? 64 * 2 ** 20;
    this.freshnessMs = options.freshnessMs ?? 1000;
    this.revalidateInBackground = options.revalidateInBackground ?? false;
    this.#prefix = prefix === "" ? "" : `${prefix}/`;
    this.location = `s3://${options.bucket}${prefix === "" ? "" : `/${prefix}`}`;
    this.#client = new S3Client({
      bucket: options.bucket,
      region: options.region ?? "us-east-1",
      endpoint: options.endpoint?.replace(/\/+$/, ""),
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      sessionToken: options.sessionToken,
      timeoutMs: options.timeoutMs ?? 10_000,
      retries: options.retries ?? 2,
      fetch: options.fetch ?? ((request) => fetch(request)),
    });
  }

  /**
   * The tenants that have keys under the prefix (sorted; a tenant may hold no adapter).
   *
   * @returns Tenant ids.
   */
  async tenants(): Promise<string[]> {
    const listing = await this.#client.list(this.#prefix, "/");
    return listing.prefixes
      .map((p) => p.slice(this.#prefix.length).replace(/\/$/, ""))
      .filter((tenant) => {
        try {
          validateStoreName("tenant", tenant);
          return true;
        } catch {
          return false;
        }
      })
      .sort();
  }

  async list(tenant: string): Promise<AdapterRecord[]> {
    validateStoreName("tenant", tenant);
    const base = `${this.#prefix}${tenant}/`;
    const listing = await this.#client.list(base, "/");
    const names = listing.prefixes
      .map((p) => p.slice(base.length).replace(/\/$/, ""))
      .filter((name) => {
        try {
          validateStoreName("adapter name", name);
          return true;
        } catch {
          return false; // a foreign key is not an adapter
        }
      })
      .sort();
    const records: (AdapterRecord | undefined)[] = new Array(names.length);
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const i = next++;
        try {
          records[i] = await this.get(tenant, names[i]);
        } catch (e) {
          if (!(e instanceof BrokenAdapterError)) throw e; // a torn or half-deleted adapter is not listed
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, names.length) }, worker));
    return records.filter((r): r is AdapterRecord => r !== undefined);
  }

  async get(tenant: string, name: string): Promise<AdapterRecord | undefined> {
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    let version = await this.#current(tenant, name, false);
    for (let attempt = 0; version !== undefined; attempt++) {
      const key = this.#versionKey({ tenant, name, version }, META_FILE);
      const meta = await this.#object(key);
      if (meta) {
        return parseAdapterMeta(new TextDecoder().decode(meta), {
          tenant,
          name,
          version,
          source: this.#client.uri(key),
        });
      }
      // the pointer was stale (replaced meanwhile) or names a version whose objects are missing
      const fresh = await this.#current(tenant, name, true);
      if (fresh === version || attempt === 2) {
        throw new BrokenAdapterError(
          `Cannot read adapter "${name}" of tenant "${tenant}": ${
            this.#client.uri(this.#pointerKey(tenant, name))
          } names version ${version}, but ${this.#client.uri(key)} does not exist (a broken upload: ` +
            "upload the adapter again or delete it)",
        );
      }
      version = fresh;
    }
    return undefined;
  }

  async read(record: AdapterRecord): Promise<AdapterFiles> {
    const configKey = this.#versionKey(record, CONFIG_FILE);
    const weightsKey = this.#versionKey(record, WEIGHTS_FILE);
    const cachedWeights = this.#objects.has(weightsKey);
    const [config, weights] = await Promise.all([
      this.#object(configKey, { remember: false }),
      this.#object(weightsKey, { remember: false }),
    ]);
    if (!config || !weights) {
      const current = await this.#current(record.tenant, record.name, true);
      if (current !== record.version) {
        throw new AdapterVersionGoneError(
          `Cannot read adapter "${record.name}" of tenant "${record.tenant}": version ${record.version} ` +
            "no longer exists (it was replaced or deleted)",
        );
      }
      throw new BrokenAdapterError(
        `Cannot read adapter "${record.name}" of tenant "${record.tenant}": ${
          this.#client.uri(config ? weightsKey : configKey)
        } of its current version ${record.version} does not exist (a broken upload: upload it again)`,
      );
    }
    // the weights' checksum, whenever they came from the bucket; the size of both files always
    const sha256 = cachedWeights ? record.sha256 : await sha256Hex(weights);
    const bytes = config.byteLength + weights.byteLength;
    if (sha256 !== record.sha256 || bytes !== record.bytes) {
      const which = sha256 !== record.sha256 ? weightsKey : configKey;
      throw new Error(
        `Cannot read adapter "${record.name}" of tenant "${record.tenant}": ${this.#client.uri(which)} is ` +
          `corrupted (the weights' SHA-256 is ${sha256} and both files hold ${bytes} bytes; its meta.json ` +
          `records ${record.sha256} and ${record.bytes} bytes): it is not served`,
      );
    }
    this.#remember(configKey, config);
    this.#remember(weightsKey, weights);
    return { config, weights };
  }

  async put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult> {
    this.#writable(`store adapter "${name}"`);
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    return await this.#writes.run(`${tenant}/${name}`, () => this.#put(tenant, name, files));
  }

  async delete(tenant: string, name: string): Promise<boolean> {
    this.#writable(`delete adapter "${name}"`);
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    return await this.#writes.run(`${tenant}/${name}`, async () => {
      const pointerKey = this.#pointerKey(tenant, name);
      const existed = (await this.#current(tenant, name, true)) !== undefined;
      await this.#client.delete(pointerKey); // first: the adapter disappears at once
      this.#pointers.set(pointerKey, { version: undefined, etag: "", checkedAt: performance.now() });
      const { keys } = await this.#client.list(this.#adapterBase(tenant, name));
      await Promise.all(keys.map(async (key) => {
        this.#forget(key);
        await this.#client.delete(key);
      }));
      return existed;
    });
  }

  async #put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult> {
    const previous = await this.#current(tenant, name, true);
    const version = newAdapterVersion();
    const record: AdapterRecord = {
      tenant,
      name,
      version,
      createdAt: Math.floor(Date.now() / 1000),
      bytes: files.config.byteLength + files.weights.byteLength,
      sha256: await sha256Hex(files.weights),
    };
    const meta = new TextEncoder().encode(
      JSON.stringify({ created_at: record.createdAt, bytes: record.bytes, sha256: record.sha256 }) + "\n",
    );
    const objects: [string, Uint8Array, string, string][] = [
      [
        this.#versionKey(record, CONFIG_FILE),
        files.config,
        "application/json",
        await sha256Hex(files.config),
      ],
      [this.#versionKey(record, WEIGHTS_FILE), files.weights, "application/octet-stream", record.sha256],
      [this.#versionKey(record, META_FILE), meta, "application/json", await sha256Hex(meta)],
    ];
    try {
      await Promise.all(
        objects.map(([key, body, contentType, sha256]) =>
          this.#client.put(key, body, { contentType, sha256 })
        ),
      );
    } catch (e) {
      await Promise.all(objects.map(([key]) => this.#client.delete(key).catch(() => {})));
      throw new Error(
        `Cannot store adapter "${name}" of tenant "${tenant}" in ${this.location}: ${(e as Error).message}`,
      );
    }
    // the pointer last: until it is written the new version is invisible
    const pointerKey = this.#pointerKey(tenant, name);
    const etag = await this.#client.put(pointerKey, new TextEncoder().encode(version + "\n"), {
      contentType: "text/plain",
    });
    this.#pointers.set(pointerKey, { version, etag, checkedAt: performance.now() });
    for (const [key, body] of objects) this.#remember(key, body);
    // older versions go (torn uploads included); a newer one (a concurrent writer elsewhere) stays
    const base = this.#adapterBase(tenant, name);
    const { keys } = await this.#client.list(base);
    await Promise.all(keys.map(async (key) => {
      const older = key.slice(base.length).split("/");
      if (older.length === 2 && older[0] < version) {
        this.#forget(key);
        await this.#client.delete(key).catch(() => {});
      }
    }));
    return { record, replaced: previous !== undefined };
  }

  /** The current version named by the pointer, from the cache while fresh, else revalidated. */
  async #current(tenant: string, name: string, fresh: boolean): Promise<string | undefined> {
    const key = this.#pointerKey(tenant, name);
    const cached = this.#pointers.get(key);
    const now = performance.now();
    if (cached && !fresh && now - cached.checkedAt < this.freshnessMs) return cached.version;
    // concurrent lookups of a stale pointer share one request
    const pending = fresh ? undefined : this.#pointerLoads.get(key);
    if (pending && !(cached && this.revalidateInBackground)) return await pending;
    if (pending) return cached!.version;
    const load = this.#loadPointer(key, { tenant, name, cached, now });
    if (!fresh) this.#pointerLoads.set(key, load);
    if (cached && !fresh && this.revalidateInBackground) {
      // the pointer held is answered now; a failed revalidation leaves it stale, to be tried again
      load.catch(() => {}).finally(() => {
        if (this.#pointerLoads.get(key) === load) this.#pointerLoads.delete(key);
      });
      return cached.version;
    }
    try {
      return await load;
    } finally {
      if (this.#pointerLoads.get(key) === load) this.#pointerLoads.delete(key);
    }
  }

  async #loadPointer(
    key: string,
    at: { tenant: string; name: string; cached: Pointer | undefined; now: number },
  ): Promise<string | undefined> {
    const { tenant, name, cached, now } = at;
    const object = await this.#client.get(key, { ifNoneMatch: cached?.etag || undefined });
    if (object === "not-modified") {
      cached!.checkedAt = now;
      return cached!.version;
    }
    if (object === undefined) {
      this.#pointers.set(key, { version: undefined, etag: "", checkedAt: now });
      return undefined;
    }
    const version = new TextDecoder().decode(object.body).trim();
    if (!VERSION.test(version)) {
      throw new Error(
        `Cannot read adapter "${name}" of tenant "${tenant}": ${this.#client.uri(key)} holds ` +
          `${JSON.stringify(version.slice(0, 80))}, not a version id`,
      );
    }
    this.#pointers.set(key, { version, etag: object.etag, checkedAt: now });
    return version;
  }

  /** An immutable object, from the cache or the bucket (`undefined` when absent). */
  async #object(key: string, options: { remember?: boolean } = {}): Promise<Uint8Array | undefined> {
    const cached = this.#objects.get(key);
    if (cached) {
      this.#objects.delete(key);
      this.#objects.set(key, cached);
      return cached;
    }
    const object = await this.#client.get(key);
    if (object === undefined || object === "not-modified") return undefined;
    if (options.remember !== false) this.#remember(key, object.body);
    return object.body;
  }

  #remember(key: string, body: Uint8Array): void {
    if (body.byteLength > this.cacheBytes || this.#objects.has(key)) return;
    this.#objects.set(key, body);
    this.#objectBytes += body.byteLength;
    for (const [old, bytes] of this.#objects) {
      if (this.#objectBytes <= this.cacheBytes) break;
      this.#objects.delete(old);
      this.#objectBytes -= bytes.byteLength;
    }
  }

  /**
   * Drops what this store holds of one adapter's pointer, so that the next lookup reads the bucket (called
   * when another replica announces that it wrote the adapter).
   *
   * @param tenant Tenant id.
   * @param name Adapter name.
   */
  invalidate(tenant: string, name: string): void {
    const key = this.#pointerKey(tenant, name);
    this.#pointers.delete(key);
    this.#pointerLoads.delete(key); // a read started before the write may return the old version
  }

  #forget(key: string): void {
    const body = this.#objects.get(key);
    if (!body) return;
    this.#objects.delete(key);
    this.#objectBytes -= body.byteLength;
  }

  #adapterBase(tenant: string, name: string): string {
    return `${this.#prefix}${tenant}/${name}/`;
  }

  #pointerKey(tenant: string, name: string): string {
    return `${this.#adapterBase(tenant, name)}${CURRENT_FILE}`;
  }

  #versionKey(record: Pick<AdapterRecord, "tenant" | "name" | "version">, file: string): string {
    if (!VERSION.test(record.version)) {
      throw new RangeError(`Invalid adapter version ${JSON.stringify(record.version)}`);
    }
    return `${this.#adapterBase(record.tenant, record.name)}${record.version}/${file}`;
  }

  #writable(action: string): void {
    if (this.readOnly) {
      throw new ReadOnlyStoreError(`Cannot ${action}: the adapter store ${this.location} is read-only`);
    }
  }
}
