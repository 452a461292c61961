/**
 * {@linkcode OnnxSession}: an onnxruntime-web inference session on a chosen execution provider, with
 * outputs that can stay on the GPU and be fed back as inputs without a host round trip.
 *
 * @module
 */

import { ort, ortWebGpu } from "./ort.ts";
import { encodeModel } from "../onnx/proto.ts";
import type { Model } from "../onnx/types.ts";
import {
  type ExecutionProvider,
  type ExecutionProviderChoice,
  resolveExecutionProvider,
} from "./execution_provider.ts";
import {
  deviceTensorTotal,
  sessionClosing,
  sessionOpened,
  sessionTotal,
  trackDeviceTensor,
} from "./_live.ts";
import { withFullWasmHeap } from "./_wasm_heap.ts";

/** A tensor as onnxruntime-web holds it (CPU data or a GPU buffer). */
export type OrtTensor = ort.Tensor;

/** Options for {@linkcode OnnxSession.create}. */
export interface CreateSessionOptions {
  /**
   * Execution provider: `auto` picks WebGPU when a hardware adapter exists, else wasm.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /**
   * Outputs that stay on the GPU (`gpu-buffer`) on WebGPU: `true` for all, or a list of names. Ignored on
   * wasm, where every output is a CPU tensor. Zero-sized outputs always come back as CPU tensors.
   * @default {false}
   */
  keepOnDevice?: boolean | string[];
  /** External data files the model refers to, by their recorded location. */
  externalData?: Record<string, Uint8Array>;
  /**
   * A model given as a graph whose initializers total more than this many bytes is handed to onnxruntime
   * with its initializers as ONNX external data, one file per initializer viewing its bytes (protobuf caps
   * one message at 2 GB, so a larger base model cannot be one buffer; and onnxruntime-web copies external
   * data straight into its tensors, so the weights are not also copied into a protobuf in both JS and
   * wasm memory: serving sessions use 0).
   * @default {1 GiB}
   */
  externalDataAbove?: number;
  /**
   * Graph optimisation level passed to onnxruntime.
   * @default {"all"}
   */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /**
   * onnxruntime's log severity (0 verbose … 4 fatal); verbose logs show node placement on WebGPU.
   * @default {3}
   */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /**
   * onnxruntime session configuration entries (`session.disable_prepacking`: "1", …).
   * @default {}
   */
  config?: Record<string, string>;
  /**
   * Name used in error messages when the model is given as bytes (a file path, say).
   * @default {"model"}
   */
  label?: string;
}

/** `{"session.disable_prepacking": "1"}` → `{session: {disable_prepacking: "1"}}` (onnxruntime-web's `extra`). */
function nestConfig(config: Record<string, string>): Record<string, unknown> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of Object.entries(config)) {
    const [head, ...rest] = key.split(".");
    (out[head] ??= {})[rest.join(".")] = value;
  }
  return out;
}

/**
 * Number of sessions created and not yet released (for leak tests and diagnostics).
 *
 * @returns The count of live sessions in this process.
 */
export function liveSessionCount(): number {
  return sessionTotal();
}

/**
 * Number of GPU-resident tensors returned by {@linkcode OnnxSession.run} and not yet disposed.
 *
 * @returns The count of live device tensors in this process.
 */
export function liveDeviceTensorCount(): number {
  return deviceTensorTotal();
}

/**
 * The model with each initializer of 1 KiB and more (raw bytes) referring to an external file of its own,
 * and those files as views of the initializers' bytes: onnxruntime copies each straight into its tensor,
 * so neither a protobuf holding the weights nor a concatenated blob is made (small constants stay inline).
 */
function externalViews(model: Model): { model: Model; files: Record<string, Uint8Array> } {
  const files: Record<string, Uint8Array> = {};
  const initializers = model.graph.initializers.map((tensor, i) => {
    const raw = tensor.dtype !== "string" && (tensor.storage ?? "raw_data") === "raw_data";
    if (tensor.external || !raw || tensor.data.byteLength < 1024) return tensor;
    const location = `initializer_${i}.bin`;
    files[location] = tensor.data;
    return {
      ...tensor,
      data: new Uint8Array(0),
      external: { location, offset: 0, length: tensor.data.byteLength },
    };
  });
  return { model: { ...model, graph: { ...model.graph, initializers } }, files };
}

let wasmConfigured = false;

/** Configures the wasm backends once, before the first session (`WEIGHTLORA_WASM_THREADS` overrides). */
function configureWasm(): void {
  if (wasmConfigured) return;
  let threads: string | undefined;
  try {
    threads = Deno.env.get("WEIGHTLORA_WASM_THREADS");
  } catch {
    threads = undefined; // no env permission: keep onnxruntime's default (one thread in Deno)
  }
  if (threads !== undefined) {
    const n = Number(threads);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`WEIGHTLORA_WASM_THREADS must be a positive integer, got "${threads}"`);
    }
    ort.env.wasm.numThreads = n;
  }
  // The WebGPU build cannot start wasm threads in Deno (see ort.ts); its CPU fallback kernels run on one.
  ortWebGpu.env.wasm.numThreads = 1;
  wasmConfigured = true;
}

function shape(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/**
 * A model loaded on one execution provider.
 *
 * GPU-resident outputs remain valid after their session is released as long as another WebGPU session
 * is alive (to carry state into a rebuilt graph, create the new session before releasing the old one).
 * Releasing the last WebGPU session disposes the GPU tensors still alive, since onnxruntime destroys its
 * device then.
 *
 * Known onnxruntime-web 1.30 behaviour: a released WebGPU session's initializer buffers stay allocated
 * while another WebGPU session is alive (freed with the device when the last one is released); tensors
 * fed as inputs are not affected. Rebuilding a graph with large initializers many times next to a
 * long-lived session therefore grows GPU memory.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "../onnx/builder.ts";
 * import { OnnxSession } from "./session.ts";
 * import { hostTensor } from "./tensor.ts";
 * const b = new GraphBuilder("neg");
 * b.output(b.neg(b.input("x", "float32", [2])), "y");
 * const session = await OnnxSession.create(b.toModel(), { ep: "wasm" });
 * const { y } = await session.run({ x: hostTensor(new Float32Array([1, 2]), [2]) });
 * console.assert((await y.getData())[1] === -2);
 * await session.release();
 * ```
 */
export class OnnxSession {
  /** The provider the session runs on. */
  readonly ep: ExecutionProvider;
  /** Graph input names. */
  readonly inputNames: readonly string[];
  /** Graph output names. */
  readonly outputNames: readonly string[];
  /** How errors name the model: `model "<graph name>"`, or the `label` option for bytes. */
  readonly label: string;
  #session: ort.InferenceSession | undefined;

  private constructor(session: ort.InferenceSession, ep: ExecutionProvider, label: string) {
    this.#session = session;
    this.ep = ep;
    this.label = label;
    this.inputNames = session.inputNames;
    this.outputNames = session.outputNames;
  }

  /**
   * Creates a session from a model or encoded ONNX bytes.
   *
   * @param model The model (encoded here) or ONNX protobuf bytes.
   * @param options Execution provider and output placement.
   * @returns The session; {@linkcode OnnxSession.ep} says where it runs.
   * @throws {Error} When onnxruntime rejects the model (the message is onnxruntime's, prefixed), when
   * `keepOnDevice` names an output the model lacks, or when `webgpu` is asked for without an adapter.
   */
  static async create(model: Model | Uint8Array, options: CreateSessionOptions = {}): Promise<OnnxSession> {
    configureWasm();
    const ep = await resolveExecutionProvider(options.ep ?? "auto");
    const label = model instanceof Uint8Array ? (options.label ?? "model") : `model "${model.graph.name}"`;
    let bytes: Uint8Array;
    let externalData = options.externalData;
    if (model instanceof Uint8Array) bytes = model;
    else {
      const weightBytes = model.graph.initializers.reduce((n, t) => n + t.data.byteLength, 0);
      if (weightBytes > (options.externalDataAbove ?? 2 ** 30)) {
        const views = externalViews(model);
        bytes = encodeModel(views.model).model;
        externalData = { ...externalData, ...views.files };
      } else bytes = encodeModel(model).model;
    }
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
      logSeverityLevel: options.logSeverityLevel ?? 3,
    };
    if (options.config) {
      sessionOptions.extra = {
        ...(sessionOptions.extra as object | undefined),
        ...nestConfig(options.config),
      };
    }
    if (externalData) {
      sessionOptions.externalData = Object.entries(externalData).map(([path, data]) => ({ path, data }));
    }
    const keep = options.keepOnDevice;
    if (ep === "webgpu" && keep) {
      sessionOptions.preferredOutputLocation = keep === true
        ? "gpu-buffer"
        : Object.fromEntries(keep.map((name) => [name, "gpu-buffer" as const]));
    }
    const runtime = ep === "webgpu" ? ortWebGpu : ort;
    let session: ort.InferenceSession;
    try {
      const createSession = () => runtime.InferenceSession.create(bytes, sessionOptions);
      // with wasm threads, a heap that grows during a run can kill a pool thread and hang the run
      // (_wasm_heap.ts): the first wasm session creates the heap at its full size
      session = ep === "wasm" && ort.env.wasm.numThreads! > 1
        ? await withFullWasmHeap(createSession)
        : await createSession();
    } catch (error) {
      throw new Error(
        `Cannot create an onnxruntime session (${ep}) for ${label}: ${(error as Error).message ?? error}`,
        { cause: error },
      );
    }
    sessionOpened(ep);
    const created = new OnnxSession(session, ep, label);
    if (Array.isArray(keep)) {
      const unknown = keep.filter((name) => !session.outputNames.includes(name));
      if (unknown.length > 0) {
        await created.release();
        throw new Error(
          `Cannot create a session for ${label}: keepOnDevice names unknown output "${unknown[0]}" ` +
            `(outputs: ${session.outputNames.join(", ")})`,
        );
      }
    }
    return created;
  }

  /**
   * Runs the model.
   *
   * @param feeds Input tensors by name (CPU tensors, or GPU tensors from a previous run on WebGPU).
   * @param fetches Output names to compute (all when omitted).
   * @returns Output tensors by name; GPU-resident ones must be disposed by the caller when done
   * (`disposeTensors`), or fed back as inputs.
   * @throws {Error} When the session was released, a GPU tensor is fed to a wasm session, or onnxruntime
   * fails (its message, prefixed with the model and provider).
   */
  async run(
    feeds: Record<string, OrtTensor>,
    fetches?: readonly string[],
  ): Promise<Record<string, OrtTensor>> {
    const session = this.#session;
    if (!session) throw new Error(`Cannot run ${this.label}: the session was released`);
    if (this.ep === "wasm") {
      for (const [name, tensor] of Object.entries(feeds)) {
        if (tensor.location !== "cpu") {
          throw new Error(
            `Cannot run ${this.label} on wasm: input "${name}" is a ${tensor.location} tensor, ` +
              "not a CPU tensor (copy it with toHost first)",
          );
        }
      }
    }
    let outputs: Record<string, OrtTensor>;
    try {
      outputs = fetches ? await session.run(feeds, fetches as string[]) : await session.run(feeds);
    } catch (error) {
      throw new Error(
        `Cannot run ${this.label} on ${this.ep}: ${(error as Error).message ?? error}${this.#hint(feeds)}`,
        { cause: error },
      );
    }
    if (this.ep === "webgpu") {
      for (const tensor of Object.values(outputs)) {
        if (tensor.location === "gpu-buffer") trackDeviceTensor(tensor);
      }
    }
    return outputs;
  }

  /** A hint for a failed run: zero-sized inputs are the known cause of WebGPU bind-group errors. */
  #hint(feeds: Record<string, OrtTensor>): string {
    if (this.ep !== "webgpu") return "";
    const empty = Object.entries(feeds).find(([, tensor]) => tensor.dims.includes(0));
    if (!empty) return "";
    return ` (input "${empty[0]}" has the zero-sized shape ${shape(empty[1].dims)}, which onnxruntime's ` +
      "WebGPU kernels do not support: give absent tensors a non-zero size, e.g. rank-1 zeros)";
  }

  /** Whether {@linkcode OnnxSession.release} has been called. */
  get released(): boolean {
    return this.#session === undefined;
  }

  /**
   * Frees the session (its wasm memory and GPU buffers). Safe to call twice. Releasing the last WebGPU
   * session also disposes the GPU tensors still alive.
   */
  async release(): Promise<void> {
    const session = this.#session;
    if (!session) return;
    this.#session = undefined;
    sessionClosing(this.ep);
    await session.release();
  }
}
