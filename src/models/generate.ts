/**
 * {@linkcode LlamaGenerator}: text generation with a KV cache on onnxruntime-web, on the toolkit's one
 * decode path ({@linkcode BatchDecoder} over the model family's fused graphs, the same path the server's
 * batch runner drives). A request prefills its prompts (right-padded; each row's positions start at 0),
 * then decodes one token per step with the previous step's `present_kv` fed back as `past_kv` (kept on the
 * GPU on WebGPU); finished rows leave the batch. On WebGPU the prefill is its own graph (zero-sized tensors
 * fail there); on wasm the decode graph also serves the prefill, fed an empty past, so the base weights are
 * held once.
 *
 * A row gets the same tokens in a batch as alone. Sampling is per row with its own seeded PRNG; text is
 * decoded incrementally, so a character split over byte-fallback tokens is emitted whole, and stop strings
 * are never emitted in part.
 *
 * @module
 */

import type { Tokenizer } from "../io/tokenizer.ts";
import {
  type ExecutionProvider,
  type ExecutionProviderChoice,
  resolveExecutionProvider,
} from "../runtime/execution_provider.ts";
import type { OrtTensor } from "../runtime/session.ts";
import {
  BatchDecoder,
  createDecoderSessions,
  type DecoderSessions,
  releaseDecoderSessions,
} from "./batch_decoder.ts";
import type { LlamaConfig } from "./config.ts";
import { Row } from "./decode_row.ts";
import type { LlamaWeights } from "./llama/forward.ts";
import { modelFamily } from "./families.ts";
import { loraFeeds, type LoraSiteTensors } from "./lora_inputs.ts";
import { type SamplingOptions, validateSampling } from "./sampling.ts";

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
  #sessions: DecoderSessions;

  private constructor(
    model: GeneratorModel,
    sessions: DecoderSessions,
    graph: { decodeOps: number; loraSites: readonly string[] },
  ) {
    this.config = model.config;
    this.tokenizer = model.tokenizer;
    this.#sessions = sessions;
    this.decodeOps = graph.decodeOps;
    this.loraSites = graph.loraSites;
  }

  /** The execution provider the sessions run on. */
  get ep(): ExecutionProvider {
    return this.#sessions.decode.ep;
  }

  /**
   * Builds the fused graphs and their sessions (decode; and prefill on WebGPU).
   *
   * @param model Config, weights and tokenizer.
   * @param options Execution provider and LoRA sites.
   * @returns The generator.
   * @throws {Error} When a weight is missing or misshapen, or onnxruntime rejects a graph.
   */
  static async create(model: GeneratorModel, options: LlamaGeneratorOptions = {}): Promise<LlamaGenerator> {
    const loraSites = [...(options.loraSites ?? [])];
    const ep = await resolveExecutionProvider(options.ep ?? "auto");
    const family = modelFamily(model.config);
    const decode = family.buildFusedGraph(model, { kind: "decode", loraSites });
    const prefill = ep === "webgpu"
      ? family.buildFusedGraph(model, { kind: "prefill", loraSites })
      : undefined;
    const sessions = await createDecoderSessions({ decode, prefill, ep, label: "generator" });
    return new LlamaGenerator(model, sessions, { decodeOps: decode.graph.nodes.length, loraSites });
  }

  /** Releases the sessions. */
  async release(): Promise<void> {
    await releaseDecoderSessions(this.#sessions);
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
    const eosIds = options.ignoreEos
      ? []
      : [...(options.eosTokenIds ?? [...this.tokenizer.eosIds, ...this.config.eosTokenIds])];
    const context = this.config.maxPositionEmbeddings;
    const env = {
      tokenizer: this.tokenizer,
      eosIds,
      context,
      sampledVocab: Math.min(this.config.vocabSize, this.tokenizer.vocabSize ?? this.config.vocabSize),
    };
    const rows = prompts.map((prompt, i) => {
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
      const request = {
        ...options,
        id: i,
        promptIds: ids,
        maxTokens,
        seed,
        stop: [...(options.stop ?? [])],
        eosIds,
      };
      return new Row(request, null, env);
    });
    const lora = this.loraSites.length > 0 ? this.#loraFeeds(options.adapter) : {};
    const decoder = new BatchDecoder(this.config, this.#sessions); // one cache per request
    const stats: GenerationStats = {
      batch: rows.length,
      prefillTokens: Math.max(...rows.map((r) => r.len)),
      prefillMs: 0,
      decodeSteps: 0,
      decodeMs: 0,
      decodeRunMs: 0,
    };
    this.stats = stats;
    const vocab = this.config.vocabSize;
    try {
      const started = performance.now();
      let logits = await decoder.prefill(rows.map((r) => r.request.promptIds), lora);
      stats.prefillMs = performance.now() - started;
      let active = rows;
      const decodeStart = performance.now();
      for (;;) {
        // sample one token per active row and turn it into text
        for (const [r, row] of active.entries()) {
          const event = row.step(logits.subarray(r * vocab, (r + 1) * vocab));
          yield {
            row: row.request.id,
            tokenId: event.tokenId!,
            text: event.text,
            finishReason: event.finishReason as FinishReason | undefined,
          };
        }
        // finished rows leave the batch
        const keep = active.flatMap((row, r) => (row.done ? [] : [r]));
        if (keep.length === 0) break;
        if (keep.length < active.length) {
          await decoder.keep(keep);
          active = keep.map((r) => active[r]);
        }
        options.signal?.throwIfAborted();
        // decode step: each row's sampled token at its next position
        logits = await decoder.decode(active.map((row) => row.lastToken), lora);
        for (const row of active) row.len++;
        stats.decodeRunMs += decoder.lastPass!.runMs;
        stats.decodeSteps++;
        stats.decodeMs = performance.now() - decodeStart;
      }
    } finally {
      decoder.clear();
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

  #loraFeeds(adapter: ReadonlyMap<string, LoraSiteTensors> | undefined): Record<string, OrtTensor> {
    if (!adapter) {
      throw new TypeError(
        `Cannot generate: the generator takes LoRA inputs for ${this.loraSites.length} sites, but no adapter was given`,
      );
    }
    return loraFeeds(this.loraSites, adapter);
  }
}
