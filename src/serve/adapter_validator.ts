/**
 * {@linkcode AdapterValidator}: checks uploaded adapters against the base model in a Deno Worker
 * (`workers/adapter_validation_worker.ts`), so that parsing tens of megabytes of safetensors never
 * blocks the server's request thread. The worker reads the staged weights file itself; one worker serves
 * the uploads one after another, and one that takes longer than the time limit is stopped (the upload is
 * refused, the worker replaced), so no upload can hold the queue. Where Workers cannot start, it validates
 * in-process.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import { InvalidAdapterError, parseAdapterFiles } from "./prepared_adapter.ts";
import { canStartWorkers } from "./worker_runner.ts";

/** A request to the worker. */
export interface ValidateRequest {
  /** Matches the result. */
  id: number;
  /** `adapter_config.json`. */
  config: Uint8Array;
  /** The staged `adapter_model.safetensors`. */
  weightsPath: string;
  /** The base model's shape. */
  model: LlamaConfig;
  /** The adapter's name for messages. */
  source: string;
}

/** The worker's answer. */
export type ValidateResult =
  | { id: number; ok: true; sites: number; rank: number }
  | { id: number; ok: false; invalid: boolean; message: string };

/** What an upload adapts. */
export interface AdapterSummary {
  /** Adapted sites. */
  sites: number;
  /** The largest rank. */
  rank: number;
}

/** Captured before onnxruntime replaces `globalThis.Worker` (see worker_runner.ts). */
const WebWorker: typeof Worker | undefined = globalThis.Worker;

const WORKER_URL = new URL("../../workers/adapter_validation_worker.ts", import.meta.url);

/**
 * Validates adapters off the request thread.
 *
 * @example
 * ```ts ignore
 * const validator = new AdapterValidator(engine.config);
 * const { sites, rank } = await validator.validate({ config, weightsPath: staged.path, source: "story" });
 * validator.close();
 * ```
 */
export class AdapterValidator {
  #model: LlamaConfig;
  #worker: Worker | undefined;
  #nextId = 1;
  #pending = new Map<number, { resolve: (r: ValidateResult) => void; reject: (e: Error) => void }>();
  #queue: Promise<unknown> = Promise.resolve();
  /** Whether validation runs in a worker. */
  readonly inWorker: boolean;
  /** Most time one validation may take in the worker, ms. */
  readonly timeoutMs: number;

  /**
   * @param model The base model's shape.
   * @param options `worker: false` validates in-process; `timeoutMs` (default 20 000) bounds one validation.
   */
  constructor(model: LlamaConfig, options: { worker?: boolean; timeoutMs?: number } = {}) {
    this.#model = model;
    this.inWorker = (options.worker ?? true) && WebWorker !== undefined && canStartWorkers();
    this.timeoutMs = options.timeoutMs ?? 20_000;
  }

  /**
   * Validates an adapter whose weights are in a file.
   *
   * @param upload The config bytes, the weights file, a name for messages, and optionally this call's time
   *   limit (ms).
   * @returns What it adapts.
   * @throws {InvalidAdapterError} When it does not fit the model, or its check runs past the time limit.
   */
  async validate(
    upload: { config: Uint8Array; weightsPath: string; source: string; timeoutMs?: number },
  ): Promise<AdapterSummary> {
    if (!this.inWorker) {
      const weights = await Deno.readFile(upload.weightsPath);
      const peft = parseAdapterFiles({ config: upload.config, weights }, {
        model: this.#model,
        source: upload.source,
      });
      return { sites: peft.sites.size, rank: Math.max(...[...peft.sites.values()].map((s) => s.rank)) };
    }
    // one at a time, so that the time limit measures this upload's own work
    const turn = this.#queue.then(() => this.#run(upload));
    this.#queue = turn.catch(() => {});
    const result = await turn;
    if (result.ok) return { sites: result.sites, rank: result.rank };
    if (result.invalid) throw new InvalidAdapterError(result.message);
    throw new Error(result.message);
  }

  async #run(
    upload: { config: Uint8Array; weightsPath: string; source: string; timeoutMs?: number },
  ): Promise<ValidateResult> {
    const { timeoutMs = this.timeoutMs, ...request } = upload;
    const worker = this.#start();
    const id = this.#nextId++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise<ValidateResult>((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        timer = setTimeout(() => {
          this.#pending.delete(id);
          this.close();
          resolve({
            id,
            ok: false,
            invalid: true,
            message: `Cannot load adapter "${upload.source}": checking it took longer than ${
              timeoutMs / 1000
            } s`,
          });
        }, timeoutMs);
        worker.postMessage({ id, ...request, model: this.#model } satisfies ValidateRequest);
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the worker (a later call starts a new one). */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    for (const p of this.#pending.values()) {
      p.reject(new Error("Cannot validate the adapter: the validator closed"));
    }
    this.#pending.clear();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new WebWorker!(WORKER_URL, { type: "module" });
    worker.onmessage = (event: MessageEvent<ValidateResult>) => {
      const p = this.#pending.get(event.data.id);
      this.#pending.delete(event.data.id);
      p?.resolve(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`The adapter validation worker failed: ${event.message}`);
      this.#worker = undefined;
      worker.terminate();
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    };
    this.#worker = worker;
    return worker;
  }
}
