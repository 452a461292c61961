/**
 * {@linkcode ServeEngine}: one resident base model serving many tenants. It builds the serving graphs
 * once, runs them in one or more batch runners (Deno Workers on wasm, so every core computes; in-process
 * on WebGPU and where Workers do not exist), resolves tenants' adapters through the adapter store and a
 * byte-bounded cache, and routes rows of concurrent requests into shared, mixed-adapter forward passes.
 *
 * @module
 */

import type { VariantLayout } from "./variant_sessions.ts";
import { loadModelFolder, type ModelFolder } from "../io/model_folder.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { LlamaConfig } from "../models/config.ts";
import {
  type ExecutionProvider,
  type ExecutionProviderChoice,
  resolveExecutionProvider,
} from "../runtime/execution_provider.ts";
import { type AdapterRecord, type AdapterStore, AdapterVersionGoneError } from "../store/adapter_store.ts";
import { AdapterCache, adapterKey } from "./adapter_cache.ts";
import { AdapterValidator } from "./adapter_validator.ts";
import { BatchRunner } from "./batch_runner.ts";
import { FairQueue } from "./fair_queue.ts";
import { preloadOrtWasm } from "./ort_wasm.ts";
import { parseAdapterFiles, prepareAdapter, type PreparedAdapter } from "./prepared_adapter.ts";
import type { RowEvent, RowRequest, StepInfo } from "./runner_types.ts";
import {
  canStartWorkers,
  hasWorkers,
  type Runner,
  workerCodeFolders,
  WorkerRunner,
} from "./worker_runner.ts";

/** Options of {@linkcode ServeEngine.create}. */
export interface ServeEngineOptions {
  /** A loaded model folder, or its path. */
  model: string | ModelFolder;
  /** Where tenants' adapters are stored. */
  store: AdapterStore;
  /**
   * Execution provider.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /**
   * Inference workers on wasm (0 runs in-process). WebGPU always runs in-process.
   * @default {min(2, navigator.hardwareConcurrency); 0 where Workers do not exist}
   */
  workers?: number;
  /**
   * Most rows in one forward pass, per runner.
   * @default {8}
   */
  maxBatch?: number;
  /**
   * How each runner's graph variants (one per set of adapted sites) hold the base weights (see
   * `variant_sessions.ts`): `auto` shares one copy on wasm for bases of 16 MiB and more (the `gated` graph),
   * and keeps one session per variant for smaller ones and on WebGPU.
   * @default {"auto"}
   */
  variantLayout?: VariantLayout | "auto";
  /**
   * Byte budget of the prepared-adapter cache.
   * @default {256 MiB}
   */
  cacheBytes?: number;
  /**
   * Most rows waiting for a runner; beyond it {@linkcode ServeEngine.generate} throws
   * {@linkcode EngineBusyError}.
   * @default {256}
   */
  maxQueuedRows?: number;
  /**
   * Most rows of one tenant running at once over all runners; its other rows wait their turn, so that
   * another tenant's request always finds a seat without waiting for long streams to end. Waiting rows
   * are handed out fairly across tenants, by tokens (prompt + most new tokens), not by arrival. A tenant's
   * rows go to the runners that already run its rows, so with the default the other runners stay free for
   * other tenants, whose rows then do not share every step with its long streams.
   * @default {(runners − 1) × maxBatch with two runners or more; ¾ of maxBatch (at least 1) with one}
   */
  maxRowsPerTenant?: number;
  /**
   * The most rows (waiting or running) a tenant may have; beyond it {@linkcode ServeEngine.generate}
   * throws {@linkcode TenantRowQuotaError}. `undefined` means no quota for that tenant.
   */
  tenantRowQuota?: (tenant: string) => number | undefined;
  /** Receives the figures of every forward pass (for metrics). */
  onStep?: (info: StepInfo) => void;
}

/** One row of a {@linkcode GenerationJob} (the engine assigns ids). */
export type JobRow = Omit<RowRequest, "id">;

/**
 * A model a request may use, as resolved by {@linkcode ServeEngine.resolveModel}: the base model, or a
 * stored version of one of the tenant's adapters. It names the version; the engine keeps the tensors.
 */
export interface ModelRef {
  /** The tenant that asked. */
  tenant: string;
  /** The model name as asked (the base model's id or an adapter name). */
  name: string;
  /** The adapter's stored version, or `null` for the base model. */
  record: AdapterRecord | null;
}

/** A request's rows, all on the same model. */
export interface GenerationJob {
  /** Rows (prompts × choices). */
  rows: JobRow[];
  /** The model (see {@linkcode ServeEngine.resolveModel}). */
  model: ModelRef;
  /** Cancels the rows still running. */
  signal?: AbortSignal;
}

/** An event of one row of a job. */
export interface JobEvent extends RowEvent {
  /** Index of the row in {@linkcode GenerationJob.rows}. */
  row: number;
}

/** Thrown when too many rows wait (the caller should answer 503 or retry later). */
export class EngineBusyError extends Error {
  /** @param message Why. */
  constructor(message: string) {
    super(message);
    this.name = "EngineBusyError";
  }
}

/** Thrown when a job has more rows than the queue can ever hold (a bad request, not a busy server). */
export class JobTooLargeError extends RangeError {
  /** @param message Why. */
  constructor(message: string) {
    super(message);
    this.name = "JobTooLargeError";
  }
}

/** Thrown when a tenant's rows (waiting and running) would exceed its quota (the caller should answer 429). */
export class TenantRowQuotaError extends Error {
  /** The tenant's quota of concurrent rows. */
  readonly limit: number;
  /**
   * @param message Why.
   * @param limit The quota.
   */
  constructor(message: string, limit: number) {
    super(message);
    this.name = "TenantRowQuotaError";
    this.limit = limit;
  }
}

/** Thrown by {@linkcode ServeEngine.resolveModel} when the tenant has no model of that name. */
export class ModelNotFoundError extends Error {
  /** @param message Why. */
  constructor(message: string) {
    super(message);
    this.name = "ModelNotFoundError";
  }
}

/** Thrown by {@linkcode ServeEngine.generate} after {@linkcode ServeEngine.close} began. */
export class EngineClosedError extends Error {
  /** @param message Why. */
  constructor(message: string) {
    super(message);
    this.name = "EngineClosedError";
  }
}

interface Slot {
  runner: Runner;
  outstanding: Set<number>;
  /** Rows of each tenant on this runner. */
  tenants: Map<string, number>;
}

interface Registration {
  row: number;
  tenant: string;
  deliver: (events: JobEvent[]) => void;
}

interface QueuedJob {
  tenant: string;
  /** When the job was queued (`performance.now()`). */
  queuedAt: number;
  adapter: PreparedAdapter | null;
  /** The adapter is resolved: the job's rows may run. */
  ready: boolean;
}

/** One waiting row. */
interface QueuedRow {
  job: QueuedJob;
  request: RowRequest;
}

/** Where requests wait before their rows compute: {@linkcode ServeEngine.waits}. */
export interface EngineWaits {
  /** {@linkcode ServeEngine.resolveModel} calls that named an adapter. */
  resolves: number;
  /** Seconds in them (the store's lookup, and loading and preparing the adapter on a cache miss). */
  resolveSeconds: number;
  /** Rows handed to a runner. */
  rows: number;
  /** Seconds those rows waited between {@linkcode ServeEngine.generate} and their runner. */
  queueSeconds: number;
}

/** An adapter resolved for a request: the stored version and its prepared tensors. */
export interface ResolvedAdapter {
  /** The stored version. */
  record: AdapterRecord;
  /** Its tensors (kept alive by the request). */
  adapter: PreparedAdapter;
}

/**
 * Serves one base model to many tenants.
 *
 * @example
 * ```ts ignore
 * import { ServeEngine } from "./engine.ts";
 * import { FolderAdapterStore } from "../store/folder_adapter_store.ts";
 * const engine = await ServeEngine.create({ model: "models/stories260K", store: new FolderAdapterStore("adapters") });
 * const model = await engine.resolveModel("acme", "story");
 * for await (const events of engine.generate({ rows: [{ promptIds: [1], maxTokens: 16, seed: 0, stop: [] }], model })) {
 *   console.log(events.map((e) => e.text).join(""));
 * }
 * await engine.close();
 * ```
 */
export class ServeEngine {
  /** The base model's id (its folder name). */
  readonly modelId: string;
  /** The base model's shape. */
  readonly config: LlamaConfig;
  /** The tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The model's chat template, when it has one. */
  readonly chatTemplate: string | undefined;
  /** The provider the sessions run on. */
  readonly ep: ExecutionProvider;
  /** Number of runners (workers, or 1 in-process). */
  readonly runnerCount: number;
  /** Most rows per forward pass, per runner. */
  readonly maxBatch: number;
  /** The adapter store. */
  readonly store: AdapterStore;
  /** The prepared-adapter cache. */
  readonly cache: AdapterCache;
  /** Checks uploaded adapters against the model off the request thread (its worker stops with the engine). */
  readonly validator: AdapterValidator;
  #slots: Slot[] = [];
  #queue = new FairQueue<QueuedRow>((q) => q.request.promptIds.length + q.request.maxTokens);
  #registrations = new Map<number, Registration>();
  /** Rows handed to runners, by tenant. */
  #running = new Map<string, number>();
  /** The tenant of each row handed to a runner. */
  #rowTenant = new Map<number, { tenant: string; slot: Slot }>();
  /** Rows waiting or running, by tenant. */
  #live = new Map<string, number>();
  #maxRowsPerTenant: number;
  #tenantRowQuota: ((tenant: string) => number | undefined) | undefined;
  #nextId = 1;
  #maxQueuedRows: number;
  #closing = false;
  #spawn: (() => Promise<void>) | undefined;
  #idle: (() => void) | undefined;
  #waits: EngineWaits = { resolves: 0, resolveSeconds: 0, rows: 0, queueSeconds: 0 };

  private constructor(
    model: ModelFolder,
    options: ServeEngineOptions,
    setup: { ep: ExecutionProvider; shared: boolean; runnerCount: number },
  ) {
    this.modelId = model.id;
    this.config = model.config;
    this.tokenizer = model.tokenizer;
    this.chatTemplate = model.chatTemplate;
    this.ep = setup.ep;
    this.runnerCount = setup.runnerCount;
    this.maxBatch = options.maxBatch ?? 8;
    this.store = options.store;
    this.#maxQueuedRows = options.maxQueuedRows ?? 256;
    this.#maxRowsPerTenant = options.maxRowsPerTenant ??
      (setup.runnerCount >= 2
        ? (setup.runnerCount - 1) * this.maxBatch
        : Math.max(1, Math.floor(0.75 * this.maxBatch)));
    if (!Number.isInteger(this.#maxRowsPerTenant) || this.#maxRowsPerTenant < 1) {
      throw new RangeError(
        `Invalid max rows per tenant ${this.#maxRowsPerTenant}: it must be a positive integer`,
      );
    }
    this.#tenantRowQuota = options.tenantRowQuota;
    this.validator = new AdapterValidator(model.config);
    this.cache = new AdapterCache({
      maxBytes: options.cacheBytes ?? 256 * 2 ** 20,
      load: (record) => this.#load(record, setup.shared),
      onEvict: (key) => {
        for (const slot of this.#slots) slot.runner.evict(key);
      },
    });
  }

  /**
   * Loads the model, builds the serving graphs and starts the runners.
   *
   * @param options Model, store, provider, workers, limits.
   * @returns The engine, ready.
   * @throws {Error} When the model cannot be loaded or a session cannot be created.
   */
  static async create(options: ServeEngineOptions): Promise<ServeEngine> {
    const model = typeof options.model === "string" ? await loadModelFolder(options.model) : options.model;
    const ep = await resolveExecutionProvider(options.ep ?? "auto");
    await preloadOrtWasm(ep);
    const workers = ep === "wasm" ? (options.workers ?? defaultWorkers()) : 0;
    if (!Number.isInteger(workers) || workers < 0) {
      throw new RangeError(`Invalid worker count ${workers}: it must be an integer ≥ 0`);
    }
    const code = workerCodeFolders().join(",");
    if (workers > 0 && !canStartWorkers()) {
      throw new Error(
        `Cannot start ${workers} inference workers: Deno needs read permission on their code ` +
          `(add ${code} to --allow-read, or use --workers 0)`,
      );
    }
    if (ep === "wasm" && options.workers === undefined && workers === 0 && hasWorkers()) {
      console.warn(
        `Warning: running inference in-process on one core: no read permission on the inference workers' code ` +
          `(add ${code} to --allow-read to use every core)`,
      );
    }
    const engine = new ServeEngine(model, options, {
      ep,
      shared: workers > 0,
      runnerCount: Math.max(1, workers),
    });
    const variantLayout = options.variantLayout ?? "auto";
    const maxBatch = engine.maxBatch;
    const onEvents = (slot: () => Slot) => (events: RowEvent[]) => engine.#deliver(slot(), events);
    try {
      if (workers === 0) {
        const slot: Slot = {
          runner: undefined as unknown as Runner,
          outstanding: new Set(),
          tenants: new Map(),
        };
        slot.runner = await BatchRunner.create({
          model,
          tokenizer: model.tokenizer,
          ep,
          maxBatch,
          variantLayout,
          deviceBankBytes: engine.cache.maxBytes,
          onEvents: onEvents(() => slot),
          onStep: options.onStep,
        });
        engine.#slots.push(slot);
      } else {
        const init = {
          dir: model.dir,
          config: model.config,
          maxBatch,
          variantLayout,
        };
        engine.#spawn = async () => {
          const slot: Slot = {
            runner: undefined as unknown as Runner,
            outstanding: new Set(),
            tenants: new Map(),
          };
          slot.runner = await WorkerRunner.create({
            init,
            onEvents: onEvents(() => slot),
            onStep: options.onStep,
            onCrash: (error) => engine.#crashed(slot, error),
          });
          engine.#slots.push(slot);
          engine.#pump();
        };
        await Promise.all(Array.from({ length: workers }, () => engine.#spawn!()));
      }
    } catch (e) {
      await Promise.all(engine.#slots.map((s) => s.runner.close()));
      throw e;
    }
    return engine;
  }

  /** Rows running or waiting. */
  get activeRows(): number {
    return this.#registrations.size;
  }

  /** Where requests waited so far (resolving adapters, queued rows): a snapshot of the counters. */
  get waits(): EngineWaits {
    return { ...this.#waits };
  }

  /**
   * Resolves a tenant's adapter to its current version and prepared tensors (cached).
   *
   * @param tenant Tenant id.
   * @param name Adapter name.
   * @returns The adapter, or `undefined` when the tenant has none of that name.
   * @throws {InvalidAdapterError} When the stored files do not fit the model.
   */
  async adapter(tenant: string, name: string): Promise<ResolvedAdapter | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const record = await this.store.get(tenant, name);
      if (!record) return undefined;
      try {
        return { record, adapter: await this.cache.get(record) };
      } catch (e) {
        if (!(e instanceof AdapterVersionGoneError)) throw e;
      }
    }
    throw new Error(
      `Cannot load adapter "${name}" of tenant "${tenant}": it changed three times while loading`,
    );
  }

  /**
   * Resolves the model a tenant asks for: the base model's id, or the name of one of its adapters (whose
   * current version is loaded into the cache, so that a broken stored adapter fails here).
   *
   * @param tenant Tenant id.
   * @param model The base model's id or an adapter name.
   * @returns The model reference to pass to {@linkcode ServeEngine.generate}.
   * @throws {ModelNotFoundError} When the tenant has no such model.
   * @throws {InvalidAdapterError} When the stored files do not fit the model.
   */
  async resolveModel(tenant: string, model: string): Promise<ModelRef> {
    if (model === this.modelId) return { tenant, name: model, record: null };
    const started = performance.now();
    let resolved: ResolvedAdapter | undefined;
    try {
      resolved = await this.adapter(tenant, model);
    } finally {
      this.#waits.resolves++;
      this.#waits.resolveSeconds += (performance.now() - started) / 1000;
    }
    if (!resolved) {
      throw new ModelNotFoundError(`The model "${model}" does not exist or you do not have access to it`);
    }
    return { tenant, name: model, record: resolved.record };
  }

  /** The prepared tensors of a model reference (the version it names, or the current one if that is gone). */
  async #prepared(model: ModelRef): Promise<PreparedAdapter | null> {
    if (!model.record) return null;
    try {
      return await this.cache.get(model.record);
    } catch (e) {
      if (!(e instanceof AdapterVersionGoneError)) throw e;
    }
    const current = await this.adapter(model.tenant, model.name);
    if (!current) throw new ModelNotFoundError(`The model "${model.name}" was deleted`);
    return current.adapter;
  }

  /**
   * Starts the rows of a job and returns their events as each forward pass produces them. Ending the
   * iteration early (or aborting `signal`) cancels the rows still running; iterate the result to the end
   * or call its `return()`.
   *
   * @param job Rows, adapter and abort signal.
   * @returns Batches of events; every row's last event has `finishReason`.
   * @throws {EngineBusyError} When too many rows wait.
   * @throws {JobTooLargeError} When the job alone has more rows than the queue holds.
   * @throws {EngineClosedError} When the engine is shutting down.
   */
  generate(job: GenerationJob): AsyncGenerator<JobEvent[]> {
    if (this.#closing) throw new EngineClosedError("Cannot generate: the server is shutting down");
    if (job.rows.length > this.#maxQueuedRows) {
      throw new JobTooLargeError(
        `Cannot generate ${job.rows.length} rows in one request: the server holds at most ${this.#maxQueuedRows}`,
      );
    }
    const tenant = job.model.tenant;
    const quota = this.#tenantRowQuota?.(tenant);
    const live = this.#live.get(tenant) ?? 0;
    if (quota !== undefined && live + job.rows.length > quota) {
      throw new TenantRowQuotaError(
        `Quota concurrent_rows exceeded for tenant "${tenant}": it has ${live} rows waiting or running and ` +
          `asked for ${job.rows.length} more, the quota is ${quota}`,
        quota,
      );
    }
    const queued = this.#queue.size;
    if (queued + job.rows.length > this.#maxQueuedRows) {
      throw new EngineBusyError(
        `Cannot generate: ${queued} rows are already waiting (limit ${this.#maxQueuedRows}); retry later`,
      );
    }
    const requests = job.rows.map((row) => ({ ...row, id: this.#nextId++ }));
    const inbox: JobEvent[][] = [];
    const state: { wake?: () => void } = {};
    requests.forEach((request, row) => {
      this.#registrations.set(request.id, {
        row,
        tenant,
        deliver: (events) => {
          inbox.push(events);
          state.wake?.();
        },
      });
    });
    this.#live.set(tenant, live + requests.length);
    const entry: QueuedJob = { tenant, queuedAt: performance.now(), adapter: null, ready: false };
    for (const request of requests) this.#queue.push(tenant, { job: entry, request });
    return this.#stream(entry, requests, job.model, inbox, state, job.signal);
  }

  async *#stream(
    queued: QueuedJob,
    requests: RowRequest[],
    model: ModelRef,
    inbox: JobEvent[][],
    state: { wake?: () => void },
    signal: AbortSignal | undefined,
  ): AsyncGenerator<JobEvent[]> {
    const remaining = new Set(requests.map((r) => r.id));
    const onAbort = () => this.#cancel([...remaining]);
    signal?.addEventListener("abort", onAbort);
    try {
      try {
        queued.adapter = await this.#prepared(model);
      } catch (e) {
        this.#queue.remove((q) => q.job === queued);
        throw e;
      }
      queued.ready = true;
      this.#pump();
      if (signal?.aborted) onAbort();
      while (remaining.size > 0) {
        if (inbox.length === 0) await new Promise<void>((resolve) => (state.wake = resolve));
        state.wake = undefined;
        const events = inbox.splice(0).flat();
        for (const e of events) if (e.finishReason) remaining.delete(e.id);
        yield events;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (remaining.size > 0) this.#cancel([...remaining]);
      for (const r of requests) this.#registrations.delete(r.id);
      const left = (this.#live.get(queued.tenant) ?? 0) - requests.length;
      if (left > 0) this.#live.set(queued.tenant, left);
      else this.#live.delete(queued.tenant);
      this.#checkIdle();
    }
  }

  /**
   * Stops accepting work, lets running rows finish (up to `graceMs`), cancels the rest and releases
   * the runners.
   *
   * @param graceMs How long to wait for running rows.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.#closing = true;
    if (this.#registrations.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#idle = undefined;
    this.#cancel([...this.#registrations.keys()]);
    await Promise.all(this.#slots.map((s) => s.runner.close()));
    this.validator.close();
    this.cache.clear();
  }

  #checkIdle(): void {
    if (this.#registrations.size === 0) this.#idle?.();
  }

  async #load(record: AdapterRecord, shared: boolean): Promise<PreparedAdapter> {
    const files = await this.store.read(record);
    const peft = parseAdapterFiles(files, { model: this.config, source: record.name });
    return prepareAdapter(peft, { key: adapterKey(record), shared });
  }

  /**
   * Hands waiting rows, one seat at a time, to the least-loaded runners that have room: the row comes
   * from the tenant given the least work so far, among those under their share of the runners.
   */
  #pump(): void {
    const ready = (q: QueuedRow) => q.job.ready; // rows still resolving their adapter wait
    const eligible = (tenant: string) => (this.#running.get(tenant) ?? 0) < this.#maxRowsPerTenant;
    const batches = new Map<Slot, Map<QueuedJob, RowRequest[]>>();
    while (this.#slots.some((slot) => slot.outstanding.size < this.maxBatch)) {
      const next = this.#queue.take({ ready, eligible });
      if (!next) break;
      const { job, request } = next;
      this.#waits.rows++;
      this.#waits.queueSeconds += (performance.now() - job.queuedAt) / 1000;
      const slot = this.#slotFor(job.tenant);
      slot.outstanding.add(request.id);
      slot.tenants.set(job.tenant, (slot.tenants.get(job.tenant) ?? 0) + 1);
      this.#running.set(job.tenant, (this.#running.get(job.tenant) ?? 0) + 1);
      this.#rowTenant.set(request.id, { tenant: job.tenant, slot });
      const byJob = batches.get(slot) ?? new Map<QueuedJob, RowRequest[]>();
      byJob.set(job, [...(byJob.get(job) ?? []), request]);
      batches.set(slot, byJob);
    }
    for (const [slot, byJob] of batches) {
      for (const [job, rows] of byJob) slot.runner.submit(rows, job.adapter);
    }
  }

  /**
   * The runner a tenant's next row goes to: one that already runs this tenant's rows, if it has room (a
   * busy tenant's rows stay together, so the other runners stay free for other tenants: their rows do not
   * share every step with its long streams); else the runner with the fewest rows.
   */
  #slotFor(tenant: string): Slot {
    let best: Slot | undefined;
    let bestOwn = 0;
    for (const slot of this.#slots) {
      if (slot.outstanding.size >= this.maxBatch) continue;
      const own = slot.tenants.get(tenant) ?? 0;
      if (
        !best || own > bestOwn ||
        (own === bestOwn && slot.outstanding.size < best.outstanding.size)
      ) {
        best = slot;
        bestOwn = own;
      }
    }
    return best!;
  }

  /** A row left its runner. */
  #left(id: number): void {
    const placed = this.#rowTenant.get(id);
    if (placed === undefined) return;
    this.#rowTenant.delete(id);
    const { tenant, slot } = placed;
    const onSlot = (slot.tenants.get(tenant) ?? 1) - 1;
    if (onSlot > 0) slot.tenants.set(tenant, onSlot);
    else slot.tenants.delete(tenant);
    const left = (this.#running.get(tenant) ?? 1) - 1;
    if (left > 0) this.#running.set(tenant, left);
    else this.#running.delete(tenant);
  }

  #deliver(slot: Slot, events: RowEvent[]): void {
    const byJob = new Map<Registration, JobEvent[]>();
    let freed = false;
    for (const e of events) {
      if (e.finishReason && slot.outstanding.delete(e.id)) {
        freed = true;
        this.#left(e.id);
      }
      const reg = this.#registrations.get(e.id);
      if (!reg) continue;
      const list = byJob.get(reg) ?? [];
      list.push({ ...e, row: reg.row });
      byJob.set(reg, list);
    }
    for (const [reg, list] of byJob) reg.deliver(list);
    if (freed) this.#pump();
  }

  #cancel(ids: number[]): void {
    if (ids.length === 0) return;
    const wanted = new Set(ids);
    for (const { request: r } of this.#queue.remove((q) => wanted.has(q.request.id))) {
      const reg = this.#registrations.get(r.id);
      reg?.deliver([{ id: r.id, row: reg.row, text: "", finishReason: "cancelled" }]);
    }
    for (const slot of this.#slots) {
      const mine = ids.filter((id) => slot.outstanding.has(id));
      if (mine.length > 0) slot.runner.cancel(mine);
    }
  }

  /** A worker died: its rows fail, and a new worker takes its place. */
  #crashed(slot: Slot, error: Error): void {
    const events: RowEvent[] = [...slot.outstanding].map((id) => ({
      id,
      text: "",
      finishReason: "error",
      error: error.message,
    }));
    this.#slots = this.#slots.filter((s) => s !== slot); // before delivering: no new rows go to it
    this.#deliver(slot, events);
    slot.outstanding.clear();
    console.error(`${error.message}; starting a new inference worker`);
    if (!this.#closing && this.#spawn) {
      this.#spawn().catch((e) =>
        console.error(`Cannot restart an inference worker: ${(e as Error).message}`)
      );
    }
    this.#pump();
  }
}

/** Two workers where two cores exist (the measured sweet spot); none where Workers do not exist. */
function defaultWorkers(): number {
  if (!canStartWorkers()) return 0;
  return Math.max(1, Math.min(2, navigator.hardwareConcurrency ?? 1));
}
