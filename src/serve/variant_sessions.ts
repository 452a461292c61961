/**
 * The sessions behind the serving graph variants, in one of three layouts:
 *
 * - `separate`: one session per variant, built on first use and kept in an LRU, each with its own copy of the base weights
 *   (onnxruntime-web copies initializers per session); a new variant builds only its own session.
 * - `shared`: one onnxruntime session whose `If` branches are every cached variant over one copy of the base
 *   weights (`shared_variants.ts`); a new variant rebuilds that session with one branch more, and eviction
 *   rebuilds it with one less. Measured (`bench/results/variants.md`): on wasm, MatMuls inside a branch do
 *   not get their outer-scope weights prepacked by MLAS, so a decode step of a stories15M-sized model is
 *   2.7–2.9× slower at batch 1 (1.6–2× at batch 8), though memory is 2.3× lower with 8 variants; on
 *   stories260K the step costs 1.1–1.2× and memory barely changes. Opt-in only.
 * - `gated` (wasm): one session of the gated graph (`gated_graph.ts`): the base model once in the main graph
 *   (prepacked), every site's LoRA in an `If` on its gate; nothing is built after creation, whatever the
 *   adapters.
 *
 * The default stays `separate`. `auto` picks `gated` on wasm for base weights of 16 MiB and more and
 * `separate` otherwise: measured (`bench/results/variants.md`), the gates cost little next to a large model's
 * MatMuls at batch 8 and without an adapter, but a K = 5 pass at batch 1 on stories15M's shape was 0.94–1.56×
 * (three runs; more than the few percent a default may cost), and a tiny model's step is mostly per-node
 * overhead (1.15–1.55× on stories260K) while its copies of the weights are small.
 *
 * A pass gets its variant's {@linkcode DecoderSessions} and the extra feeds that choose it (`shared`: the
 * selector bits and the placeholders of inputs its branch does not read; `gated`: none here, the runner
 * feeds the gates with the adapters, see `gatedArrays`).
 *
 * @module
 */

import {
  createDecoderSessions,
  type DecoderSessions,
  releaseDecoderSessions,
} from "../models/batch_decoder.ts";
import type { LlamaConfig } from "../models/config.ts";
import { FUSED_CACHE } from "../models/llama/fused.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import type { Model, TensorData } from "../onnx/types.ts";
import type { ExecutionProvider } from "../runtime/execution_provider.ts";
import { ort } from "../runtime/ort.ts";
import { OnnxSession, type OrtTensor } from "../runtime/session.ts";
import { hostTensor } from "../runtime/tensor.ts";
import { buildGatedGraph } from "./gated_graph.ts";
import {
  composeSharedVariants,
  internInitializers,
  type OptionalInput,
  type SharedBranch,
  variantBitInput,
  variantSelector,
} from "./shared_variants.ts";
import { buildVariantGraphs, type ServingVariant, variantKey } from "./variant_graphs.ts";

/**
 * How graph variants hold the base weights: one session each (`separate`), one session with every variant as
 * an `If` branch (`shared`), or one session of the gated graph that serves every site set (`gated`).
 */
export type VariantLayout = "separate" | "shared" | "gated";

/** A built variant, as {@linkcode VariantSessions.list} reports it. */
export interface VariantInfo {
  /** The variant's key (mode and sites). */
  key: string;
  /** Nodes of its decode graph. */
  ops: number;
  /** Time to build it: its graphs and the session that runs it (`shared`: the rebuild that added it), ms. */
  buildMs: number;
}

/** The figures of the shared session (layout `shared`). */
export interface SharedSessionInfo {
  /** Branches (variants × graph kinds). */
  branches: number;
  /** Bytes of the weights held once, outside the branches. */
  sharedBytes: number;
  /** Bytes of initializers inside branches (small constants). */
  branchBytes: number;
  /** Sessions built so far. */
  rebuilds: number;
  /** Time of the latest rebuild (compose, encode, create), ms. */
  lastRebuildMs: number;
}

/** What a pass runs: the sessions and the feeds that choose its variant. */
export interface VariantHandle {
  /** The sessions to run. */
  sessions: DecoderSessions;
  /**
   * Feeds that select the variant for a pass of this kind (none in layout `separate`).
   *
   * @param kind `prefill` or `decode`.
   * @returns Input tensors by name.
   */
  feeds(kind: "prefill" | "decode"): Record<string, OrtTensor>;
}

/** Options of {@linkcode VariantSessions.create}. */
export interface VariantSessionsOptions {
  /** The base model's shape and weights. */
  model: { config: LlamaConfig; weights: LlamaWeights };
  /** The provider the sessions run on. */
  ep: ExecutionProvider;
  /** Most variants kept (the least recently used is dropped). */
  maxVariants: number;
  /**
   * `separate`, `shared`, `gated`, or `auto`: `gated` on wasm for base weights of
   * {@linkcode GATED_FROM_BYTES} and more, `separate` otherwise (see {@linkcode resolveVariantLayout}).
   * @default {"separate"}
   */
  layout?: VariantLayout | "auto";
  /**
   * Whether onnxruntime prepacks constant MatMul weights (MLAS). Without it, a wasm MatMul packs its weight
   * at every call (~3× slower at batch 1 on stories15M's shape). In layout `shared` the weights are outer-
   * scope values of the branches, which onnxruntime does not prepack either way.
   * @default {true for "separate", false for "shared"}
   */
  prepack?: boolean;
}

interface Built {
  variant: ServingVariant;
  /** layout `shared`: its graphs (initializers interned). */
  decode?: Model;
  prefill?: Model;
  ops: number;
  buildMs: number;
  /** layout `separate`: its own sessions. */
  sessions?: DecoderSessions;
}

interface Shared {
  sessions: DecoderSessions;
  /** Branch index of each variant key (decode; prefill branches follow at `+ prefillOffset`). */
  index: Map<string, number>;
  prefillOffset: number;
  depth: number;
  optional: OptionalInput[];
  /** Selector and placeholder feeds by branch index. */
  feeds: Map<number, Record<string, OrtTensor>>;
  placeholders: Map<string, OrtTensor>;
  info: Omit<SharedSessionInfo, "rebuilds" | "lastRebuildMs">;
}

/**
 * Base weights from which layout `auto` picks `gated` on wasm (below, per-session overhead outweighs the
 * copies of the weights, and the gates' cost per step weighs more on a tiny model): 16 MiB.
 */
export const GATED_FROM_BYTES = 16 * 2 ** 20;

/**
 * The layout a choice means for a model and provider: `auto` is `gated` on wasm for base weights of
 * {@linkcode GATED_FROM_BYTES} and more, else `separate`.
 *
 * @param choice The layout asked for.
 * @param target The model's weights and the provider.
 * @returns The layout to use.
 * @throws {TypeError} On an unknown layout.
 * @example
 * ```ts
 * import { resolveVariantLayout } from "./variant_sessions.ts";
 * const layout = resolveVariantLayout("auto", { model: { weights: new Map() }, ep: "wasm" });
 * console.assert(layout === "separate");
 * ```
 */
export function resolveVariantLayout(
  choice: VariantLayout | "auto",
  target: { model: { weights: LlamaWeights }; ep: ExecutionProvider },
): VariantLayout {
  if (choice === "separate" || choice === "shared" || choice === "gated") return choice;
  if (choice !== "auto") {
    throw new TypeError(`Unknown variant layout "${choice}": use auto, separate, shared or gated`);
  }
  let bytes = 0;
  for (const t of target.model.weights.values()) bytes += t.data.byteLength;
  return target.ep === "wasm" && bytes >= GATED_FROM_BYTES ? "gated" : "separate";
}

const BITS = [false, true].map((b) => new ort.Tensor("bool", Uint8Array.from([b ? 1 : 0]), []));

/**
 * The variant sessions of one runner.
 *
 * @example
 * ```ts ignore
 * const sessions = await VariantSessions.create({ model, ep: "wasm", maxVariants: 8 });
 * const handle = await sessions.acquire({ sites: [], mode: "none" });
 * const feeds = handle.feeds("decode");
 * await sessions.release();
 * ```
 */
export class VariantSessions {
  /** `shared` or `separate`. */
  readonly layout: VariantLayout;
  #options: VariantSessionsOptions;
  #built = new Map<string, Built>(); // least recently used first
  #pool = new Map<string, TensorData>();
  #shared: Shared | undefined;
  #rebuilds = 0;
  #gated: { sessions: DecoderSessions } | undefined;
  #lastRebuildMs = 0;

  private constructor(options: VariantSessionsOptions, layout: VariantLayout) {
    this.#options = options;
    this.layout = layout;
  }

  /**
   * Creates the variant sessions with the plain (no adapter) variant built.
   *
   * @param options Model, provider, bound and layout.
   * @returns The sessions.
   * @throws {Error} When onnxruntime rejects a graph.
   */
  static async create(options: VariantSessionsOptions): Promise<VariantSessions> {
    const layout = resolveVariantLayout(options.layout ?? "separate", options);
    if (layout === "gated" && options.ep !== "wasm") {
      throw new TypeError(`Cannot use the gated variant layout on ${options.ep}: it runs on wasm only`);
    }
    const sessions = new VariantSessions(options, layout);
    if (layout === "gated") await sessions.#createGated();
    else await sessions.acquire({ sites: [], mode: "none" });
    return sessions;
  }

  /** The variants built, least recently used first (layout `gated`: one entry, `gated`). */
  list(): VariantInfo[] {
    return [...this.#built].map(([key, b]) => ({ key, ops: b.ops, buildMs: b.buildMs }));
  }

  /** The shared session's figures (layout `shared`), or `undefined`. */
  get shared(): SharedSessionInfo | undefined {
    if (!this.#shared) return undefined;
    return { ...this.#shared.info, rebuilds: this.#rebuilds, lastRebuildMs: this.#lastRebuildMs };
  }

  /**
   * The sessions and feeds of a variant: cached (it becomes the most recently used), or built now — in
   * layout `shared` by rebuilding the one session with it (and without the least recently used variant
   * when the bound is reached).
   *
   * @param variant The variant.
   * @returns Its handle (valid until the next call).
   * @throws {Error} When onnxruntime rejects a graph.
   */
  async acquire(variant: ServingVariant): Promise<VariantHandle> {
    if (this.#gated) return { sessions: this.#gated.sessions, feeds: () => ({}) };
    const key = variantKey(variant);
    let built = this.#built.get(key);
    if (built) {
      this.#built.delete(key);
      this.#built.set(key, built);
    } else {
      built = await this.#add(variant);
    }
    if (!this.#built.has(key)) {
      throw new RangeError(`Cannot use graph variant "${key.slice(0, 80)}": max variants is 0`);
    }
    if (this.layout === "separate") return { sessions: built.sessions!, feeds: () => ({}) };
    const shared = this.#shared!;
    const branch = shared.index.get(key)!;
    return {
      sessions: shared.sessions,
      feeds: (kind) => {
        const at = kind === "prefill" ? branch + shared.prefillOffset : branch;
        let feeds = shared.feeds.get(at);
        if (!feeds) {
          feeds = {};
          variantSelector(at, shared.depth).forEach((bit, d) => (feeds![variantBitInput(d)] = BITS[+bit]));
          for (const input of shared.optional) {
            if (!input.readers.has(at)) feeds[input.name] = shared.placeholders.get(input.name)!;
          }
          shared.feeds.set(at, feeds);
        }
        return feeds;
      },
    };
  }

  /** Layout `gated`: the one session, built now. */
  async #createGated(): Promise<void> {
    const started = performance.now();
    const { model, ep } = this.#options;
    const graph = buildGatedGraph(model);
    const sessions = await createDecoderSessions({
      decode: graph,
      ep,
      label: "gated serving graph",
      config: this.#options.prepack === false ? { "session.disable_prepacking": "1" } : undefined,
    });
    const variant: ServingVariant = { sites: [], mode: "none" };
    this.#gated = { sessions };
    this.#built.set("gated", {
      variant,
      ops: graph.graph.nodes.length,
      buildMs: performance.now() - started,
    });
  }

  /** Releases every session. */
  async release(): Promise<void> {
    const all = [...this.#built.values()].flatMap((b) => (b.sessions ? [b.sessions] : []));
    if (this.#gated) all.push(this.#gated.sessions);
    this.#gated = undefined;
    if (this.#shared) all.push(this.#shared.sessions);
    this.#built.clear();
    this.#shared = undefined;
    await Promise.all(all.map(releaseDecoderSessions));
  }

  /** Builds a variant (and, in layout `shared`, the session with it), dropping the least recently used. */
  async #add(variant: ServingVariant): Promise<Built> {
    return (await this.#addAll([variant]))[0];
  }

  /**
   * Builds variants (in layout `shared` with one rebuild of the session for all of them), dropping the least
   * recently used past the bound; on failure the session is back to the previous variants.
   */
  async #addAll(variants: readonly ServingVariant[]): Promise<Built[]> {
    const started = performance.now();
    const { model, ep } = this.#options;
    const previous = [...this.#built];
    const added: Built[] = [];
    for (const variant of variants) {
      const t0 = performance.now();
      const graphs = buildVariantGraphs(model, variant, { prefill: ep === "webgpu" });
      const key = variantKey(variant);
      const built: Built = { variant, ops: graphs.decode.graph.nodes.length, buildMs: 0 };
      if (this.layout === "separate") {
        // the session holds the weights; the graph is not kept
        built.sessions = await createDecoderSessions({
          decode: graphs.decode,
          prefill: graphs.prefill,
          ep,
          label: `serving variant ${key.slice(0, 80)}`,
          config: this.#options.prepack === false ? { "session.disable_prepacking": "1" } : undefined,
        });
        built.buildMs = performance.now() - t0;
      } else {
        // one JavaScript copy of the weights however many graphs are cached
        built.decode = { ...graphs.decode, graph: internInitializers(graphs.decode.graph, this.#pool) };
        if (graphs.prefill) {
          built.prefill = { ...graphs.prefill, graph: internInitializers(graphs.prefill.graph, this.#pool) };
        }
      }
      this.#built.delete(key);
      this.#built.set(key, built);
      added.push(built);
    }
    if (this.layout === "separate") {
      await this.#evict();
      return added;
    }
    while (this.#built.size > this.#options.maxVariants) this.#built.delete(this.#built.keys().next().value!);
    try {
      await this.#rebuild();
    } catch (error) {
      // back to the previous variants (the old session may be gone: rebuild it)
      this.#built = new Map(previous);
      if (this.#built.size > 0 && (!this.#shared || this.#shared.sessions.decode.released)) {
        await this.#rebuild().catch(() => {});
      }
      throw error;
    }
    const ms = performance.now() - started;
    for (const built of added) built.buildMs = ms;
    return added;
  }

  /**
   * Builds variants ahead of their first batch (the ones not built yet), with one rebuild of the shared
   * session for all of them; they become the most recently used. Variants past `maxVariants` push out the
   * least recently used, the given ones included.
   *
   * @param variants The variants.
   * @throws {Error} When onnxruntime rejects a graph.
   */
  async prepare(variants: readonly ServingVariant[]): Promise<void> {
    if (this.#gated) return; // one graph serves every site set
    const missing = new Map<string, ServingVariant>();
    for (const variant of variants) {
      const key = variantKey(variant);
      const built = this.#built.get(key);
      if (built) {
        this.#built.delete(key);
        this.#built.set(key, built);
      } else missing.set(key, variant);
    }
    if (missing.size > 0) await this.#addAll([...missing.values()]);
  }

  /** Layout `separate`: releases the least recently used sessions past the bound. */
  async #evict(): Promise<void> {
    while (this.#built.size > this.#options.maxVariants) {
      const [key, old] = this.#built.entries().next().value!;
      this.#built.delete(key);
      await releaseDecoderSessions(old.sessions!);
    }
  }

  /**
   * Layout `shared`: builds the one session over every cached variant. On wasm the old session is released
   * first (its outputs are host tensors), so the wasm heap never holds two copies of the weights; on WebGPU
   * the new one is created first (the cache lives in GPU buffers that need a live session).
   */
  async #rebuild(): Promise<void> {
    const started = performance.now();
    const { ep } = this.#options;
    const built = [...this.#built.values()];
    const branches: SharedBranch[] = built.map((b) => ({ variant: b.variant, model: b.decode! }));
    if (ep === "webgpu") {
      branches.push(...built.map((b) => ({ variant: b.variant, model: b.prefill! })));
    }
    const composed = composeSharedVariants(branches);
    const old = this.#shared;
    this.#shared = undefined;
    if (old && ep === "wasm") await releaseDecoderSessions(old.sessions);
    const session = await OnnxSession.create(composed.model, {
      ep,
      keepOnDevice: [FUSED_CACHE.present],
      label: `shared serving variants (${built.length})`,
      config: this.#options.prepack ? undefined : { "session.disable_prepacking": "1" },
    });
    if (old && ep !== "wasm") await releaseDecoderSessions(old.sessions);
    // WebGPU: the prefill branches are in the same session (a prefill pass feeds a placeholder cache)
    const sessions: DecoderSessions = ep === "webgpu"
      ? { decode: session, prefill: session }
      : { decode: session };
    this.#shared = {
      sessions,
      index: new Map(built.map((b, i) => [variantKey(b.variant), i])),
      prefillOffset: ep === "webgpu" ? built.length : 0,
      depth: composed.depth,
      optional: composed.optional,
      feeds: new Map(),
      placeholders: new Map(composed.optional.map((input) => [input.name, placeholder(input)])),
      info: {
        branches: composed.branches,
        sharedBytes: composed.sharedBytes,
        branchBytes: composed.branchBytes,
      },
    };
    this.#rebuilds++;
    this.#lastRebuildMs = performance.now() - started;
  }
}

/** A one-element (per symbolic axis) zero tensor for an input a branch does not read. */
function placeholder(input: OptionalInput): OrtTensor {
  const size = input.dims.reduce((a, b) => a * b, 1);
  switch (input.dtype) {
    case "int64":
      return hostTensor(new BigInt64Array(size), input.dims);
    case "int32":
      return hostTensor(new Int32Array(size), input.dims);
    case "float32":
      return hostTensor(new Float32Array(size), input.dims);
    default:
      throw new TypeError(
        `Cannot feed a placeholder for input "${input.name}": dtype ${input.dtype} is not supported` +
          (input.name === FUSED_CACHE.past ? " (the cache)" : ""),
      );
  }
}
