/**
 * {@linkcode BatchRunner}: continuous batching of many requests, each with its own adapter, over one
 * prefill and one decode session of the serving graphs (`bank_graph.ts`).
 *
 * Rows join between decode steps: new rows are prefilled together (a mixed-adapter pass), then their
 * caches are merged into the running batch; finished rows leave, and the cache is narrowed to the
 * longest remaining row. Every row keeps its own positions, attention mask, sampler and stop strings, so
 * it gets the same tokens in a batch as alone (greedy), whatever its neighbours' adapters.
 *
 * Cache surgery happens on the host. On wasm the cache is on the host anyway; on WebGPU the cache stays
 * on the GPU between steps and is downloaded only when rows join, or when at least half of the rows have
 * finished. Adapter banks are fed as host tensors on wasm and as GPU buffers on WebGPU (uploaded once per
 * set of adapters, kept in a byte-bounded LRU).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { LlamaConfig } from "../models/config.ts";
import { kvCacheNames } from "../models/llama_inference.ts";
import { listAdapterSites } from "../models/sites.ts";
import type { Model } from "../onnx/types.ts";
import type { ExecutionProvider, ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { OnnxSession, type OrtTensor } from "../runtime/session.ts";
import { disposeTensors, hostTensor } from "../runtime/tensor.ts";
import { LORA_INDEX_INPUT } from "./bank_graph.ts";
import { bankArrays, composeSlots, type Composition } from "./_bank.ts";
import { uploadFloat32 } from "./_device.ts";
import { type HostCache, pickRows, rightAlignedMask, type RowPick } from "./_kv.ts";
import { Row, type RunnerTokenizer } from "./_row.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";
import type { RowEvent, RowRequest, StepInfo } from "./runner_types.ts";

export type { RunnerTokenizer } from "./_row.ts";

/** Options of {@linkcode BatchRunner.create}. */
export interface BatchRunnerOptions {
  /** The prefill graph (a model, or its ONNX bytes). */
  prefill: Model | Uint8Array;
  /** The decode graph. */
  decode: Model | Uint8Array;
  /** The base model's shape. */
  config: LlamaConfig;
  /** Tokenizer (EOS ids, incremental text, token strings). */
  tokenizer: RunnerTokenizer;
  /**
   * Execution provider.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /**
   * Most rows in one batch.
   * @default {8}
   */
  maxBatch?: number;
  /**
   * Budget of adapter banks kept on the GPU (WebGPU only), bytes.
   * @default {64 MiB}
   */
  deviceBankBytes?: number;
  /** Receives the events of each step (one call per forward pass). */
  onEvents: (events: RowEvent[]) => void;
  /** Receives the figures of each forward pass. */
  onStep?: (info: StepInfo) => void;
}

interface DeviceBank {
  feeds: Record<string, OrtTensor>;
  bytes: number;
}

/**
 * Runs rows of many requests in shared forward passes.
 *
 * @example
 * ```ts ignore
 * const graphs = buildServingGraphs(model);
 * const runner = await BatchRunner.create({ ...graphs, config, tokenizer, ep: "wasm", onEvents: console.log });
 * runner.submit([{ id: 1, promptIds: [1], maxTokens: 8, seed: 0, stop: [] }], null);
 * ```
 */
export class BatchRunner {
  /** The provider both sessions run on. */
  readonly ep: ExecutionProvider;
  /** Most rows in one batch. */
  readonly maxBatch: number;
  #prefill: OnnxSession;
  #decode: OnnxSession;
  #config: LlamaConfig;
  #tokenizer: RunnerTokenizer;
  #eosIds: number[];
  #sites;
  #options: BatchRunnerOptions;
  #pending: Row[] = [];
  #active: Row[] = [];
  #cache: OrtTensor[] = []; // [key0, value0, key1, value1, …] of the active rows, right-aligned
  #width = 0;
  #loop: Promise<void> | undefined;
  #closed = false;
  #hostBank: { key: string; feeds: Record<string, OrtTensor> } | undefined;
  #deviceBanks = new Map<string, DeviceBank>();
  #deviceBankBytes = 0;
  #evicted = new Set<string>();

  private constructor(options: BatchRunnerOptions, prefill: OnnxSession, decode: OnnxSession) {
    this.#options = options;
    this.#prefill = prefill;
    this.#decode = decode;
    this.ep = decode.ep;
    this.maxBatch = options.maxBatch ?? 8;
    this.#config = options.config;
    this.#tokenizer = options.tokenizer;
    this.#eosIds = [...new Set([...options.tokenizer.eosIds, ...options.config.eosTokenIds])];
    this.#sites = listAdapterSites(options.config);
  }

  /**
   * Creates both sessions.
   *
   * @param options Graphs, model, tokenizer, provider, limits and the event sink.
   * @returns The runner, idle.
   * @throws {Error} When onnxruntime rejects a graph.
   */
  static async create(options: BatchRunnerOptions): Promise<BatchRunner> {
    const maxBatch = options.maxBatch ?? 8;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`Invalid max batch ${maxBatch}: it must be a positive integer`);
    }
    const keepOnDevice: string[] = [];
    for (let l = 0; l < options.config.numHiddenLayers; l++) {
      const n = kvCacheNames(l);
      keepOnDevice.push(n.key, n.value);
    }
    const prefill = await OnnxSession.create(options.prefill, {
      ep: options.ep ?? "auto",
      keepOnDevice,
      label: "serving prefill graph",
    });
    try {
      const decode = await OnnxSession.create(options.decode, {
        ep: prefill.ep,
        keepOnDevice,
        label: "serving decode graph",
      });
      return new BatchRunner(options, prefill, decode);
    } catch (e) {
      await prefill.release();
      throw e;
    }
  }

  /** Rows waiting or running. */
  get load(): number {
    return this.#pending.length + this.#active.filter((r) => !r.done).length;
  }

  /**
   * Queues rows; they join the running batch at the next step. Their events go to `onEvents`.
   *
   * @param rows The rows (ids unique among live rows).
   * @param adapter Their adapter, or `null` for the base model.
   * @throws {Error} When the runner is closed, or a prompt is empty or does not fit the context.
   */
  submit(rows: readonly RowRequest[], adapter: PreparedAdapter | null): void {
    if (this.#closed) throw new Error("Cannot submit rows: the batch runner is closed");
    const context = this.#config.maxPositionEmbeddings;
    for (const request of rows) {
      const n = request.promptIds.length;
      if (n === 0 || n >= context) {
        throw new RangeError(
          `Cannot submit row ${request.id}: its prompt has ${n} tokens, expected 1 to ${context - 1}`,
        );
      }
    }
    for (const request of rows) {
      this.#pending.push(
        new Row(request, adapter, { tokenizer: this.#tokenizer, eosIds: this.#eosIds, context }),
      );
    }
    this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
  }

  /**
   * Stops rows (waiting or running); each gets a final `cancelled` event unless it already ended.
   *
   * @param ids Row ids.
   */
  cancel(ids: readonly number[]): void {
    const wanted = new Set(ids);
    const events: RowEvent[] = [];
    this.#pending = this.#pending.filter((row) => {
      if (!wanted.has(row.request.id)) return true;
      events.push({ id: row.request.id, text: "", finishReason: "cancelled" });
      return false;
    });
    for (const row of this.#active) {
      if (wanted.has(row.request.id) && !row.done) {
        row.done = true;
        events.push({ id: row.request.id, text: "", finishReason: "cancelled" });
      }
    }
    if (events.length) this.#options.onEvents(events);
  }

  /**
   * Forgets the GPU copies of an adapter (after the adapter cache evicted it); freed at the next step.
   *
   * @param key The adapter's cache key.
   */
  evict(key: string): void {
    this.#evicted.add(key);
  }

  /** Cancels every row, waits for the current step, and releases the sessions and GPU buffers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.cancel([...this.#pending, ...this.#active].map((r) => r.request.id));
    this.#closed = true;
    await this.#loop;
    this.#dropCache();
    for (const bank of this.#deviceBanks.values()) disposeTensors(Object.values(bank.feeds));
    this.#deviceBanks.clear();
    await Promise.all([this.#prefill.release(), this.#decode.release()]);
  }

  async #run(): Promise<void> {
    while (!this.#closed && (this.#pending.length > 0 || this.#active.length > 0)) {
      this.#freeEvicted();
      let admitting: Row[] = [];
      try {
        if (this.#pending.length > 0 && this.#active.length < this.maxBatch) {
          admitting = this.#pending.splice(0, this.maxBatch - this.#active.length);
          await this.#admit(admitting);
          admitting = [];
        }
        await this.#compact();
        if (this.#active.length > 0) await this.#decodeStep();
      } catch (e) {
        this.#fail([...admitting, ...this.#active], e as Error);
      }
      // let request handlers and messages run between steps (setTimeout(0) would cost 1–4 ms a step:
      // nested timers are clamped)
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (this.#closed) this.#dropCache();
  }

  /** Prefills new rows together, samples their first tokens and merges their caches into the batch. */
  async #admit(rows: Row[]): Promise<void> {
    const started = performance.now();
    const width = Math.max(...rows.map((r) => r.len));
    const ids = new BigInt64Array(rows.length * width);
    const positions = new BigInt64Array(rows.length * width);
    rows.forEach((row, r) => {
      const pad = width - row.len;
      row.request.promptIds.forEach((id, t) => {
        ids[r * width + pad + t] = BigInt(id);
        positions[r * width + pad + t] = BigInt(t);
      });
    });
    const comp = composeSlots(rows.map((r) => r.adapter));
    const out = await this.#prefill.run({
      input_ids: hostTensor(ids, [rows.length, width]),
      position_ids: hostTensor(positions, [rows.length, width]),
      attention_mask: hostTensor(rightAlignedMask(rows.map((r) => r.len), width), [rows.length, width]),
      ...(await this.#bankFeeds(comp)),
    });
    let kept = false;
    try {
      const logits = (await out.logits.getData()) as Float32Array;
      const vocab = this.#config.vocabSize;
      const events = rows.map((row, r) => row.step(logits.subarray(r * vocab, (r + 1) * vocab)));
      this.#options.onStep?.({
        kind: "prefill",
        rows: rows.length,
        slots: comp.slots.length,
        width,
        ms: performance.now() - started,
      });
      this.#options.onEvents(events);
      const present = this.#cacheOf(out);
      if (this.#active.length === 0 && rows.every((r) => !r.done)) {
        this.#active = rows;
        this.#cache = present;
        this.#width = width;
        kept = true;
        return;
      }
      if (rows.every((r) => r.done)) return;
      const sources = [{ tensors: present, width }];
      const picks: RowPick[] = [];
      const next: Row[] = [];
      if (this.#active.length > 0) {
        sources.push({ tensors: this.#cache, width: this.#width });
        this.#active.forEach((row, r) => {
          if (!row.done) {
            picks.push({ source: 1, row: r });
            next.push(row);
          }
        });
      }
      rows.forEach((row, r) => {
        if (!row.done) {
          picks.push({ source: 0, row: r });
          next.push(row);
        }
      });
      kept = true; // the rebuild disposes the sources
      await this.#rebuildCache(sources, picks, next);
    } finally {
      if (!kept) disposeTensors(Object.values(out));
      else disposeTensors([out.logits]);
    }
  }

  /** Drops finished rows from the batch (on WebGPU only once half of the rows have finished). */
  async #compact(): Promise<void> {
    const done = this.#active.filter((r) => r.done).length;
    if (done === 0) return;
    if (done === this.#active.length) {
      this.#dropCache();
      this.#active = [];
      return;
    }
    if (this.ep === "webgpu" && done * 2 < this.#active.length) return;
    const picks: RowPick[] = [];
    const next: Row[] = [];
    this.#active.forEach((row, r) => {
      if (!row.done) {
        picks.push({ source: 0, row: r });
        next.push(row);
      }
    });
    await this.#rebuildCache([{ tensors: this.#cache, width: this.#width }], picks, next);
  }

  /** Replaces the cache with the picked rows of the sources, narrowed to the longest row. */
  async #rebuildCache(
    sources: { tensors: OrtTensor[]; width: number }[],
    picks: RowPick[],
    rows: Row[],
  ): Promise<void> {
    const { numKeyValueHeads: heads, headDim } = this.#config;
    const width = Math.max(...rows.map((r) => r.len));
    const hostSources: HostCache[][] = await Promise.all(
      sources.map(async (s) =>
        await Promise.all(s.tensors.map(async (t) => ({
          data: (await t.getData()) as Float32Array,
          batch: t.dims[0],
          width: s.width,
        })))
      ),
    );
    const cache = hostSources[0].map((_, i) => {
      const merged = pickRows(hostSources.map((h) => h[i]), picks, { heads, headDim, width });
      return hostTensor(merged.data, [merged.batch, heads, width, headDim]);
    });
    for (const s of sources) disposeTensors(s.tensors);
    this.#cache = cache;
    this.#width = width;
    this.#active = rows;
  }

  /** One decode step for every active row. */
  async #decodeStep(): Promise<void> {
    const started = performance.now();
    const rows = this.#active;
    const batch = rows.length;
    const width = this.#width + 1;
    const comp = composeSlots(rows.map((r) => r.adapter));
    const feeds: Record<string, OrtTensor> = {
      input_ids: hostTensor(BigInt64Array.from(rows, (r) => BigInt(r.lastToken)), [batch, 1]),
      position_ids: hostTensor(BigInt64Array.from(rows, (r) => BigInt(r.len)), [batch, 1]),
      attention_mask: hostTensor(rightAlignedMask(rows.map((r) => r.len + 1), width), [batch, width]),
      ...(await this.#bankFeeds(comp)),
    };
    for (let l = 0; l < this.#config.numHiddenLayers; l++) {
      const n = kvCacheNames(l);
      feeds[n.pastKey] = this.#cache[2 * l];
      feeds[n.pastValue] = this.#cache[2 * l + 1];
    }
    const out = await this.#decode.run(feeds);
    disposeTensors(this.#cache);
    this.#cache = this.#cacheOf(out);
    this.#width = width;
    for (const row of rows) row.len++;
    const logits = (await out.logits.getData()) as Float32Array;
    disposeTensors([out.logits]);
    const vocab = this.#config.vocabSize;
    const events: RowEvent[] = [];
    rows.forEach((row, r) => {
      if (!row.done) events.push(row.step(logits.subarray(r * vocab, (r + 1) * vocab)));
    });
    this.#options.onStep?.({
      kind: "decode",
      rows: batch,
      slots: comp.slots.length,
      width,
      ms: performance.now() - started,
    });
    this.#options.onEvents(events);
  }

  #cacheOf(out: Record<string, OrtTensor>): OrtTensor[] {
    const cache: OrtTensor[] = [];
    for (let l = 0; l < this.#config.numHiddenLayers; l++) {
      const n = kvCacheNames(l);
      cache.push(out[n.key], out[n.value]);
    }
    return cache;
  }

  #dropCache(): void {
    disposeTensors(this.#cache);
    this.#cache = [];
    this.#width = 0;
  }

  /** Ends rows after a failed pass with an `error` event, and resets the batch. */
  #fail(rows: Row[], error: Error): void {
    const events: RowEvent[] = [];
    for (const row of rows) {
      if (row.done) continue;
      row.done = true;
      events.push({ id: row.request.id, text: "", finishReason: "error", error: error.message });
    }
    this.#dropCache();
    this.#active = [];
    if (events.length) this.#options.onEvents(events);
  }

  /** The bank inputs and row index of a composition (host tensors on wasm, GPU buffers on WebGPU). */
  async #bankFeeds(comp: Composition): Promise<Record<string, OrtTensor>> {
    const index = {
      [LORA_INDEX_INPUT]: hostTensor(BigInt64Array.from(comp.index, BigInt), [comp.index.length]),
    };
    if (this.ep === "wasm") {
      if (this.#hostBank?.key !== comp.key) {
        const feeds: Record<string, OrtTensor> = {};
        for (const a of bankArrays(comp.slots, this.#sites)) feeds[a.name] = hostTensor(a.data, a.dims);
        this.#hostBank = { key: comp.key, feeds };
      }
      return { ...this.#hostBank.feeds, ...index };
    }
    let bank = this.#deviceBanks.get(comp.key);
    if (bank) {
      this.#deviceBanks.delete(comp.key); // most recently used last
    } else {
      const feeds: Record<string, OrtTensor> = {};
      let bytes = 0;
      for (const a of bankArrays(comp.slots, this.#sites)) {
        feeds[a.name] = await uploadFloat32(a.data, a.dims);
        bytes += a.data.byteLength;
      }
      bank = { feeds, bytes };
      this.#deviceBankBytes += bytes;
      const budget = this.#options.deviceBankBytes ?? 64 * 2 ** 20;
      for (const [key, old] of this.#deviceBanks) {
        if (this.#deviceBankBytes <= budget) break;
        this.#dropDeviceBank(key, old);
      }
    }
    this.#deviceBanks.set(comp.key, bank);
    return { ...bank.feeds, ...index };
  }

  #dropDeviceBank(key: string, bank: DeviceBank): void {
    disposeTensors(Object.values(bank.feeds));
    this.#deviceBankBytes -= bank.bytes;
    this.#deviceBanks.delete(key);
  }

  /** Frees GPU banks that use an evicted adapter (between steps, when no pass uses them). */
  #freeEvicted(): void {
    if (this.#evicted.size === 0) return;
    for (const [key, bank] of [...this.#deviceBanks]) {
      if (key.split("\n").some((k) => this.#evicted.has(k))) this.#dropDeviceBank(key, bank);
    }
    if (this.#hostBank && this.#hostBank.key.split("\n").some((k) => this.#evicted.has(k))) {
      this.#hostBank = undefined;
    }
    this.#evicted.clear();
  }
}
