/**
 * {@linkcode FolderAdapterStore}: adapters as PEFT files in a folder per tenant, the default store and
 * the read-only mode of edge replicas (the folder ships with the deployment).
 *
 *     <root>/<tenant>/<name>/CURRENT                              the current version id
 *     <root>/<tenant>/<name>/<version>/adapter_config.json
 *     <root>/<tenant>/<name>/<version>/adapter_model.safetensors
 *     <root>/<tenant>/<name>/<version>/meta.json                 {created_at, bytes, sha256}
 *
 * A version folder is written under a temporary name and renamed into place, then `CURRENT` is replaced
 * by a rename, so readers see the old version or the new one. Older versions are removed after the
 * switch; a reader that resolved one just before gets {@linkcode AdapterVersionGoneError} and resolves
 * again. Deleting removes `CURRENT` first, which makes the adapter disappear at once.
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

/** Options of {@linkcode FolderAdapterStore}. */
export interface FolderAdapterStoreOptions {
  /**
   * Refuse writes (no write permission is needed then).
   * @default {false}
   */
  readOnly?: boolean;
}

const CONFIG_FILE = "adapter_config.json";
const WEIGHTS_FILE = "adapter_model.safetensors";
const META_FILE = "meta.json";
const CURRENT_FILE = "CURRENT";

/**
 * A folder of PEFT adapters, one sub-folder per tenant.
 *
 * @example
 * ```ts ignore
 * import { FolderAdapterStore } from "./folder_adapter_store.ts";
 * const store = new FolderAdapterStore("adapters");
 * const { record } = await store.put("acme", "story", { config, weights });
 * console.log((await store.list("acme")).map((r) => r.name), record.version);
 * ```
 */
export class FolderAdapterStore implements AdapterStore {
  /** The root folder. */
  readonly root: string;
  /** Whether writes are refused. */
  readonly readOnly: boolean;
  #writes = new KeyedSerializer();

  /**
   * Opens a store; nothing is read or created until used.
   *
   * @param root The root folder (created on the first write).
   * @param options Read-only mode.
   */
  constructor(root: string, options: FolderAdapterStoreOptions = {}) {
    this.root = root.replace(/\/+$/, "") || "/";
    this.readOnly = options.readOnly ?? false;
  }

  /**
   * Removes what interrupted writes left behind (a kill between writing a version under its temporary
   * name and renaming it): `<tenant>/<name>/.tmp-*` folders and `.CURRENT.tmp-*` files older than
   * `minAgeMs` (younger ones may belong to a writer in another process). Servers call it at start-up.
   *
   * @param minAgeMs Only entries last modified at least this long ago.
   * @returns The paths removed.
   */
  async sweepTemporary(minAgeMs = 10 * 60_000): Promise<string[]> {
    this.#writable("sweep temporary files");
    const removed: string[] = [];
    const entries = async (dir: string): Promise<Deno.DirEntry[]> => {
      try {
        return await Array.fromAsync(Deno.readDir(dir));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
        throw e;
      }
    };
    const now = Date.now();
    for (const tenant of await entries(this.root)) {
      if (!tenant.isDirectory || tenant.name.startsWith(".")) continue;
      for (const adapter of await entries(`${this.root}/${tenant.name}`)) {
        if (!adapter.isDirectory) continue;
        const dir = `${this.root}/${tenant.name}/${adapter.name}`;
        for (const entry of await entries(dir)) {
          if (!entry.name.startsWith(".tmp-") && !entry.name.startsWith(`.${CURRENT_FILE}.tmp-`)) continue;
          const path = `${dir}/${entry.name}`;
          const info = await Deno.lstat(path).catch(() => undefined);
          if (!info || now - (info.mtime?.getTime() ?? now) < minAgeMs) continue;
          await Deno.remove(path, { recursive: true }).catch(() => {});
          removed.push(path);
        }
      }
    }
    return removed;
  }

  /**
   * The tenants that have a folder here (sorted; a tenant folder may hold no adapter).
   *
   * @returns Tenant ids.
   */
  async tenants(): Promise<string[]> {
    const tenants: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.root)) {
        if (!entry.isDirectory || entry.name.startsWith(".")) continue;
        try {
          validateStoreName("tenant", entry.name);
          tenants.push(entry.name);
        } catch {
          // not a tenant folder
        }
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw new Error(`Cannot list the tenants in ${this.root}: ${(e as Error).message}`);
    }
    return tenants.sort();
  }

  async list(tenant: string): Promise<AdapterRecord[]> {
    validateStoreName("tenant", tenant);
    const dir = `${this.root}/${tenant}`;
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isDirectory && !entry.name.startsWith(".")) names.push(entry.name);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw new Error(`Cannot list adapters of tenant "${tenant}" in ${dir}: ${(e as Error).message}`);
    }
    names.sort();
    const records: AdapterRecord[] = [];
    for (const name of names) {
      let record: AdapterRecord | undefined;
      try {
        validateStoreName("adapter name", name);
        record = await this.get(tenant, name);
      } catch {
        continue; // a foreign or half-deleted folder is not an adapter
      }
      if (record) records.push(record);
    }
    return records;
  }

  async get(tenant: string, name: string): Promise<AdapterRecord | undefined> {
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    const dir = this.#adapterDir(tenant, name);
    for (let attempt = 0; attempt < 3; attempt++) {
      let version: string;
      try {
        version = (await Deno.readTextFile(`${dir}/${CURRENT_FILE}`)).trim();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw new Error(`Cannot read ${dir}/${CURRENT_FILE}: ${(e as Error).message}`);
      }
      const metaPath = `${dir}/${version}/${META_FILE}`;
      let text: string;
      try {
        text = await Deno.readTextFile(metaPath);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // replaced between the two reads: resolve again
        throw new Error(`Cannot read ${metaPath}: ${(e as Error).message}`);
      }
      return parseAdapterMeta(text, { tenant, name, version, source: metaPath });
    }
    return undefined;
  }

  async read(record: AdapterRecord): Promise<AdapterFiles> {
    const dir = `${this.#adapterDir(record.tenant, record.name)}/${record.version}`;
    try {
      const [config, weights] = await Promise.all([
        Deno.readFile(`${dir}/${CONFIG_FILE}`),
        Deno.readFile(`${dir}/${WEIGHTS_FILE}`),
      ]);
      return { config, weights };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new AdapterVersionGoneError(
          `Cannot read adapter "${record.name}" of tenant "${record.tenant}": version ${record.version} ` +
            "no longer exists (it was replaced or deleted)",
        );
      }
      throw new Error(`Cannot read adapter files in ${dir}: ${(e as Error).message}`);
    }
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
      const dir = this.#adapterDir(tenant, name);
      try {
        await Deno.remove(`${dir}/${CURRENT_FILE}`);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return false;
        throw new Error(`Cannot delete adapter "${name}" in ${dir}: ${(e as Error).message}`);
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return true;
    });
  }

  async #put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult> {
    const dir = this.#adapterDir(tenant, name);
    const previous = await this.get(tenant, name);
    const version = newAdapterVersion();
    const record: AdapterRecord = {
      tenant,
      name,
      version,
      createdAt: Math.floor(Date.now() / 1000),
      bytes: files.config.byteLength + files.weights.byteLength,
      sha256: await sha256Hex(files.weights),
    };
    const tmp = `${dir}/.tmp-${version}`;
    try {
      await Deno.mkdir(tmp, { recursive: true });
      await Deno.writeFile(`${tmp}/${CONFIG_FILE}`, files.config);
      await Deno.writeFile(`${tmp}/${WEIGHTS_FILE}`, files.weights);
      const meta = { created_at: record.createdAt, bytes: record.bytes, sha256: record.sha256 };
      await Deno.writeTextFile(`${tmp}/${META_FILE}`, JSON.stringify(meta) + "\n");
      await Deno.rename(tmp, `${dir}/${version}`);
      const currentTmp = `${dir}/.${CURRENT_FILE}.tmp-${version}`;
      await Deno.writeTextFile(currentTmp, version + "\n");
      await Deno.rename(currentTmp, `${dir}/${CURRENT_FILE}`);
    } catch (e) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw new Error(
        `Cannot store adapter "${name}" of tenant "${tenant}" in ${dir}: ${(e as Error).message}`,
      );
    }
    // older versions go; a newer one (from a concurrent writer in another process) stays
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && !entry.name.startsWith(".") && entry.name < version) {
        await Deno.remove(`${dir}/${entry.name}`, { recursive: true }).catch(() => {});
      }
    }
    return { record, replaced: previous !== undefined };
  }

  #adapterDir(tenant: string, name: string): string {
    return `${this.root}/${tenant}/${name}`;
  }

  #writable(action: string): void {
    if (this.readOnly) {
      throw new ReadOnlyStoreError(`Cannot ${action}: the adapter store ${this.root} is read-only`);
    }
  }
}
