/**
 * Execution-provider choice: `wasm`, `webgpu`, or `auto` — WebGPU when `navigator.gpu` yields a hardware
 * adapter, else wasm. A software fallback adapter (Mesa's lavapipe on a machine without a GPU) runs our
 * graphs several times slower than wasm, so `auto` does not pick it; `webgpu` still uses it.
 *
 * `wasm` never touches WebGPU. On Linux, `auto` first looks for a GPU device node (`/dev/dri/renderD*`,
 * `/dev/nvidia*`, WSL's `/dev/dxg`): without one there is no hardware adapter to find, so it picks wasm
 * without asking `navigator.gpu` for an adapter — which would start Vulkan, load lavapipe and print Mesa's
 * `XDG_RUNTIME_DIR is invalid` lines, and take tens of milliseconds.
 *
 * @module
 */

/** An execution provider a caller may ask for. */
export type ExecutionProviderChoice = "auto" | "wasm" | "webgpu";

/** An execution provider a session actually runs on. */
export type ExecutionProvider = "wasm" | "webgpu";

/** What {@linkcode probeWebGpu} found. */
export interface WebGpuProbe {
  /** `navigator.gpu.requestAdapter()` yields an adapter. */
  available: boolean;
  /** The adapter is a software fallback (`isFallbackAdapter`, e.g. lavapipe). */
  software: boolean;
  /** The adapter's description (empty when there is none). */
  description: string;
}

let adapterProbe: Promise<WebGpuProbe> | undefined;

/**
 * Probes WebGPU once (then cached): whether an adapter exists and whether it is a software fallback.
 *
 * @returns What the probe found.
 * @example
 * ```ts
 * import { probeWebGpu } from "./execution_provider.ts";
 * const { available, software } = await probeWebGpu();
 * console.log(available ? (software ? "software WebGPU" : "GPU") : "wasm only");
 * ```
 */
export function probeWebGpu(): Promise<WebGpuProbe> {
  adapterProbe ??= (async () => {
    const none: WebGpuProbe = { available: false, software: false, description: "" };
    const gpu = (globalThis.navigator as Navigator & { gpu?: GPU }).gpu;
    if (!gpu) return none;
    try {
      const adapter = await gpu.requestAdapter();
      if (!adapter) return none;
      const info = adapter.info as (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | undefined;
      const legacy = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
      return {
        available: true,
        software: Boolean(info?.isFallbackAdapter ?? legacy),
        description: info?.description ?? "",
      };
    } catch {
      return none;
    }
  })();
  return adapterProbe;
}

/**
 * Whether a hardware GPU could exist here, told without starting WebGPU: on Linux, whether a GPU device
 * node exists. `undefined` where that cannot be told (another OS, or no read permission on `/dev`, which
 * is never prompted for).
 *
 * @returns False when no GPU device node exists, true when one does, undefined when unknown.
 * @example
 * ```ts
 * import { hasGpuDeviceNode } from "./execution_provider.ts";
 * console.log(await hasGpuDeviceNode());
 * ```
 */
export async function hasGpuDeviceNode(): Promise<boolean | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.permissions.querySync({ name: "read", path: "/dev" }).state !== "granted") return undefined;
  try {
    for await (const entry of Deno.readDir("/dev/dri")) if (entry.name.startsWith("renderD")) return true;
  } catch {
    // no /dev/dri
  }
  try {
    for await (const entry of Deno.readDir("/dev")) {
      if (/^nvidia\d+$/.test(entry.name) || entry.name === "dxg") return true;
    }
  } catch {
    return undefined;
  }
  return false;
}

/**
 * Whether this runtime exposes a WebGPU adapter, hardware or software (probed once, then cached).
 *
 * @example
 * ```ts
 * import { hasWebGpu } from "./execution_provider.ts";
 * console.log((await hasWebGpu()) ? "WebGPU available" : "wasm only");
 * ```
 *
 * @returns True when `navigator.gpu.requestAdapter()` yields an adapter.
 */
export async function hasWebGpu(): Promise<boolean> {
  return (await probeWebGpu()).available;
}

/**
 * Resolves a provider choice to the provider that will run.
 *
 * @param choice `auto`, `wasm` or `webgpu`.
 * @returns The provider to use: `auto` gives `webgpu` only for a hardware adapter.
 * @throws {Error} When `webgpu` is asked for and no adapter is available.
 * @throws {TypeError} When the choice is not one of `auto`, `wasm`, `webgpu`.
 * @example
 * ```ts
 * import { resolveExecutionProvider } from "./execution_provider.ts";
 * console.assert((await resolveExecutionProvider("wasm")) === "wasm");
 * ```
 */
export async function resolveExecutionProvider(choice: ExecutionProviderChoice): Promise<ExecutionProvider> {
  if (choice !== "auto" && choice !== "wasm" && choice !== "webgpu") {
    throw new TypeError(`Unknown execution provider "${choice}": use auto, wasm or webgpu`);
  }
  if (choice === "wasm") return "wasm";
  if (choice === "auto" && (await hasGpuDeviceNode()) === false) return "wasm"; // no GPU: no probe, no noise
  const probe = await probeWebGpu();
  if (choice === "webgpu") {
    if (!probe.available) {
      throw new Error(
        'Cannot use execution provider "webgpu": navigator.gpu yields no adapter ' +
          "(on Linux without a GPU install Debian's mesa-vulkan-drivers for lavapipe)",
      );
    }
    return "webgpu";
  }
  return probe.available && !probe.software ? "webgpu" : "wasm";
}
