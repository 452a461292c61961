/**
 * {@linkcode AdapterStore}: where tenants' PEFT LoRA adapters live, behind one interface so that the
 * server does not care whether they are files in a folder ({@linkcode FolderAdapterStore}), rows in a
 * database shared by replicas, or objects at the edge.
 *
 * An adapter is addressed by `(tenant, name)`; each upload makes a new immutable **version**. Readers
 * resolve the current version with {@linkcode AdapterStore.get}, then read exactly that version, so a
 * request never mixes two uploads; a replaced version may vanish afterwards ({@linkcode
 * AdapterVersionGoneError}: resolve again).
 *
 * @module
 */

/** The two files of a PEFT LoRA adapter, as uploaded. */
export interface AdapterFiles {
  /** `adapter_config.json`. */
  config: Uint8Array;
  /** `adapter_model.safetensors`. */
  weights: Uint8Array;
}

/** One stored adapter version. */
export interface AdapterRecord {
  /** Owning tenant. */
  tenant: string;
  /** Adapter name, unique per tenant. */
  name: string;
  /** Version id of this upload; later uploads have larger ids (they sort as strings). */
  version: string;
  /** Upload time, Unix seconds. */
  createdAt: number;
  /** Bytes of both files together. */
  bytes: number;
  /** SHA-256 of `adapter_model.safetensors`, hex. */
  sha256: string;
}

/** The result of {@linkcode AdapterStore.put}. */
export interface PutAdapterResult {
  /** The stored version. */
  record: AdapterRecord;
  /** Whether an earlier version of the same name was replaced. */
  replaced: boolean;
}

/** Stores tenants' adapters. Implementations must make {@linkcode put} and {@linkcode delete} atomic. */
export interface AdapterStore {
  /** Whether writes are refused ({@linkcode put} and {@linkcode delete} throw {@linkcode ReadOnlyStoreError}). */
  readonly readOnly: boolean;
  /**
   * The tenant's adapters (their current versions), sorted by name.
   *
   * @param tenant Tenant id.
   * @returns Records; empty when the tenant has none.
   */
  list(tenant: string): Promise<AdapterRecord[]>;
  /**
   * The current version of one adapter.
   *
   * @param tenant Tenant id.
   * @param name Adapter name.
   * @returns The record, or `undefined` when the tenant has no adapter of that name.
   */
  get(tenant: string, name: string): Promise<AdapterRecord | undefined>;
  /**
   * Reads the files of one version.
   *
   * @param record A record from {@linkcode list}, {@linkcode get} or {@linkcode put}.
   * @returns The files.
   * @throws {AdapterVersionGoneError} When that version was replaced or deleted meanwhile.
   */
  read(record: AdapterRecord): Promise<AdapterFiles>;
  /**
   * Stores a new version atomically (readers see the old version or the new one, never a mix).
   *
   * @param tenant Tenant id.
   * @param name Adapter name.
   * @param files The files (validated by the caller).
   * @returns The new record and whether it replaced one.
   * @throws {ReadOnlyStoreError} When the store is read-only.
   */
  put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult>;
  /**
   * Deletes an adapter (all its versions).
   *
   * @param tenant Tenant id.
   * @param name Adapter name.
   * @returns Whether it existed.
   * @throws {ReadOnlyStoreError} When the store is read-only.
   */
  delete(tenant: string, name: string): Promise<boolean>;
}

/** Thrown by writes to a read-only store. */
export class ReadOnlyStoreError extends Error {
  /** @param message What was refused. */
  constructor(message: string) {
    super(message);
    this.name = "ReadOnlyStoreError";
  }
}

/** Thrown by {@linkcode AdapterStore.read} when the version asked for no longer exists. */
export class AdapterVersionGoneError extends Error {
  /** @param message Which version vanished. */
  constructor(message: string) {
    super(message);
    this.name = "AdapterVersionGoneError";
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Checks a tenant id or adapter name: 1–64 characters of letters, digits, `.`, `_`, `-`, starting with a
 * letter or digit (so it is safe as a folder name and in URLs).
 *
 * @param kind What is named, for the message (`tenant`, `adapter name`).
 * @param value The value.
 * @throws {RangeError} When the value does not fit.
 * @example
 * ```ts
 * import { validateStoreName } from "./adapter_store.ts";
 * validateStoreName("adapter name", "story-v2");
 * ```
 */
export function validateStoreName(kind: string, value: string): void {
  if (typeof value !== "string" || !NAME.test(value)) {
    throw new RangeError(
      `Invalid ${kind} ${JSON.stringify(value)}: use 1–64 letters, digits, ".", "_" or "-", ` +
        "starting with a letter or digit",
    );
  }
}

let lastVersionTime = 0;

/**
 * A new version id: the time in milliseconds (base 36, fixed width, so ids sort by time) and a random
 * suffix.
 *
 * @returns e.g. `0mh3k2x1a-5f3c9e`.
 */
export function newAdapterVersion(): string {
  lastVersionTime = Math.max(Date.now(), lastVersionTime + 1); // strictly increasing in this process
  const time = lastVersionTime.toString(36).padStart(9, "0");
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(16).padStart(8, "0");
  return `${time}-${random}`;
}

/**
 * SHA-256 of bytes, as lowercase hex.
 *
 * @param bytes The bytes.
 * @returns 64 hex digits.
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Reads a version's `meta.json` (`{"created_at", "bytes", "sha256"}`) into its record.
 *
 * @param text The file's text.
 * @param where The adapter version, and where the file came from (for messages).
 * @returns The record.
 * @throws {Error} Naming `where.source` when the text is not such an object.
 */
export function parseAdapterMeta(
  text: string,
  where: { tenant: string; name: string; version: string; source: string },
): AdapterRecord {
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot parse ${where.source}: ${(e as Error).message}`);
  }
  const m = meta as Record<string, unknown>;
  if (
    typeof m !== "object" || m === null || typeof m.created_at !== "number" || typeof m.bytes !== "number" ||
    typeof m.sha256 !== "string"
  ) {
    throw new Error(
      `Cannot read ${where.source}: expected {"created_at", "bytes", "sha256"}, got ${text.trim()}`,
    );
  }
  return {
    tenant: where.tenant,
    name: where.name,
    version: where.version,
    createdAt: m.created_at,
    bytes: m.bytes,
    sha256: m.sha256,
  };
}

/**
 * Runs tasks of one key one after another (writes of one adapter in this process); tasks of other keys run
 * alongside.
 *
 * @example
 * ```ts
 * import { KeyedSerializer } from "./adapter_store.ts";
 * const writes = new KeyedSerializer();
 * await Promise.all([writes.run("acme/story", async () => 1), writes.run("acme/story", async () => 2)]);
 * ```
 */
export class KeyedSerializer {
  #tails = new Map<string, Promise<unknown>>();

  /**
   * Runs `fn` after the earlier tasks of `key` (whether they failed or not).
   *
   * @param key The key.
   * @param fn The task.
   * @returns What `fn` returns.
   */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    this.#tails.set(key, run);
    try {
      return await run;
    } finally {
      if (this.#tails.get(key) === run) this.#tails.delete(key);
    }
  }
}
