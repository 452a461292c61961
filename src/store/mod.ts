/**
 * Adapter stores: the {@linkcode AdapterStore} interface and its folder implementation
 * ({@linkcode FolderAdapterStore}, one folder of PEFT files per tenant).
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
