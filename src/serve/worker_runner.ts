/**
 * {@linkcode WorkerRunner}: a {@linkcode BatchRunner} in a Deno Worker (`workers/inference_worker.ts`),
 * each with its own single-threaded wasm session, so that several workers use several cores and the
 * request thread never computes. Prepared adapters travel in `SharedArrayBuffer`s (no copy), each once per
 * worker: later rows name it by its cache key (serializing an adapter's views cost the request thread ~0.2 ms
 * per submit), until the adapter cache evicts it.
 *
 * @module
 */

import type { VariantLayout } from "./variant_sessions.ts";
import type { LlamaConfig } from "../models/config.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";
import type { RowEvent, RowRequest, StepInfo } from "./runner_types.ts";

/** What the engine needs of a runner, in-process or in a worker. */
export interface Runner {
  /**
   * Queues rows with their adapter.
   *
   * @param rows The rows.
   * @param adapter Their adapter, or `null` for the base model.
   */
  submit(rows: readonly RowRequest[], adapter: PreparedAdapter | null): void;
  /**
   * Stops rows.
   *
   * @param ids Row ids.
   */
  cancel(ids: readonly number[]): void;
  /**
   * Forgets an evicted adapter's device copies.
   *
   * @param key Adapter cache key.
   */
  evict(key: string): void;
  /** Releases the sessions (and the worker). */
  close(): Promise<void>;
}

/** The worker's start message. */
export interface WorkerInit {
  type: "init";
  /** Model folder (the worker loads the weights and tokenizer from it, and builds its graph variants). */
  dir: string;
  /** Model shape (checked against the folder's). */
  config: LlamaConfig;
  /** Most rows per batch. */
  maxBatch: number;
  /** How the graph variants hold the base weights. */
  variantLayout: VariantLayout | "auto";
}

/** Messages to the worker. */
export type WorkerRequest =
  | WorkerInit
  /** Rows and their adapter: the adapter itself the first time, else its cache key (`adapterKey`). */
  | { type: "submit"; rows: RowRequest[]; adapter: PreparedAdapter | null; adapterKey?: string }
  | { type: "cancel"; ids: number[] }
  | { type: "evict"; key: string }
  | { type: "close" };

/**
 * Messages from the worker. A forward pass is one `events` message carrying the pass's figures too: a
 * message costs the worker ~0.1 ms to post (9% of its time at ~2,000 messages a second when a pass sent two).
 */
export type WorkerReply =
  | { type: "ready" }
  | { type: "events"; events: RowEvent[]; step?: StepInfo }
  | { type: "error"; message: string }
  | { type: "closed" };

/**
 * The web `Worker` constructor as the runtime provides it. onnxruntime-web's Emscripten glue replaces
 * `globalThis.Worker` with Node's `worker_threads.Worker` when its first wasm session starts, and such
 * workers have no `self` and no web messaging; capturing the constructor when this module loads (before
 * any session) keeps inference workers web workers.
 */
const WebWorker: typeof Worker | undefined = globalThis.Worker;

/**
 * Whether this runtime has web Workers (edge isolates usually do not).
 *
 * @returns True when `Worker` exists.
 */
export function hasWorkers(): boolean {
  return WebWorker !== undefined;
}

/** The worker script, `workers/inference_worker.ts`. */
export const INFERENCE_WORKER_URL: URL = new URL("../../workers/inference_worker.ts", import.meta.url);

/**
 * The local folders a worker reads its code from: Deno checks read permission for every local module a
 * worker loads (npm packages excepted), unlike the main thread's static imports.
 *
 * @returns `<project>/workers` and `<project>/src` for a local checkout, else nothing.
 */
export function workerCodeFolders(): string[] {
  if (INFERENCE_WORKER_URL.protocol !== "file:") return [];
  return [new URL("../../workers", import.meta.url), new URL("..", import.meta.url)].map((u) =>
    decodeURIComponent(u.pathname).replace(/\/$/, "")
  );
}

/**
 * Whether this process may start inference workers: Workers must exist, and Deno needs read permission
 * on the worker code ({@linkcode workerCodeFolders}); a server granted read access to its model and
 * adapters only runs in-process instead.
 *
 * @returns True when workers can start (also when permissions cannot be queried).
 */
export function canStartWorkers(): boolean {
  if (WebWorker === undefined) return false;
  try {
    return workerCodeFolders().every((path) =>
      Deno.permissions.querySync({ name: "read", path }).state === "granted"
    );
  } catch {
    return true;
  }
}

/** Options of {@linkcode WorkerRunner.create}. */
export interface WorkerRunnerOptions {
  /** The start message (model and graphs). */
  init: Omit<WorkerInit, "type">;
  /** Receives row events. */
  onEvents: (events: RowEvent[]) => void;
  /** Receives step figures. */
  onStep?: (info: StepInfo) => void;
  /** Called once if the worker dies (its rows get no more events). */
  onCrash?: (error: Error) => void;
  /**
   * The worker script.
   * @default {workers/inference_worker.ts}
   */
  url?: URL;
}

/** A batch runner in a worker. */
export class WorkerRunner implements Runner {
  #worker: Worker;
  #passes = 0;
  /** Keys of the adapters the worker holds. */
  #sent = new Set<string>();
  #adaptersSent = 0;
  #closed: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /**
   * Starts a worker and waits until its sessions are ready.
   *
   * @param options Model, graphs, sinks.
   * @returns The runner.
   * @throws {Error} When the worker fails to start or to create its sessions.
   */
  static create(options: WorkerRunnerOptions): Promise<WorkerRunner> {
    const url = options.url ?? INFERENCE_WORKER_URL;
    if (!WebWorker) throw new Error("Cannot start an inference worker: this runtime has no Worker");
    const worker = new WebWorker(url, { type: "module" });
    const runner = new WorkerRunner(worker);
    return new Promise((resolve, reject) => {
      let ready = false;
      const crash = (error: Error) => {
        if (!ready) reject(error);
        else options.onCrash?.(error);
      };
      worker.onmessage = (e: MessageEvent<WorkerReply>) => {
        const msg = e.data;
        switch (msg.type) {
          case "ready":
            ready = true;
            resolve(runner);
            break;
          case "events":
            runner.#passes++;
            if (msg.step) options.onStep?.(msg.step);
            options.onEvents(msg.events);
            break;
          case "error":
            crash(new Error(`Inference worker failed: ${msg.message}`));
            if (!ready) worker.terminate();
            break;
          case "closed":
            runner.#onClosed?.();
            break;
        }
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        crash(new Error(`Inference worker crashed: ${e.message}`));
        worker.terminate();
        runner.#onClosed?.();
      };
      runner.#post({ type: "init", ...options.init });
    });
  }

  /** `events` messages received from the worker (one per forward pass, and one per batch of cancellations). */
  get messages(): number {
    return this.#passes;
  }

  /** Adapters posted to the worker (each once until evicted; rows name the ones it holds by key). */
  get adaptersSent(): number {
    return this.#adaptersSent;
  }

  submit(rows: readonly RowRequest[], adapter: PreparedAdapter | null): void {
    if (adapter && this.#sent.has(adapter.key)) {
      this.#post({ type: "submit", rows: [...rows], adapter: null, adapterKey: adapter.key });
      return;
    }
    if (adapter) {
      this.#sent.add(adapter.key);
      this.#adaptersSent++;
    }
    this.#post({ type: "submit", rows: [...rows], adapter });
  }

  cancel(ids: readonly number[]): void {
    this.#post({ type: "cancel", ids: [...ids] });
  }

  evict(key: string): void {
    this.#sent.delete(key);
    this.#post({ type: "evict", key });
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      const finish = () => {
        this.#onClosed = undefined;
        clearTimeout(timer);
        this.#worker.terminate();
        resolve();
      };
      const timer = setTimeout(finish, 10_000);
      this.#onClosed = finish;
      this.#post({ type: "close" });
    });
    return this.#closed;
  }

  #post(message: WorkerRequest): void {
    this.#worker.postMessage(message);
  }
}
