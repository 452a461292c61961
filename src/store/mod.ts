/**
 * Adapter stores: the {@linkcode AdapterStore} interface, its folder implementation
 * ({@linkcode FolderAdapterStore}, one folder of PEFT files per tenant), S3-compatible object storage
 * ({@linkcode S3AdapterStore}), and {@linkcode openAdapterStore}, which opens either from a location.
 *
 * @example
 * ```ts ignore
 * import { FolderAdapterStore } from "./mod.ts";
 * const store = new FolderAdapterStore("adapters", { readOnly: true });
 * console.log(await store.list("default"));
 * ```
 *
 * @module
 */

export * from "./adapter_store.ts";
export * from "./folder_adapter_store.ts";
export * from "./open_adapter_store.ts";
export * from "./s3_adapter_store.ts";
