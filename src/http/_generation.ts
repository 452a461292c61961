// Shared by the completion and chat routes: model resolution, prompt checks, row planning, running a job
// to completion or as an SSE stream, and OpenAI's response pieces (ids, finish reasons, usage, logprobs).

import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import {
  EngineBusyError,
  EngineClosedError,
  type JobEvent,
  type JobRow,
  JobTooLargeError,
  ModelNotFoundError,
  type ModelRef,
  type ServeEngine,
  TenantRowQuotaError,
} from "../serve/engine.ts";
import { InvalidAdapterError } from "../serve/prepared_adapter.ts";
import type { TokenLogprob } from "../serve/runner_types.ts";
import { validateStoreName } from "../store/adapter_store.ts";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { AppEnv } from "./context.ts";
import { ApiError, type ApiErrorBody } from "./errors.ts";
import { RequestTimeoutError } from "./limits.ts";
import type { ServeMetrics } from "./metrics.ts";

/** What the inference routes share. */
export interface InferenceContext {
  /** The engine. */
  engine: ServeEngine;
  /** Metrics, when collected. */
  metrics?: ServeMetrics;
  /** Most tokens one choice may generate. */
  maxTokensCap: number;
}

/**
 * The model a request names: the base model or one of the tenant's adapters, resolved by the engine (which
 * keeps the adapter's tensors; the route only holds the reference).
 */
export async function resolveModel(ctx: InferenceContext, tenant: string, model: string): Promise<ModelRef> {
  const notFound = () =>
    new ApiError(404, `The model "${model}" does not exist or you do not have access to it`, {
      param: "model",
      code: "model_not_found",
    });
  if (model !== ctx.engine.modelId) {
    try {
      validateStoreName("adapter name", model);
    } catch {
      throw notFound();
    }
  }
  try {
    return await ctx.engine.resolveModel(tenant, model);
  } catch (e) {
    if (e instanceof ModelNotFoundError) throw notFound();
    if (e instanceof InvalidAdapterError) {
      throw new ApiError(500, `The stored adapter "${model}" cannot be used: ${e.message}`, {
        code: "adapter_invalid",
      });
    }
    throw e;
  }
}

/** Refuses an option this server does not implement. */
export function unsupported(param: string, what: string): never {
  throw new ApiError(400, `${what} is not supported by this server`, {
    param,
    code: "unsupported_parameter",
  });
}

/** Sampling and limits common to both routes. */
export interface PlanOptions {
  /** `max_tokens` as asked (undefined: the route's default). */
  maxTokens: number | null | undefined;
  /** Default when `max_tokens` is absent: a number, or `"context"` for all the room left. */
  defaultMaxTokens: number | "context";
  /** Choices per prompt. */
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | null | undefined;
  stop: string[];
  logprobs: number | undefined;
}

const pieceBytes = new WeakMap<object, number>();

/**
 * The most UTF-8 bytes a prompt that fits the context can have: context × the longest vocabulary piece,
 * doubled for normalisation. A longer prompt cannot fit whatever its tokens, so it is refused before it
 * is encoded (encoding costs ~4 µs per byte on the request thread).
 *
 * @param engine The engine, or a model (tokenizer and context).
 * @returns The limit in bytes.
 */
export function promptByteLimit(engine: {
  tokenizer: Pick<Tokenizer, "vocabSize" | "idToToken">;
  config: { maxPositionEmbeddings: number };
}): number {
  let longest = pieceBytes.get(engine.tokenizer);
  if (longest === undefined) {
    const utf8 = new TextEncoder();
    longest = 1;
    for (let id = 0; id < engine.tokenizer.vocabSize; id++) {
      const piece = engine.tokenizer.idToToken(id);
      if (piece !== undefined && piece.length * 3 > longest) {
        longest = Math.max(longest, utf8.encode(piece).byteLength);
      }
    }
    pieceBytes.set(engine.tokenizer, longest);
  }
  return engine.config.maxPositionEmbeddings * longest * 2;
}

/**
 * Refuses (400) a prompt text that cannot fit the context, without encoding it.
 *
 * @param ctx The inference context.
 * @param text The prompt text.
 * @param param The request field, for the error.
 * @throws {ApiError} 400 `context_length_exceeded`.
 */
export function checkPromptText(ctx: InferenceContext, text: string, param: string): void {
  const limit = promptByteLimit(ctx.engine);
  // UTF-16 units never exceed UTF-8 bytes: count bytes only for a text that might still fit
  const bytes = text.length > limit ? text.length : new TextEncoder().encode(text).byteLength;
  if (bytes > limit) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${ctx.engine.config.maxPositionEmbeddings} tokens, but ${param} ` +
        `has ${
          text.length > limit ? "over " : ""
        }${bytes} bytes, more than the ${limit} that many tokens can ` +
        "hold; shorten the prompt",
      { param, code: "context_length_exceeded" },
    );
  }
}

/**
 * Encodes prompt texts after checking them all ({@linkcode checkPromptText}), letting other requests run
 * between prompts (each is bounded by the check).
 *
 * @param ctx The inference context.
 * @param texts The prompts and their request fields.
 * @param encode Encodes one text.
 * @returns The token ids of each.
 */
export async function encodePrompts(
  ctx: InferenceContext,
  texts: { text: string; param: string }[],
  encode: (text: string) => number[],
): Promise<number[][]> {
  for (const t of texts) checkPromptText(ctx, t.text, t.param);
  const out: number[][] = [];
  for (const t of texts) {
    if (out.length > 0) await new Promise((resolve) => setTimeout(resolve, 0));
    out.push(encode(t.text));
  }
  return out;
}

/** Checks prompts against the context and the caps, and makes the rows (prompt-major, `n` per prompt). */
export function planRows(ctx: InferenceContext, prompts: number[][], options: PlanOptions): JobRow[] {
  const context = ctx.engine.config.maxPositionEmbeddings;
  const cap = ctx.maxTokensCap;
  if (options.maxTokens != null && options.maxTokens > cap) {
    throw new ApiError(400, `max_tokens is ${options.maxTokens}, but this server's limit is ${cap}`, {
      param: "max_tokens",
      code: "max_tokens_exceeded",
    });
  }
  const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
  const rows: JobRow[] = [];
  prompts.forEach((promptIds, p) => {
    const room = context - promptIds.length;
    const asked = options.maxTokens ??
      (options.defaultMaxTokens === "context" ? room : options.defaultMaxTokens);
    if (room < 1 || (options.maxTokens != null && promptIds.length + options.maxTokens > context)) {
      const completion = options.maxTokens ?? 1;
      throw new ApiError(
        400,
        `This model's maximum context length is ${context} tokens, but you requested ${
          promptIds.length + completion
        } tokens (${promptIds.length} in prompt ${p}, ${completion} for the completion); shorten the prompt or lower max_tokens`,
        { param: prompts.length > 1 ? `prompt[${p}]` : "prompt", code: "context_length_exceeded" },
      );
    }
    const maxTokens = Math.max(1, Math.min(asked, room, cap));
    for (let j = 0; j < options.n; j++) {
      rows.push({
        promptIds,
        maxTokens,
        seed: (seed + p * options.n + j) % Number.MAX_SAFE_INTEGER,
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        stop: options.stop,
        logprobs: options.logprobs,
      });
    }
  });
  return rows;
}

/** A finished or running choice. */
export interface ChoiceState {
  /** Generated text so far. */
  text: string;
  /** Tokens generated (EOS excluded). */
  tokens: number;
  /** OpenAI finish reason, once ended. */
  finish: "stop" | "length" | null;
  /** Per-token log-probabilities, when asked. */
  logprobs: TokenLogprob[];
}

/** The OpenAI finish reason of a row event, or the error it means. */
function finishOf(e: JobEvent, signal: AbortSignal): "stop" | "length" | null {
  switch (e.finishReason) {
    case undefined:
      return null;
    case "eos":
    case "stop":
      return "stop";
    case "length":
      return "length";
    case "cancelled":
      if (signal.reason instanceof RequestTimeoutError) {
        throw new ApiError(504, `${signal.reason.message}; ask for fewer tokens or retry`, {
          code: "request_timeout",
        });
      }
      throw new ApiError(499 as ContentfulStatusCode, "The client closed the request", {
        code: "client_closed_request",
      });
    case "error":
      throw new ApiError(500, `Generation failed: ${e.error ?? "unknown error"}`, {
        code: "generation_failed",
      });
  }
}

/** Applies events to the choices; returns the choices each event touched, in order. */
export function applyEvents(choices: ChoiceState[], events: JobEvent[], signal: AbortSignal): void {
  for (const e of events) {
    const choice = choices[e.row];
    const finish = finishOf(e, signal);
    choice.text += e.text;
    if (e.tokenId !== undefined && e.finishReason !== "eos") choice.tokens++;
    if (e.logprob) choice.logprobs.push(e.logprob);
    if (finish) choice.finish = finish;
  }
}

/** Starts a job, turning engine refusals into 503s (busy, closing), a 400 (larger than the queue) or a
 * 429 (a tenant over its rows quota). */
export function startJob(
  ctx: InferenceContext,
  job: { rows: JobRow[]; model: ModelRef; signal: AbortSignal },
): AsyncGenerator<JobEvent[]> {
  try {
    return ctx.engine.generate(job);
  } catch (e) {
    if (e instanceof JobTooLargeError) {
      throw new ApiError(400, `${e.message} (prompts × n); send fewer prompts or a smaller n`, {
        param: "n",
        code: "too_many_rows",
      });
    }
    if (e instanceof TenantRowQuotaError) {
      throw new ApiError(429, e.message, { param: "concurrent_rows", code: "quota_exceeded" });
    }
    if (e instanceof EngineBusyError || e instanceof EngineClosedError) {
      throw new ApiError(503, e.message, {
        code: e instanceof EngineBusyError ? "server_busy" : "shutting_down",
      });
    }
    throw e;
  }
}

/** Runs a job to the end. */
export async function collect(
  ctx: InferenceContext,
  job: { rows: JobRow[]; model: ModelRef; signal: AbortSignal },
): Promise<ChoiceState[]> {
  const choices = job.rows.map((): ChoiceState => ({ text: "", tokens: 0, finish: null, logprobs: [] }));
  for await (const events of startJob(ctx, job)) applyEvents(choices, events, job.signal);
  return choices;
}

/** Token counts of a request. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Usage of prompts (each counted once) and choices. */
export function usageOf(prompts: number[][], choices: ChoiceState[]): Usage {
  const prompt = prompts.reduce((n, p) => n + p.length, 0);
  const completion = choices.reduce((n, c) => n + c.tokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Usage of a finished request ({@linkcode usageOf}), counted in the metrics. */
export function countUsage(ctx: InferenceContext, prompts: number[][], choices: ChoiceState[]): Usage {
  const usage = usageOf(prompts, choices);
  ctx.metrics?.tokens.inc({ kind: "prompt" }, usage.prompt_tokens);
  ctx.metrics?.tokens.inc({ kind: "completion" }, usage.completion_tokens);
  return usage;
}

/** A response id with a prefix (`cmpl-…`, `chatcmpl-…`). */
export function responseId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

/**
 * Streams a job as Server-Sent Events: `chunk(events, choices)` makes the chunks of each batch of
 * events, `final(choices)` the closing ones; then `data: [DONE]`. A failure after the stream began is
 * sent as an OpenAI error event.
 */
export function streamJob(
  c: Context<AppEnv>,
  ctx: InferenceContext,
  job: { rows: JobRow[]; model: ModelRef; signal: AbortSignal },
  shape: {
    chunks: (events: JobEvent[], choices: ChoiceState[]) => unknown[];
    final: (choices: ChoiceState[]) => unknown[];
  },
): Response {
  const controller = new AbortController();
  const signal = AbortSignal.any([job.signal, controller.signal]);
  const events = startJob(ctx, { ...job, signal });
  const choices = job.rows.map((): ChoiceState => ({ text: "", tokens: 0, finish: null, logprobs: [] }));
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => controller.abort());
    try {
      for await (const batch of events) {
        applyEvents(choices, batch, job.signal);
        for (const chunk of shape.chunks(batch, choices)) {
          await stream.writeSSE({ data: JSON.stringify(chunk) });
        }
      }
      for (const chunk of shape.final(choices)) await stream.writeSSE({ data: JSON.stringify(chunk) });
    } catch (e) {
      const body: ApiErrorBody = e instanceof ApiError
        ? e.body
        : { message: (e as Error).message, type: "server_error", param: null, code: null };
      if (!stream.aborted) await stream.writeSSE({ data: JSON.stringify({ error: body }) });
    }
    if (!stream.aborted) await stream.writeSSE({ data: "[DONE]" });
  });
}

/** OpenAI's legacy completion logprobs. */
export function completionLogprobs(list: TokenLogprob[]): Record<string, unknown> {
  let offset = 0;
  const textOffset = list.map((l) => {
    const at = offset;
    offset += l.token.length;
    return at;
  });
  return {
    tokens: list.map((l) => l.token),
    token_logprobs: list.map((l) => l.logprob),
    top_logprobs: list.map((l) => Object.fromEntries(l.top.map((t) => [t.token, t.logprob]))),
    text_offset: textOffset,
  };
}

/** OpenAI's chat logprobs. */
export function chatLogprobs(list: TokenLogprob[], top: boolean): Record<string, unknown> {
  const bytes = (s: string) => [...new TextEncoder().encode(s)];
  return {
    content: list.map((l) => ({
      token: l.token,
      logprob: l.logprob,
      bytes: bytes(l.token),
      top_logprobs: top
        ? l.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) }))
        : [],
    })),
    refusal: null,
  };
}
