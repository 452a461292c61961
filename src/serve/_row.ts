// One generated sequence inside a batch: its sampler, incremental text, stop strings and limits.

import type { Tokenizer } from "../io/tokenizer.ts";
import { Prng, sampleToken } from "../models/sampling.ts";
import { StopMatcher } from "../models/stop_matcher.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";
import type { RowEvent, RowRequest, TokenLogprob } from "./runner_types.ts";

/** The tokenizer members a runner uses. */
export type RunnerTokenizer = Pick<Tokenizer, "eosIds" | "createStreamDecoder" | "idToToken">;

/** The text of one vocabulary entry for logprobs (SentencePiece's `▁` shown as a space). */
export function tokenText(tokenizer: RunnerTokenizer, id: number): string {
  return (tokenizer.idToToken(id) ?? "").replaceAll("\u2581", " ");
}

/** A row of a running batch. */
export class Row {
  readonly request: RowRequest;
  readonly adapter: PreparedAdapter | null;
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

  constructor(
    request: RowRequest,
    adapter: PreparedAdapter | null,
    env: { tokenizer: RunnerTokenizer; eosIds: readonly number[]; context: number },
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
  }

  /** The adapter slot key (`""` for the base model). */
  get slotKey(): string {
    return this.adapter?.key ?? "";
  }

  /**
   * Samples the next token from this row's logits and returns the event to emit.
   *
   * @param logits The row's logits over the vocabulary.
   * @returns The event (with `finishReason` when the row ends).
   */
  step(logits: Float32Array): RowEvent {
    const { request } = this;
    const token = sampleToken(logits, request, this.#rng);
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
