/**
 * Execution-provider choice: `wasm`, `webgpu`, or `auto` — WebGPU when `navigator.gpu` yields a hardware
 * adapter, else wasm. A software fallback adapter (Mesa's lavapipe on a machine without a GPU) runs our
 * graphs several times slower than wasm, so `auto` does not pick it; `webgpu` still uses it.
 *
 * `wasm` never touches WebGPU. `auto` first looks, without starting WebGPU, for a sign of a GPU
 * ({@linkcode gpuHint}); where there is none it picks wasm without asking `navigator.gpu` for an adapter,
 * which would start Vulkan and load a software driver (measured here: ~36 ms and ~70 MB of resident memory).
 * Where it probes on Linux without a display session, it first points `WAYLAND_DISPLAY` at a path that does
 * not exist (when the environment permission allows), which keeps Mesa from printing
 * `XDG_RUNTIME_DIR is invalid or not set in the environment.` twice.
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

/** The `WAYLAND_DISPLAY` set by {@linkcode quietWebGpuProbe}: absolute, so libwayland needs no runtime dir. */
const NO_WAYLAND = "/nonexistent/weightlora-no-wayland-display";

function envPermitted(variable: string): boolean {
  return Deno.permissions.querySync({ name: "env", variable }).state === "granted";
}

/**
 * Keeps Mesa quiet when WebGPU starts on Linux without a display session: its Vulkan drivers try to reach a
 * Wayland compositor, and libwayland prints `XDG_RUNTIME_DIR is invalid or not set` when neither that
 * variable nor an absolute `WAYLAND_DISPLAY` is set. Setting `WAYLAND_DISPLAY` to an absolute path that
 * does not exist makes the attempt fail silently. It stays set (a later adapter request would print the
 * lines again), and only where both variables were unset and may be written.
 */
function quietWebGpuProbe(): void {
  if (Deno.build.os !== "linux") return;
  if (!envPermitted("WAYLAND_DISPLAY") || !envPermitted("XDG_RUNTIME_DIR")) return;
  if (Deno.env.get("XDG_RUNTIME_DIR") || Deno.env.get("WAYLAND_DISPLAY")) return;
  Deno.env.set("WAYLAND_DISPLAY", NO_WAYLAND);
}

async function listDir(path: string): Promise<string[] | "denied"> {
  try {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names;
  } catch (e) {
    return e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied ? "denied" : [];
  }
}

/** The Vulkan ICD manifest folders of the Khronos loader on Linux. */
const ICD_FOLDERS = ["/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/etc/vulkan/icd.d"];

/** ICD manifests of software Vulkan drivers (Mesa's lavapipe, SwiftShader). */
const SOFTWARE_ICD = /^(lvp_icd|swiftshader_icd|vk_swiftshader_icd)/;

/**
 * Whether a hardware GPU could be here, told without starting WebGPU. On Linux: with read access to
 * `/dev` (Deno grants it only with `--allow-all`), whether a GPU device node exists (`/dev/dri/renderD*`,
 * `/dev/nvidia*`, WSL's `/dev/dxg`); otherwise whether a Vulkan driver other than a software one is
 * installed (none, or only lavapipe: no hardware adapter can exist). Elsewhere, or when neither can be
 * read, `"maybe"`.
 *
 * @returns `"none"` when no hardware adapter can exist, else `"maybe"`.
 * @example
 * ```ts
 * import { gpuHint } from "./execution_provider.ts";
 * console.log(await gpuHint()); // "none" on a server without a GPU
 * ```
 */
export async function gpuHint(): Promise<"none" | "maybe"> {
  if (Deno.build.os !== "linux") return "maybe";
  const dev = await listDir("/dev");
  if (dev !== "denied") {
    if (dev.some((name) => /^nvidia\d+$/.test(name) || name === "dxg")) return "maybe";
    const dri = await listDir("/dev/dri");
    return dri !== "denied" && dri.some((name) => name.startsWith("renderD")) ? "maybe" : "none";
  }
  if (!envPermitted("VK_ICD_FILENAMES") || !envPermitted("VK_DRIVER_FILES")) return "maybe";
  if (Deno.env.get("VK_ICD_FILENAMES") || Deno.env.get("VK_DRIVER_FILES")) return "maybe";
  for (const folder of ICD_FOLDERS) {
    const names = await listDir(folder);
    if (names === "denied") return "maybe";
    if (names.some((name) => name.endsWith(".json") && !SOFTWARE_ICD.test(name))) return "maybe";
  }
  return "none";
}

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
    quietWebGpuProbe();
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
  if (choice === "auto" && (await gpuHint()) === "none") return "wasm"; // no GPU: no probe, no noise
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
