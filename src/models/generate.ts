/**
 * {@linkcode LlamaGenerator}: text generation with a KV cache on onnxruntime-web. The sessions are built
 * once per model; a request runs a prefill on its prompts, then one decode step per token with the
 * previous step's `present.*` as `past.*` (kept on the GPU on WebGPU). On WebGPU the prefill is its own
 * graph (zero-sized tensors fail there); on wasm the decode graph also serves the prefill, fed an empty
 * past, so the base weights are held once.
 *
 * Prompts of different lengths share a batch: rows are left-padded, masked out with `attention_mask`,
 * and each row's positions start at 0 at its first real token, so a row gets the same tokens in a batch
 * as alone. Sampling is per row with its own seeded PRNG; text is decoded incrementally, so a character
 * split over byte-fallback tokens is emitted whole, and stop strings are never emitted in part.
 *
 * @module
 */

import type { Tokenizer } from "../io/tokenizer.ts";
import {
  type ExecutionProvider,
  type ExecutionProviderChoice,
  resolveExecutionProvider,
} from "../runtime/execution_provider.ts";
import { OnnxSession, type OrtTensor } from "../runtime/session.ts";
import { disposeTensors, hostTensor } from "../runtime/tensor.ts";
import type { LlamaConfig } from "./config.ts";
import type { LlamaWeights } from "./llama.ts";
import { buildLlamaInferenceGraph, kvCacheNames } from "./llama_inference.ts";
import { loraFeeds, type LoraSiteTensors } from "./lora_inputs.ts";
import { Prng, sampleToken, type SamplingOptions, validateSampling } from "./sampling.ts";
import { StopMatcher } from "./stop_matcher.ts";

/**
 * The tokenizer members generation uses (a subset of the io {@linkcode Tokenizer}). With `vocabSize`
 * below the model's (a padded embedding), ids past it are never sampled.
 */
export type GenerationTokenizer =
  & Pick<Tokenizer, "bosId" | "eosIds" | "encode" | "createStreamDecoder">
  & { readonly vocabSize?: number };

/** A model ready to generate: shape, weights (HF names, float32) and tokenizer. */
export interface GeneratorModel {
  /** Model shape. */
  config: LlamaConfig;
  /** Weights; only read while the sessions are built. */
  weights: LlamaWeights;
  /** Tokenizer. */
  tokenizer: GenerationTokenizer;
}

/** Options for {@linkcode LlamaGenerator.create}. */
export interface LlamaGeneratorOptions {
  /**
   * Execution provider.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /** Sites (PEFT module paths) whose LoRA tensors the graphs take as inputs; requests then feed them. */
  loraSites?: readonly string[];
}

/** Why a row stopped. */
export type FinishReason = "eos" | "stop" | "length";

/** Options of one generation request. */
export interface GenerateOptions extends SamplingOptions {
  /**
   * Most tokens to generate per row (the EOS token counts).
   * @default {256}
   */
  maxTokens?: number;
  /** PRNG seed; every row starts from this seed. @default a random seed */
  seed?: number;
  /** Stop strings: generation of a row ends before the first one, which is not emitted. */
  stop?: readonly string[];
  /** Token ids that end a row (not emitted). @default the tokenizer's and the config's EOS ids */
  eosTokenIds?: readonly number[];
  /**
   * Do not stop at EOS: every row generates exactly `maxTokens` tokens (EOS and BOS are sampled, emitted
   * and counted like any token; stop strings still stop), as benchmarks need. The prompt plus `maxTokens`
   * must then fit the model's context.
   * @default {false}
   */
  ignoreEos?: boolean;
  /** Put BOS before text prompts. @default the tokenizer's habit */
  addBos?: boolean;
  /** The LoRA tensors of this request, for every site the generator was created with. */
  adapter?: ReadonlyMap<string, LoraSiteTensors>;
  /** Aborts the request between steps. */
  signal?: AbortSignal;
}

/** One streamed piece of a row's output. */
export interface GeneratedPiece {
  /** Prompt index. */
  row: number;
  /** The sampled token (the EOS id on an `eos` finish). */
  tokenId: number;
  /** Text this token completes (often `""` while a multi-byte character or a possible stop string is pending). */
  text: string;
  /** Set on a row's last piece. */
  finishReason?: FinishReason;
}

/** A finished row. */
export interface GenerationResult {
  /** The generated text (without EOS and stop string). */
  text: string;
  /** Generated token ids (without the EOS token). */
  tokenIds: number[];
  /** The prompt's token ids (with BOS when added). */
  promptTokenIds: number[];
  /** Why the row stopped. */
  finishReason: FinishReason;
}

/** Timings of the latest request, for benchmarks and logs. */
export interface GenerationStats {
  /** Rows in the batch. */
  batch: number;
  /** Prompt tokens per row after padding. */
  prefillTokens: number;
  /** Wall time of the prefill step (feeds, run, reading logits), ms. */
  prefillMs: number;
  /** Decode steps run (each gives one token per active row; the first token of a row comes from the prefill). */
  decodeSteps: number;
  /** Wall time of all decode steps including sampling and text, ms. */
  decodeMs: number;
  /** Time inside `session.run` of the decode steps, ms. */
  decodeRunMs: number;
}

interface RowState {
  ids: number[];
  generated: number[];
  rng: Prng;
  decoder: ReturnType<GenerationTokenizer["createStreamDecoder"]>;
  stop: StopMatcher;
  done: boolean;
  nextPosition: number;
}

/**
 * Generates text from a Llama-family model.
 *
 * @example
 * ```ts ignore
 * import { LlamaGenerator } from "./generate.ts";
 * const generator = await LlamaGenerator.create(model, { ep: "wasm" });
 * for await (const piece of generator.stream(["Once upon a time"], { maxTokens: 32 })) {
 *   await Deno.stdout.write(new TextEncoder().encode(piece.text));
 * }
 * await generator.release();
 * ```
 */
export class LlamaGenerator {
  /** Model shape. */
  readonly config: LlamaConfig;
  /** Tokenizer. */
  readonly tokenizer: GenerationTokenizer;
  /** LoRA sites the graphs take as inputs. */
  readonly loraSites: readonly string[];
  /** Operator count of the decode graph (nodes per decode step). */
  readonly decodeOps: number;
  /** Timings of the latest request. */
  stats: GenerationStats | undefined;
  #prefill: OnnxSession | undefined;
  #decode: OnnxSession;

  private constructor(
    model: GeneratorModel,
    sessions: { prefill?: OnnxSession; decode: OnnxSession; decodeOps: number },
    loraSites: readonly string[],
  ) {
    this.config = model.config;
    this.tokenizer = model.tokenizer;
    this.#prefill = sessions.prefill;
    this.#decode = sessions.decode;
    this.decodeOps = sessions.decodeOps;
    this.loraSites = loraSites;
  }

  /** The execution provider the sessions run on. */
  get ep(): ExecutionProvider {
    return this.#decode.ep;
  }

  /**
   * Builds the graphs and their sessions (decode; and prefill on WebGPU).
   *
   * @param model Config, weights and tokenizer.
   * @param options Execution provider and LoRA sites.
   * @returns The generator.
   * @throws {Error} When a weight is missing or misshapen, or onnxruntime rejects a graph.
   */
  static async create(model: GeneratorModel, options: LlamaGeneratorOptions = {}): Promise<LlamaGenerator> {
    const loraSites = [...(options.loraSites ?? [])];
    const ep = await resolveExecutionProvider(options.ep ?? "auto");
    const decodeModel = buildLlamaInferenceGraph(model, { kind: "decode", logits: "last", loraSites });
    const presentNames = decodeModel.graph.outputs.map((o) => o.name).filter((n) => n.startsWith("present."));
    const sessionOptions = { ep, keepOnDevice: presentNames };
    const decode = await OnnxSession.create(decodeModel, sessionOptions);
    let prefill: OnnxSession | undefined;
    if (ep === "webgpu") {
      try {
        const prefillModel = buildLlamaInferenceGraph(model, { kind: "prefill", logits: "last", loraSites });
        prefill = await OnnxSession.create(prefillModel, sessionOptions);
      } catch (e) {
        await decode.release();
        throw e;
      }
    }
    return new LlamaGenerator(
      model,
      { prefill, decode, decodeOps: decodeModel.graph.nodes.length },
      loraSites,
    );
  }

  /** Releases both sessions. */
  async release(): Promise<void> {
    await Promise.all([this.#prefill?.release(), this.#decode.release()]);
  }

  /**
   * Token ids of a prompt: text is encoded (with BOS as asked), an empty prompt becomes BOS alone.
   *
   * @param prompt Text or token ids.
   * @param addBos Put BOS before text.
   * @returns The ids.
   * @throws {RangeError} When an id is outside the vocabulary or the prompt is empty and there is no BOS.
   */
  promptIds(prompt: string | readonly number[], addBos?: boolean): number[] {
    const ids = typeof prompt === "string" ? this.tokenizer.encode(prompt, { addBos }) : [...prompt];
    if (ids.length === 0) {
      const bos = this.tokenizer.bosId ?? this.config.bosTokenId;
      if (bos === undefined) {
        throw new RangeError("Cannot generate from an empty prompt: the model has no BOS token");
      }
      ids.push(bos);
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new RangeError(
          `Cannot generate: prompt token id ${id} is outside the vocabulary [0, ${this.config.vocabSize})`,
        );
      }
    }
    return ids;
  }

  /**
   * Generates for a batch of prompts, streaming pieces as tokens are sampled (rows interleaved, one piece
   * per active row per step). Leaving the loop early frees the cache.
   *
   * @param prompts Text or token-id prompts (`""` means BOS alone).
   * @param options Sampling, limits, stop strings, adapter.
   * @returns An async iterator of pieces; each row's last piece has `finishReason`.
   * @throws {RangeError} On bad options, or a prompt longer than the model's context.
   */
  async *stream(
    prompts: readonly (string | readonly number[])[],
    options: GenerateOptions = {},
  ): AsyncGenerator<GeneratedPiece> {
    validateSampling(options);
    const maxTokens = options.maxTokens ?? 256;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new RangeError(`Invalid max tokens ${maxTokens}: it must be a positive integer`);
    }
    if (prompts.length === 0) throw new RangeError("Cannot generate: no prompts");
    const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
    const eos = new Set(
      options.ignoreEos ? [] : options.eosTokenIds ?? [...this.tokenizer.eosIds, ...this.config.eosTokenIds],
    );
    const context = this.config.maxPositionEmbeddings;
    const rows: RowState[] = prompts.map((prompt, i) => {
      const ids = this.promptIds(prompt, options.addBos);
      if (ids.length >= context) {
        throw new RangeError(
          `Cannot generate for prompt ${i}: it has ${ids.length} tokens, the model's context is ${context}`,
        );
      }
      if (options.ignoreEos && ids.length + maxTokens > context) {
        throw new RangeError(
          `Cannot generate exactly ${maxTokens} tokens (ignoreEos) for prompt ${i}: its ${ids.length} tokens plus ${maxTokens} exceed the model's context of ${context}`,
        );
      }
      const decoder = this.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
      // prime the decoder with the prompt's tail so the first generated piece keeps its leading space
      for (const id of ids.slice(-4)) decoder.push(id);
      return {
        ids,
        generated: [],
        rng: new Prng(seed),
        decoder,
        stop: new StopMatcher(options.stop ?? []),
        done: false,
        nextPosition: ids.length,
      };
    });
    const lora = this.loraSites.length > 0 ? this.#loraFeeds(options.adapter) : {};
    const batch = rows.length;
    const width = Math.max(...rows.map((r) => r.ids.length));
    let mask = new BigInt64Array(batch * width);
    const inputIds = new BigInt64Array(batch * width);
    const positions = new BigInt64Array(batch * width);
    rows.forEach((row, r) => {
      const pad = width - row.ids.length;
      for (let t = 0; t < width; t++) {
        const real = t >= pad;
        inputIds[r * width + t] = BigInt(real ? row.ids[t - pad] : 0);
        positions[r * width + t] = BigInt(real ? t - pad : 0);
        mask[r * width + t] = real ? 1n : 0n;
      }
    });
    let total = width;
    const stats: GenerationStats = {
      batch,
      prefillTokens: width,
      prefillMs: 0,
      decodeSteps: 0,
      decodeMs: 0,
      decodeRunMs: 0,
    };
    this.stats = stats;
    const started = performance.now();
    const prefillFeeds: Record<string, OrtTensor> = {
      input_ids: hostTensor(inputIds, [batch, width]),
      position_ids: hostTensor(positions, [batch, width]),
      attention_mask: hostTensor(mask, [batch, width]),
      ...lora,
    };
    if (!this.#prefill) {
      // the decode graph with an empty past (wasm handles zero-sized tensors)
      const empty = hostTensor(new Float32Array(0), [
        batch,
        this.config.numKeyValueHeads,
        0,
        this.config.headDim,
      ]);
      for (let l = 0; l < this.config.numHiddenLayers; l++) {
        const n = kvCacheNames(l);
        prefillFeeds[n.pastKey] = empty;
        prefillFeeds[n.pastValue] = empty;
      }
    }
    let out: Record<string, OrtTensor> | undefined = await (this.#prefill ?? this.#decode).run(prefillFeeds);
    try {
      let logits = (await out.logits.getData()) as Float32Array;
      stats.prefillMs = performance.now() - started;
      const decodeStart = performance.now();
      const vocab = this.config.vocabSize;
      const sampled = Math.min(vocab, this.tokenizer.vocabSize ?? vocab); // ids the tokenizer can decode
      for (let step = 0;; step++) {
        // sample one token per active row and turn it into text
        const next: number[] = [];
        for (const [r, row] of rows.entries()) {
          if (row.done) {
            next.push(row.ids[row.ids.length - 1]);
            continue;
          }
          const token = sampleToken(logits.subarray(r * vocab, r * vocab + sampled), options, row.rng);
          next.push(token);
          const piece = this.#advance(row, r, token, { eos, maxTokens, context });
          yield piece;
        }
        if (rows.every((row) => row.done)) break;
        options.signal?.throwIfAborted();
        // decode step: the sampled tokens at each row's next position, over the grown cache
        mask = growMask(mask, batch, total);
        total++;
        const feeds: Record<string, OrtTensor> = {
          input_ids: hostTensor(BigInt64Array.from(next, BigInt), [batch, 1]),
          position_ids: hostTensor(BigInt64Array.from(rows, (row) => BigInt(row.nextPosition - 1)), [
            batch,
            1,
          ]),
          attention_mask: hostTensor(mask, [batch, total]),
          ...lora,
        };
        for (let l = 0; l < this.config.numHiddenLayers; l++) {
          const n = kvCacheNames(l);
          feeds[n.pastKey] = out[n.key];
          feeds[n.pastValue] = out[n.value];
        }
        const runStart = performance.now();
        const previous: Record<string, OrtTensor> = out;
        out = await this.#decode.run(feeds);
        stats.decodeRunMs += performance.now() - runStart;
        disposeTensors(Object.values(previous));
        logits = (await out.logits.getData()) as Float32Array;
        stats.decodeSteps = step + 1;
        stats.decodeMs = performance.now() - decodeStart;
      }
    } finally {
      if (out) disposeTensors(Object.values(out));
    }
  }

  /**
   * Generates for a batch of prompts and collects each row's result.
   *
   * @param prompts Text or token-id prompts.
   * @param options Sampling, limits, stop strings, adapter.
   * @returns One result per prompt, in order.
   */
  async generate(
    prompts: readonly (string | readonly number[])[],
    options: GenerateOptions = {},
  ): Promise<GenerationResult[]> {
    const results: GenerationResult[] = prompts.map(() => ({
      text: "",
      tokenIds: [],
      promptTokenIds: [],
      finishReason: "length",
    }));
    for await (const piece of this.stream(prompts, options)) {
      const result = results[piece.row];
      result.text += piece.text;
      if (piece.finishReason !== "eos") result.tokenIds.push(piece.tokenId);
      if (piece.finishReason) result.finishReason = piece.finishReason;
    }
    prompts.forEach((p, i) => (results[i].promptTokenIds = this.promptIds(p, options.addBos)));
    return results;
  }

  /** Records a sampled token on a row and returns its piece (ending the row when it should). */
  #advance(
    row: RowState,
    r: number,
    token: number,
    limits: { eos: ReadonlySet<number>; maxTokens: number; context: number },
  ): GeneratedPiece {
    row.ids.push(token);
    row.generated.push(token);
    row.nextPosition++;
    if (limits.eos.has(token)) {
      row.done = true;
      const tail = row.stop.finish(row.decoder.flush());
      return { row: r, tokenId: token, text: tail.text, finishReason: tail.stopped ? "stop" : "eos" };
    }
    const { text, stopped } = row.stop.push(row.decoder.push(token));
    if (stopped) {
      row.done = true;
      return { row: r, tokenId: token, text, finishReason: "stop" };
    }
    if (row.generated.length >= limits.maxTokens || row.nextPosition >= limits.context) {
      row.done = true;
      const tail = row.stop.finish(row.decoder.flush());
      return {
        row: r,
        tokenId: token,
        text: text + tail.text,
        finishReason: tail.stopped ? "stop" : "length",
      };
    }
    return { row: r, tokenId: token, text };
  }

  #loraFeeds(adapter: ReadonlyMap<string, LoraSiteTensors> | undefined): Record<string, OrtTensor> {
    if (!adapter) {
      throw new TypeError(
        `Cannot generate: the generator takes LoRA inputs for ${this.loraSites.length} sites, but no adapter was given`,
      );
    }
    return loraFeeds(this.loraSites, adapter);
  }
}

/** The mask of the next step: each row's mask `[batch, total]` plus a 1 for the new token. */
function growMask(mask: BigInt64Array, batch: number, total: number): BigInt64Array<ArrayBuffer> {
  const grown = new BigInt64Array(batch * (total + 1));
  for (let r = 0; r < batch; r++) {
    grown.set(mask.subarray(r * total, (r + 1) * total), r * (total + 1));
    grown[r * (total + 1) + total] = 1n;
  }
  return grown;
}
