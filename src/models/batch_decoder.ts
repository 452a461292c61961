/**
 * {@linkcode BatchDecoder}: the one decode path of the toolkit. The CLI's generator and the server's batch
 * runner both drive it: rows are prefilled (several at once, right-padded), then decoded together one token
 * per step over the fused graphs' KV cache (`llama/fused.ts`); rows join between steps and leave when
 * they finish. What it does not know is what a row is for — sampling, text, stop strings, events and
 * adapters stay with the caller, which passes each pass's adapter feeds.
 *
 * The cache is one tensor (`present_kv`, every layer's keys and values) whose rows are left-aligned: row r's
 * positions are columns `[0, len_r)`. A decode step feeds the previous step's `present_kv` back unchanged
 * (on WebGPU it stays on the GPU); joining and leaving rows is host-side surgery of that tensor (on WebGPU a
 * download and an upload, only when the batch changes).
 *
 * @module
 */

import type { Model } from "../onnx/types.ts";
import type { ExecutionProvider, ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { OnnxSession, type OrtTensor } from "../runtime/session.ts";
import { disposeTensors, hostTensor } from "../runtime/tensor.ts";
import type { LlamaConfig } from "./config.ts";
import { FUSED_CACHE, FUSED_INPUTS, fusedRopeInside } from "./llama/fused.ts";

/** Options of {@linkcode createDecoderSessions}. */
export interface DecoderSessionsOptions {
  /** The fused decode graph (a model or its ONNX bytes); on wasm it also runs prefills. */
  decode: Model | Uint8Array;
  /** The fused prefill graph; needed on WebGPU, where an empty past cannot be fed. */
  prefill?: Model | Uint8Array;
  /**
   * Execution provider.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /** Names the sessions in errors. @default {"decoder"} */
  label?: string;
  /** onnxruntime session configuration entries (`session.disable_prepacking`: "1", …). @default {} */
  config?: Record<string, string>;
}

/** The sessions of one set of fused graphs: decode, and prefill where the provider needs one. */
export interface DecoderSessions {
  /** Runs decode steps (and, without `prefill`, prefills fed an empty past). */
  decode: OnnxSession;
  /** Runs prefills (WebGPU). */
  prefill?: OnnxSession;
}

/**
 * Creates the sessions of a set of fused graphs. On wasm the prefill graph is not needed (the decode graph
 * takes an empty past), so it is not loaded: the base weights are held once.
 *
 * @param options Graphs, provider and label.
 * @returns The sessions.
 * @throws {Error} When onnxruntime rejects a graph, or WebGPU is used without a prefill graph.
 */
export async function createDecoderSessions(options: DecoderSessionsOptions): Promise<DecoderSessions> {
  const label = options.label ?? "decoder";
  const keepOnDevice = [FUSED_CACHE.present];
  // weights as external data views: no protobuf copy of them in JS or wasm memory (stories15M shape on
  // wasm: about 100 MB less resident memory)
  const externalDataAbove = 0;
  const decode = await OnnxSession.create(options.decode, {
    ep: options.ep ?? "auto",
    keepOnDevice,
    externalDataAbove,
    label: `${label} decode graph`,
    config: options.config,
  });
  try {
    if (decode.ep === "webgpu" && !options.prefill) {
      throw new TypeError(
        `Cannot create the ${label} on WebGPU without a prefill graph (empty tensors fail there)`,
      );
    }
    if (options.prefill && decode.ep === "webgpu") {
      const prefill = await OnnxSession.create(options.prefill, {
        ep: decode.ep,
        keepOnDevice,
        externalDataAbove,
        label: `${label} prefill graph`,
        config: options.config,
      });
      return { decode, prefill };
    }
    return { decode };
  } catch (e) {
    await decode.release();
    throw e;
  }
}

/**
 * Releases a set of decoder sessions.
 *
 * @param sessions The sessions.
 */
export async function releaseDecoderSessions(sessions: DecoderSessions): Promise<void> {
  await Promise.all([sessions.decode.release(), sessions.prefill?.release()]);
}

/** Figures of one forward pass. */
export interface DecoderPass {
  /** `prefill` or `decode`. */
  kind: "prefill" | "decode";
  /** Rows in the pass. */
  rows: number;
  /** Padded prompt length (prefill) or cache width after the step (decode). */
  width: number;
  /** Time inside `session.run`, ms. */
  runMs: number;
  /** Wall time of the pass including feeds, cache surgery and reading logits, ms. */
  ms: number;
}

/**
 * Prefills and decodes rows over one KV cache. Rows are addressed by their index in the batch, which the
 * caller mirrors: {@linkcode BatchDecoder.prefill} appends rows at the end, {@linkcode BatchDecoder.keep}
 * reorders or drops them.
 *
 * @example
 * ```ts ignore
 * const sessions = await createDecoderSessions({ decode, ep: "wasm" });
 * const decoder = new BatchDecoder(config, sessions);
 * let logits = await decoder.prefill([[1, 403, 9]], {});
 * logits = await decoder.decode([argmax(logits)], {});
 * decoder.clear();
 * await releaseDecoderSessions(sessions);
 * ```
 */
export class BatchDecoder {
  /** The model's shape. */
  readonly config: LlamaConfig;
  /** The latest pass's figures. */
  lastPass: DecoderPass | undefined;
  #sessions: DecoderSessions;
  #cache: OrtTensor | undefined; // present_kv of the rows, [2·layers·rows, kvHeads, width, headDim]
  #lens: number[] = []; // positions in the cache per row
  #width = 0;
  #ropeInside: boolean;

  /**
   * A decoder with no rows over sessions the caller owns (see {@linkcode BatchDecoder.use} to switch between
   * graph variants; the cache carries over, since every variant has the same cache layout).
   *
   * @param config The model's shape.
   * @param sessions The sessions to run.
   */
  constructor(config: LlamaConfig, sessions: DecoderSessions) {
    this.config = config;
    this.#sessions = sessions;
    this.#ropeInside = fusedRopeInside(config);
  }

  /**
   * Runs the next passes on other sessions (another graph variant of the same model); the rows and their
   * cache stay.
   *
   * @param sessions The sessions (owned by the caller).
   */
  use(sessions: DecoderSessions): void {
    if (sessions.decode.ep !== this.#sessions.decode.ep) {
      throw new TypeError(
        `Cannot switch the decoder from ${this.#sessions.decode.ep} to ${sessions.decode.ep} sessions`,
      );
    }
    this.#sessions = sessions;
  }

  /** The provider the sessions run on. */
  get ep(): ExecutionProvider {
    return this.#sessions.decode.ep;
  }

  /** Rows in the batch. */
  get rows(): number {
    return this.#lens.length;
  }

  /** Each row's length (positions in the cache). */
  get lengths(): readonly number[] {
    return this.#lens;
  }

  /**
   * Runs a prompt pass for new rows and appends them to the batch.
   *
   * @param prompts Each new row's token ids (non-empty, shorter than the model's context).
   * @param feeds Extra inputs of this pass (adapter tensors for these rows, in this order).
   * @returns Logits of the new rows' last prompt positions, `[rows, vocab]` row-major.
   * @throws {RangeError} When a prompt is empty or too long.
   */
  async prefill(
    prompts: readonly (readonly number[])[],
    feeds: Record<string, OrtTensor>,
  ): Promise<Float32Array> {
    const started = performance.now();
    const context = this.config.maxPositionEmbeddings;
    prompts.forEach((p, i) => {
      if (p.length === 0 || p.length >= context) {
        throw new RangeError(
          `Cannot prefill prompt ${i}: it has ${p.length} tokens, expected 1 to ${context - 1}`,
        );
      }
    });
    const n = prompts.length;
    const width = Math.max(...prompts.map((p) => p.length));
    const ids = new BigInt64Array(n * width);
    const positions = new BigInt64Array(n * width);
    prompts.forEach((prompt, r) => {
      prompt.forEach((id, t) => {
        ids[r * width + t] = BigInt(id);
        positions[r * width + t] = BigInt(t);
      });
    });
    const all: Record<string, OrtTensor> = {
      ...feeds,
      input_ids: hostTensor(ids, [n, width]),
      [FUSED_INPUTS.seqlensK]: hostTensor(Int32Array.from(prompts, (p) => p.length - 1), [n]),
      [FUSED_INPUTS.totalSequenceLength]: hostTensor(new Int32Array([width]), []),
      [FUSED_INPUTS.logitsIndex]: hostTensor(
        BigInt64Array.from(prompts, (p, r) => BigInt(r * width + p.length - 1)),
        [n],
      ),
    };
    if (!this.#ropeInside) all[FUSED_INPUTS.positionIds] = hostTensor(positions, [n, width]);
    const session = this.#sessions.prefill ?? this.#sessions.decode;
    if (!this.#sessions.prefill) {
      const { numHiddenLayers: layers, numKeyValueHeads: heads, headDim } = this.config;
      all[FUSED_CACHE.past] = hostTensor(new Float32Array(0), [2 * layers * n, heads, 0, headDim]);
    }
    const runStart = performance.now();
    const out = await session.run(all);
    const runMs = performance.now() - runStart;
    const logits = (await out.logits.getData()) as Float32Array;
    disposeTensors([out.logits]);
    const present = out[FUSED_CACHE.present];
    if (this.#lens.length === 0) {
      this.#cache = present;
      this.#width = width;
      this.#lens = prompts.map((p) => p.length);
    } else {
      const sources = [
        { tensor: this.#cache!, rows: this.#lens.length, width: this.#width },
        { tensor: present, rows: n, width },
      ];
      const picks = [
        ...this.#lens.map((_, row) => ({ source: 0, row })),
        ...prompts.map((_, row) => ({ source: 1, row })),
      ];
      const lens = [...this.#lens, ...prompts.map((p) => p.length)];
      await this.#rebuild(sources, picks, lens);
    }
    this.lastPass = { kind: "prefill", rows: n, width, runMs, ms: performance.now() - started };
    return logits;
  }

  /**
   * One decode step for every row: feeds each row's next token at its next position.
   *
   * @param tokens One token per row, in batch order.
   * @param feeds Extra inputs of this pass (adapter tensors for the rows, in batch order).
   * @returns Logits `[rows, vocab]` row-major.
   * @throws {RangeError} When the token count is not the row count, or a row is at the model's context.
   */
  async decode(tokens: readonly number[], feeds: Record<string, OrtTensor>): Promise<Float32Array> {
    const started = performance.now();
    const n = this.#lens.length;
    if (tokens.length !== n) throw new RangeError(`Cannot decode: ${tokens.length} tokens for ${n} rows`);
    const context = this.config.maxPositionEmbeddings;
    const at = this.#lens.findIndex((len) => len >= context);
    if (at >= 0) throw new RangeError(`Cannot decode row ${at}: it fills the model's context of ${context}`);
    const all: Record<string, OrtTensor> = {
      ...feeds,
      input_ids: hostTensor(BigInt64Array.from(tokens, BigInt), [n, 1]),
      [FUSED_INPUTS.seqlensK]: hostTensor(Int32Array.from(this.#lens), [n]),
      [FUSED_INPUTS.totalSequenceLength]: hostTensor(new Int32Array([Math.max(...this.#lens) + 1]), []),
      [FUSED_INPUTS.logitsIndex]: hostTensor(BigInt64Array.from(this.#lens, (_, r) => BigInt(r)), [n]),
      [FUSED_CACHE.past]: this.#cache!,
    };
    if (!this.#ropeInside) {
      all[FUSED_INPUTS.positionIds] = hostTensor(BigInt64Array.from(this.#lens, BigInt), [n, 1]);
    }
    const runStart = performance.now();
    const out = await this.#sessions.decode.run(all);
    const runMs = performance.now() - runStart;
    disposeTensors([this.#cache]);
    this.#cache = out[FUSED_CACHE.present];
    this.#width = this.#cache.dims[2];
    for (let r = 0; r < n; r++) this.#lens[r]++;
    const logits = (await out.logits.getData()) as Float32Array;
    disposeTensors([out.logits]);
    this.lastPass = { kind: "decode", rows: n, width: this.#width, runMs, ms: performance.now() - started };
    return logits;
  }

  /**
   * Keeps some rows, in the given order (the others leave the batch); the cache narrows to the longest
   * kept row.
   *
   * @param rows Indices of the rows to keep.
   */
  async keep(rows: readonly number[]): Promise<void> {
    if (rows.length === this.#lens.length && rows.every((r, i) => r === i)) return;
    if (rows.length === 0) {
      this.clear();
      return;
    }
    const lens = rows.map((r) => this.#lens[r]);
    await this.#rebuild(
      [{ tensor: this.#cache!, rows: this.#lens.length, width: this.#width }],
      rows.map((row) => ({ source: 0, row })),
      lens,
    );
  }

  /** Drops every row and frees the cache. */
  clear(): void {
    disposeTensors([this.#cache]);
    this.#cache = undefined;
    this.#lens = [];
    this.#width = 0;
  }

  /** Replaces the cache by picked rows of the sources (host surgery), left-aligned, as wide as the longest row. */
  async #rebuild(
    sources: { tensor: OrtTensor; rows: number; width: number }[],
    picks: { source: number; row: number }[],
    lens: number[],
  ): Promise<void> {
    const { numHiddenLayers: layers, numKeyValueHeads: heads, headDim } = this.config;
    const width = Math.max(...lens);
    const datas = await Promise.all(sources.map(async (s) => (await s.tensor.getData()) as Float32Array));
    const n = picks.length;
    const out = new Float32Array(2 * layers * n * heads * width * headDim);
    for (let part = 0; part < 2 * layers; part++) {
      picks.forEach((pick, r) => {
        const src = sources[pick.source];
        const keep = Math.min(width, src.width) * headDim;
        for (let h = 0; h < heads; h++) {
          const from = (((part * src.rows + pick.row) * heads + h) * src.width) * headDim;
          const to = (((part * n + r) * heads + h) * width) * headDim;
          out.set(datas[pick.source].subarray(from, from + keep), to);
        }
      });
    }
    disposeTensors(sources.map((s) => s.tensor));
    this.#cache = hostTensor(out, [2 * layers * n, heads, width, headDim]);
    this.#lens = lens;
    this.#width = width;
  }
}
