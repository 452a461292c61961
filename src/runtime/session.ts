/**
 * {@linkcode OnnxSession}: an onnxruntime-web inference session on a chosen execution provider, with
 * outputs that can stay on the GPU and be fed back as inputs without a host round trip.
 *
 * @module
 */

import { ort } from "./ort.ts";
import { encodeModel } from "../onnx/proto.ts";
import type { Model } from "../onnx/types.ts";
import {
  type ExecutionProvider,
  type ExecutionProviderChoice,
  resolveExecutionProvider,
} from "./execution_provider.ts";

/** A tensor as onnxruntime-web holds it (CPU data or a GPU buffer). */
export type OrtTensor = ort.Tensor;

/** Options for {@linkcode OnnxSession.create}. */
export interface CreateSessionOptions {
  /**
   * Execution provider: `auto` picks WebGPU when an adapter exists, else wasm.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /**
   * Outputs that stay on the GPU (`gpu-buffer`) on WebGPU: `true` for all, or a list of names. Ignored on
   * wasm, where every output is a CPU tensor.
   * @default {false}
   */
  keepOnDevice?: boolean | string[];
  /** External data files the model refers to, by their recorded location. */
  externalData?: Record<string, Uint8Array>;
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
}

let liveSessions = 0;

/**
 * Number of sessions created and not yet released (for leak tests and diagnostics).
 *
 * @returns The count of live sessions in this process.
 */
export function liveSessionCount(): number {
  return liveSessions;
}

/** Configures the wasm backend once, before the first session (`WEIGHTLORA_WASM_THREADS` overrides). */
function configureWasm(): void {
  const env = ort.env.wasm;
  if ((configureWasm as { done?: boolean }).done) return;
  (configureWasm as { done?: boolean }).done = true;
  let threads: string | undefined;
  try {
    threads = Deno.env.get("WEIGHTLORA_WASM_THREADS");
  } catch {
    threads = undefined; // no env permission: keep onnxruntime's default
  }
  if (threads !== undefined) {
    const n = Number(threads);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`WEIGHTLORA_WASM_THREADS must be a positive integer, got "${threads}"`);
    }
    env.numThreads = n;
  }
}

/**
 * A model loaded on one execution provider.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "../onnx/builder.ts";
 * import { OnnxSession } from "./session.ts";
 * import { ort } from "./ort.ts";
 * const b = new GraphBuilder("neg");
 * b.output(b.neg(b.input("x", "float32", [2])), "y");
 * const session = await OnnxSession.create(b.toModel(), { ep: "wasm" });
 * const { y } = await session.run({ x: new ort.Tensor("float32", new Float32Array([1, 2]), [2]) });
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
  #session: ort.InferenceSession | undefined;

  private constructor(session: ort.InferenceSession, ep: ExecutionProvider) {
    this.#session = session;
    this.ep = ep;
    this.inputNames = session.inputNames;
    this.outputNames = session.outputNames;
  }

  /**
   * Creates a session from a model or encoded ONNX bytes.
   *
   * @param model The model (encoded here) or ONNX protobuf bytes.
   * @param options Execution provider and output placement.
   * @returns The session; {@linkcode OnnxSession.ep} says where it runs.
   * @throws {Error} When onnxruntime rejects the model (the message is onnxruntime's, prefixed).
   */
  static async create(model: Model | Uint8Array, options: CreateSessionOptions = {}): Promise<OnnxSession> {
    configureWasm();
    const ep = await resolveExecutionProvider(options.ep ?? "auto");
    let bytes: Uint8Array;
    let externalData = options.externalData;
    if (model instanceof Uint8Array) bytes = model;
    else {
      const encoded = encodeModel(model, { externalDataThreshold: undefined });
      bytes = encoded.model;
      if (encoded.externalData) {
        externalData = { ...externalData, [encoded.externalDataLocation!]: encoded.externalData };
      }
    }
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
      logSeverityLevel: options.logSeverityLevel ?? 3,
    };
    if (externalData) {
      sessionOptions.externalData = Object.entries(externalData).map(([path, data]) => ({ path, data }));
    }
    if (ep === "webgpu" && options.keepOnDevice) {
      sessionOptions.preferredOutputLocation = options.keepOnDevice === true
        ? "gpu-buffer"
        : Object.fromEntries(options.keepOnDevice.map((name) => [name, "gpu-buffer" as const]));
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (error) {
      const name = model instanceof Uint8Array ? "model" : `model "${model.graph.name}"`;
      throw new Error(
        `Cannot create an onnxruntime session (${ep}) for ${name}: ${(error as Error).message ?? error}`,
        {
          cause: error,
        },
      );
    }
    liveSessions++;
    return new OnnxSession(session, ep);
  }

  /**
   * Runs the model.
   *
   * @param feeds Input tensors by name (CPU tensors, or GPU tensors from a previous run on WebGPU).
   * @param fetches Output names to compute (all when omitted).
   * @returns Output tensors by name; GPU-resident ones must be disposed by the caller when done.
   * @throws {Error} When the session was released or onnxruntime fails.
   */
  async run(
    feeds: Record<string, OrtTensor>,
    fetches?: readonly string[],
  ): Promise<Record<string, OrtTensor>> {
    const session = this.#session;
    if (!session) throw new Error("Cannot run a released session");
    return fetches ? await session.run(feeds, fetches as string[]) : await session.run(feeds);
  }

  /** Whether {@linkcode OnnxSession.release} has been called. */
  get released(): boolean {
    return this.#session === undefined;
  }

  /** Frees the session (its wasm memory and GPU buffers). Safe to call twice. */
  async release(): Promise<void> {
    const session = this.#session;
    if (!session) return;
    this.#session = undefined;
    liveSessions--;
    await session.release();
  }
}
