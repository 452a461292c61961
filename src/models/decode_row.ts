/**
 * {@linkcode Row}: one generated sequence inside a batch — its sampler, incremental text, stop strings and
 * limits — and the request and event types every decode loop (CLI generator, server batch runner) shares.
 *
 * @module
 */

import type { Tokenizer } from "../io/tokenizer.ts";
import { Prng, sampleToken, type SamplingOptions } from "./sampling.ts";
import { StopMatcher } from "./stop_matcher.ts";

/** One sequence to generate. */
export interface RowRequest extends SamplingOptions {
  /** Unique id (assigned by the engine). */
  id: number;
  /** Prompt token ids (BOS included when wanted), shorter than the model's context. */
  promptIds: number[];
  /** Most tokens to generate (the EOS token counts). */
  maxTokens: number;
  /** PRNG seed of this row. */
  seed: number;
  /** Stop strings (the row ends before the first; it is not emitted). */
  stop: string[];
  /** Report log-probabilities with this many alternatives (0: only the sampled token's); omit for none. */
  logprobs?: number;
  /** Token ids that end the row. @default the tokenizer's and the config's EOS ids */
  eosIds?: number[];
}

/** A token alternative with its log-probability. */
export interface TopLogprob {
  /** Vocabulary text (`▁` shown as a space). */
  token: string;
  /** Token id. */
  tokenId: number;
  /** Natural log of its probability under the model (temperature 1). */
  logprob: number;
}

/** The sampled token's log-probability and the most likely alternatives. */
export interface TokenLogprob extends TopLogprob {
  /** The most likely tokens, best first. */
  top: TopLogprob[];
}

/** Why a row ended. */
export type RowFinishReason = "eos" | "stop" | "length" | "cancelled" | "error";

/** What a row produced at one step. */
export interface RowEvent {
  /** The row. */
  id: number;
  /** The sampled token (absent on `cancelled` and `error`). */
  tokenId?: number;
  /** Text this token completes (often `""`). */
  text: string;
  /** Present when the row asked for log-probabilities. */
  logprob?: TokenLogprob;
  /** Set on the row's last event. */
  finishReason?: RowFinishReason;
  /** The failure, on `error`. */
  error?: string;
}

/** The tokenizer members a decode loop uses (`idToToken` only for log-probabilities). */
export type RunnerTokenizer =
  & Pick<Tokenizer, "eosIds" | "createStreamDecoder">
  & Partial<Pick<Tokenizer, "idToToken">>;

/** The text of one vocabulary entry for logprobs (SentencePiece's `▁` shown as a space). */
export function tokenText(tokenizer: RunnerTokenizer, id: number): string {
  return (tokenizer.idToToken?.(id) ?? "").replaceAll("\u2581", " ");
}

/** A row of a running batch. */
export class Row<A = unknown> {
  /** What was asked. */
  readonly request: RowRequest;
  /** The row's adapter (whatever the caller uses to feed it), or null for the base model. */
  readonly adapter: A | null;
  /** Positions in the cache (prompt plus tokens fed back). */
  len: number;
  /** The latest sampled token, fed at the next decode step. */
  lastToken = 0;
  /** Tokens generated so far. */
  generated = 0;
  /** No more tokens are needed (finished, cancelled or failed). */
  done = false;
  #rng: Prng;
  #decoder: ReturnType<RunnerTokenizer["createStreamDecoder"]>;
  #stop: StopMatcher;
  #eos: ReadonlySet<number>;
  #tokenizer: RunnerTokenizer;
  #context: number;
  #sampledVocab: number;

  /**
   * @param request The row's prompt, limits and sampling.
   * @param adapter Its adapter, or null.
   * @param env Tokenizer, default EOS ids, the model's context and the ids that may be sampled.
   */
  constructor(
    request: RowRequest,
    adapter: A | null,
    env: { tokenizer: RunnerTokenizer; eosIds: readonly number[]; context: number; sampledVocab?: number },
  ) {
    this.request = request;
    this.adapter = adapter;
    this.len = request.promptIds.length;
    this.#rng = new Prng(request.seed);
    this.#tokenizer = env.tokenizer;
    this.#decoder = env.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    // prime the decoder with the prompt's tail so the first generated piece keeps its leading space
    for (const id of request.promptIds.slice(-4)) this.#decoder.push(id);
    this.#stop = new StopMatcher(request.stop);
    this.#eos = new Set(request.eosIds ?? env.eosIds);
    this.#context = env.context;
    this.#sampledVocab = env.sampledVocab ?? Infinity;
  }

  /**
   * Samples the next token from this row's logits and returns the event to emit.
   *
   * @param logits The row's logits over the vocabulary.
   * @returns The event (with `finishReason` when the row ends).
   */
  step(logits: Float32Array): RowEvent {
    const { request } = this;
    const token = sampleToken(
      this.#sampledVocab < logits.length ? logits.subarray(0, this.#sampledVocab) : logits,
      request,
      this.#rng,
    );
    const logprob = request.logprobs === undefined
      ? undefined
      : this.#logprob(logits, token, request.logprobs);
    this.lastToken = token;
    this.generated++;
    const event = (text: string, finishReason?: RowEvent["finishReason"]): RowEvent => {
      const e: RowEvent = { id: request.id, tokenId: token, text };
      if (logprob) e.logprob = logprob;
      if (finishReason) {
        e.finishReason = finishReason;
        this.done = true;
      }
      return e;
    };
    if (this.#eos.has(token)) {
      const tail = this.#stop.finish(this.#decoder.flush());
      return event(tail.text, tail.stopped ? "stop" : "eos");
    }
    const { text, stopped } = this.#stop.push(this.#decoder.push(token));
    if (stopped) return event(text, "stop");
    if (this.generated >= request.maxTokens || this.len + 1 >= this.#context) {
      const tail = this.#stop.finish(this.#decoder.flush());
      return event(text + tail.text, tail.stopped ? "stop" : "length");
    }
    return event(text);
  }

  #logprob(logits: Float32Array, token: number, top: number): TokenLogprob {
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
    const logZ = max + Math.log(sum);
    const result: TokenLogprob = {
      token: tokenText(this.#tokenizer, token),
      tokenId: token,
      logprob: logits[token] - logZ,
      top: [],
    };
    if (top > 0) {
      const best: number[] = [];
      for (let i = 0; i < logits.length; i++) {
        if (best.length === top && logits[i] <= logits[best[top - 1]]) continue;
        let at = best.length;
        while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
        best.splice(at, 0, i);
        if (best.length > top) best.pop();
      }
      result.top = best.map((id) => ({
        token: tokenText(this.#tokenizer, id),
        tokenId: id,
        logprob: logits[id] - logZ,
      }));
    }
    return result;
  }
}
