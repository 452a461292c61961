/**
 * {@linkcode BatchRunner}: continuous batching of many requests, each with its own adapter, on the toolkit's
 * one decode path ({@linkcode BatchDecoder}) over graph variants that compute LoRA only where the batch's
 * adapters attach (`variant_graphs.ts`).
 *
 * Rows join between decode steps: new rows are prefilled together, then decoded with the running batch;
 * finished rows leave. Every row keeps its own positions, sampler and stop strings, so it gets the same
 * tokens in a batch as alone (greedy), whatever its neighbours' adapters. Each pass picks its variant — no
 * adapter: the plain graph; one adapter: its sites only; several: a bank at the union of their sites (on
 * wasm laid out per row, mode `rows`: no gathers in the graph) — and
 * the cache carries over between variants (they share its layout). Variants are built on first use and
 * kept in a small LRU, each its own session or (option `variantLayout: "shared"`) all of them branches of one
 * session over one copy of the base weights (`variant_sessions.ts`).
 *
 * On WebGPU the cache stays on the GPU between steps and is downloaded only when rows join, or when at
 * least half of the rows have finished; adapter inputs are uploaded once per composition (byte-bounded LRU).
 * Each adapter's packed tensors are built once per site set and reused by every pass it is in
 * (`slot_packs.ts`), so a pass whose batch changed copies one block per row instead of one per site.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { BatchDecoder, type DecoderSessions } from "../models/batch_decoder.ts";
import type { LlamaConfig } from "../models/config.ts";
import { Row, type RunnerTokenizer } from "../models/decode_row.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { type AdapterSite, listAdapterSites } from "../models/sites.ts";
import type { ExecutionProvider, ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { resolveExecutionProvider } from "../runtime/execution_provider.ts";
import type { OrtTensor } from "../runtime/session.ts";
import { disposeTensors, hostTensor } from "../runtime/tensor.ts";
import { uploadFloat32 } from "./_device.ts";
import { gatedArrays, LORA_GATES_INPUT } from "./gated_graph.ts";
import { ort } from "../runtime/ort.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";
import type { RowEvent, RowRequest, StepInfo } from "./runner_types.ts";
import { PackScratch, SlotPacks } from "./slot_packs.ts";
import { type BatchComposition, composeBatch, LORA_INDEX_INPUT, variantArrays } from "./variant_graphs.ts";
import {
  type SharedSessionInfo,
  type VariantInfo,
  type VariantLayout,
  VariantSessions,
} from "./variant_sessions.ts";

export type { RunnerTokenizer } from "../models/decode_row.ts";

/** Options of {@linkcode BatchRunner.create}. */
export interface BatchRunnerOptions {
  /** The base model's shape and weights (variants are built from them on first use). */
  model: { config: LlamaConfig; weights: LlamaWeights };
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
   * Most graph variants kept; the least recently used is dropped.
   * @default {8}
   */
  maxVariants?: number;
  /**
   * How variants hold the base weights: `separate` (one session and one copy of the weights per variant),
   * `shared` (one session, one copy of the weights, rebuilt when a variant is added or dropped; on wasm its
   * MatMuls lose MLAS prepacking) or `gated` (wasm: one session, one copy, every site's LoRA behind a gate;
   * never rebuilt), or `auto`: `gated` on wasm for base weights of 16 MiB and more, else `separate`. See
   * `variant_sessions.ts` for the measured trade-off.
   * @default {"separate"}
   */
  variantLayout?: VariantLayout | "auto";
  /**
   * Budget of adapter inputs kept on the GPU (WebGPU only), bytes.
   * @default {64 MiB}
   */
  deviceBankBytes?: number;
  /** Receives the events of each step (one call per forward pass). */
  onEvents: (events: RowEvent[]) => void;
  /** Receives the figures of each forward pass. */
  onStep?: (info: StepInfo) => void;
}

interface DeviceFeeds {
  feeds: Record<string, OrtTensor>;
  bytes: number;
}

/**
 * Runs rows of many requests in shared forward passes.
 *
 * @example
 * ```ts ignore
 * const runner = await BatchRunner.create({ model, tokenizer, ep: "wasm", onEvents: console.log });
 * runner.submit([{ id: 1, promptIds: [1], maxTokens: 8, seed: 0, stop: [] }], null);
 * ```
 */
export class BatchRunner {
  /** The provider the sessions run on. */
  readonly ep: ExecutionProvider;
  /** Most rows in one batch. */
  readonly maxBatch: number;
  /** Most graph variants kept. */
  readonly maxVariants: number;
  #options: BatchRunnerOptions;
  #config: LlamaConfig;
  #sites: AdapterSite[];
  #tokenizer: RunnerTokenizer;
  #eosIds: number[];
  #decoder: BatchDecoder;
  #variants: VariantSessions;
  #pending: Row<PreparedAdapter>[] = [];
  #active: Row<PreparedAdapter>[] = [];
  #loop: Promise<void> | undefined;
  #closed = false;
  #hostFeeds: { key: string; feeds: Record<string, OrtTensor> } | undefined;
  #deviceFeeds = new Map<string, DeviceFeeds>();
  #deviceFeedBytes = 0;
  #evicted = new Set<string>();
  #packs = new SlotPacks();
  /** Where mixed batches' host inputs are written (wasm: the one cached host feed is their only user). */
  #scratch = new PackScratch();
  /** Mixed batches are laid out per row (wasm, one session per variant or shared). */
  #rows: boolean;

  private constructor(
    options: BatchRunnerOptions,
    ep: ExecutionProvider,
    variants: VariantSessions,
    sessions: DecoderSessions,
  ) {
    this.#options = options;
    this.ep = ep;
    this.maxBatch = options.maxBatch ?? 8;
    this.maxVariants = options.maxVariants ?? 8;
    this.#config = options.model.config;
    this.#sites = listAdapterSites(this.#config);
    this.#tokenizer = options.tokenizer;
    this.#eosIds = [...new Set([...options.tokenizer.eosIds, ...this.#config.eosTokenIds])];
    this.#variants = variants;
    this.#decoder = new BatchDecoder(this.#config, sessions);
    this.#rows = ep === "wasm" && variants.layout !== "gated";
  }

  /**
   * Creates the runner with the plain (no adapter) variant's sessions.
   *
   * @param options Model, tokenizer, provider, limits and the event sink.
   * @returns The runner, idle.
   * @throws {Error} When onnxruntime rejects a graph.
   */
  static async create(options: BatchRunnerOptions): Promise<BatchRunner> {
    const maxBatch = options.maxBatch ?? 8;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`Invalid max batch ${maxBatch}: it must be a positive integer`);
    }
    const maxVariants = options.maxVariants ?? 8;
    if (!Number.isInteger(maxVariants) || maxVariants < 1) {
      throw new RangeError(`Invalid max variants ${maxVariants}: it must be a positive integer`);
    }
    const ep = await resolveExecutionProvider(options.ep ?? "auto");
    const variants = await VariantSessions.create({
      model: options.model,
      ep,
      maxVariants,
      layout: options.variantLayout,
    });
    const base = await variants.acquire({ sites: [], mode: "none" });
    return new BatchRunner(options, ep, variants, base.sessions);
  }

  /** Rows waiting or running. */
  get load(): number {
    return this.#pending.length + this.#active.filter((r) => !r.done).length;
  }

  /** The variants built so far, most recently used last: key, decode nodes and build time. */
  get variants(): VariantInfo[] {
    return this.#variants.list();
  }

  /** How variants hold the base weights. */
  get variantLayout(): VariantLayout {
    return this.#variants.layout;
  }

  /** The shared session's figures (layout `shared`): branches, weight bytes, rebuilds. */
  get sharedSession(): SharedSessionInfo | undefined {
    return this.#variants.shared;
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
    const env = { tokenizer: this.#tokenizer, eosIds: this.#eosIds, context };
    for (const request of rows) this.#pending.push(new Row(request, adapter, env));
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
   * Forgets the copies of an adapter's inputs (after the adapter cache evicted it); freed at the next step.
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
    this.#decoder.clear();
    for (const entry of this.#deviceFeeds.values()) disposeTensors(Object.values(entry.feeds));
    this.#deviceFeeds.clear();
    await this.#variants.release();
  }

  async #run(): Promise<void> {
    while (!this.#closed && (this.#pending.length > 0 || this.#active.length > 0)) {
      this.#freeEvicted();
      let admitting: Row<PreparedAdapter>[] = [];
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
    if (this.#closed) this.#decoder.clear();
  }

  /** Prefills new rows together, samples their first tokens, and adds them to the batch. */
  async #admit(rows: Row<PreparedAdapter>[]): Promise<void> {
    const started = performance.now();
    const comp = composeBatch(rows.map((r) => r.adapter), this.#sites, { rows: this.#rows });
    const feeds = await this.#use(comp, "prefill");
    const feedMs = performance.now() - started;
    const logits = await this.#decoder.prefill(rows.map((r) => r.request.promptIds), feeds);
    this.#active.push(...rows);
    const vocab = this.#config.vocabSize;
    const events = rows.map((row, r) => row.step(logits.subarray(r * vocab, (r + 1) * vocab)));
    this.#report("prefill", rows.length, comp, { started, feedMs }, events);
  }

  /** Drops finished rows from the batch (on WebGPU only once half of the rows have finished). */
  async #compact(): Promise<void> {
    const done = this.#active.filter((r) => r.done).length;
    if (done === 0) return;
    if (done === this.#active.length) {
      this.#decoder.clear();
      this.#active = [];
      return;
    }
    if (this.ep === "webgpu" && done * 2 < this.#active.length) return;
    const keep = this.#active.flatMap((row, r) => (row.done ? [] : [r]));
    await this.#decoder.keep(keep);
    this.#active = keep.map((r) => this.#active[r]);
  }

  /** One decode step for every active row. */
  async #decodeStep(): Promise<void> {
    const started = performance.now();
    const rows = this.#active;
    const comp = composeBatch(rows.map((r) => r.adapter), this.#sites, { rows: this.#rows });
    const feeds = await this.#use(comp, "decode");
    const feedMs = performance.now() - started;
    const logits = await this.#decoder.decode(rows.map((r) => r.lastToken), feeds);
    for (const row of rows) row.len++;
    const vocab = this.#config.vocabSize;
    const events: RowEvent[] = [];
    rows.forEach((row, r) => {
      if (!row.done) events.push(row.step(logits.subarray(r * vocab, (r + 1) * vocab)));
    });
    this.#report("decode", rows.length, comp, { started, feedMs }, events);
  }

  /** Reports a pass's figures and hands its events on. */
  #report(
    kind: StepInfo["kind"],
    rows: number,
    comp: BatchComposition,
    time: { started: number; feedMs: number },
    events: RowEvent[],
  ): void {
    const pass = this.#decoder.lastPass!;
    this.#options.onStep?.({
      kind,
      rows,
      slots: comp.slots.length,
      width: pass.width,
      ms: performance.now() - time.started,
      runMs: pass.runMs,
      feedMs: time.feedMs,
    });
    this.#options.onEvents(events);
  }

  /** Switches the decoder to the composition's variant and returns its feeds (adapters, selector). */
  async #use(comp: BatchComposition, kind: "prefill" | "decode"): Promise<Record<string, OrtTensor>> {
    const variant = await this.#variants.acquire(comp.variant);
    this.#decoder.use(variant.sessions);
    if (this.#variants.layout === "gated") {
      // one graph for every site set: the gates, every slot's packed tensors, each row's slot
      if (this.#hostFeeds?.key !== comp.key) {
        const g = gatedArrays(comp, this.#config);
        const feeds: Record<string, OrtTensor> = {
          [LORA_GATES_INPUT]: new ort.Tensor("bool", g.gates, [g.gates.length]),
        };
        for (const a of g.arrays) feeds[a.name] = hostTensor(a.data, a.dims);
        this.#hostFeeds = { key: comp.key, feeds };
      }
      const index = BigInt64Array.from(comp.index, BigInt);
      return { ...this.#hostFeeds.feeds, [LORA_INDEX_INPUT]: hostTensor(index, [index.length]) };
    }
    const select = variant.feeds(kind);
    if (comp.variant.mode === "none") return select;
    const index: Record<string, OrtTensor> = comp.variant.mode === "bank"
      ? { [LORA_INDEX_INPUT]: hostTensor(BigInt64Array.from(comp.index, BigInt), [comp.index.length]) }
      : {};
    Object.assign(index, select);
    if (this.ep === "wasm") {
      if (this.#hostFeeds?.key !== comp.key) {
        const feeds: Record<string, OrtTensor> = {};
        // the scratch's previous contents belong to the feeds replaced here
        for (const a of variantArrays(comp, this.#config, { packs: this.#packs, scratch: this.#scratch })) {
          feeds[a.name] = hostTensor(a.data, a.dims);
        }
        this.#hostFeeds = { key: comp.key, feeds };
      }
      return { ...this.#hostFeeds.feeds, ...index };
    }
    let entry = this.#deviceFeeds.get(comp.key);
    if (entry) {
      this.#deviceFeeds.delete(comp.key); // most recently used last
    } else {
      const feeds: Record<string, OrtTensor> = {};
      let bytes = 0;
      for (const a of variantArrays(comp, this.#config, { packs: this.#packs })) {
        feeds[a.name] = await uploadFloat32(a.data, a.dims);
        bytes += a.data.byteLength;
      }
      entry = { feeds, bytes };
      this.#deviceFeedBytes += bytes;
      const budget = this.#options.deviceBankBytes ?? 64 * 2 ** 20;
      for (const [key, old] of this.#deviceFeeds) {
        if (this.#deviceFeedBytes <= budget) break;
        this.#dropDeviceFeeds(key, old);
      }
    }
    this.#deviceFeeds.set(comp.key, entry);
    return { ...entry.feeds, ...index };
  }

  /** Ends rows after a failed pass with an `error` event, and resets the batch. */
  #fail(rows: Row<PreparedAdapter>[], error: Error): void {
    const events: RowEvent[] = [];
    for (const row of rows) {
      if (row.done) continue;
      row.done = true;
      events.push({ id: row.request.id, text: "", finishReason: "error", error: error.message });
    }
    this.#decoder.clear();
    this.#active = [];
    if (events.length) this.#options.onEvents(events);
  }

  #dropDeviceFeeds(key: string, entry: DeviceFeeds): void {
    disposeTensors(Object.values(entry.feeds));
    this.#deviceFeedBytes -= entry.bytes;
    this.#deviceFeeds.delete(key);
  }

  /** Frees adapter inputs that use an evicted adapter (between steps, when no pass uses them). */
  #freeEvicted(): void {
    if (this.#evicted.size === 0) return;
    const uses = (key: string) => key.split("|")[1].split("\n").some((k) => this.#evicted.has(k));
    for (const [key, entry] of [...this.#deviceFeeds]) if (uses(key)) this.#dropDeviceFeeds(key, entry);
    if (this.#hostFeeds && uses(this.#hostFeeds.key)) this.#hostFeeds = undefined;
    for (const key of this.#evicted) this.#packs.evict(key);
    this.#evicted.clear();
  }
}
