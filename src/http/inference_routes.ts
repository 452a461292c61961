/**
 * The OpenAI-compatible inference routes: `GET /v1/models`, `GET /v1/models/{id}`,
 * `POST /v1/completions` and `POST /v1/chat/completions` (JSON or SSE streaming). `model` is the base
 * model's id or one of the caller's adapter names; the adapter's tensors are fed to the shared sessions,
 * nothing is reloaded or merged.
 *
 * Chat prompts are rendered with the model's chat template; a model without one gets
 * {@linkcode DEFAULT_CHAT_TEMPLATE} (a plain `User:` / `Assistant:` transcript) and the stop string
 * `"\nUser:"`, so that the model does not write the user's next turn.
 *
 * @module
 */

import { Hono } from "hono";
import { DEFAULT_CHAT_STOP, DEFAULT_CHAT_TEMPLATE, renderChatTemplate } from "../io/chat_template.ts";
import type { JobEvent } from "../serve/engine.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";
import {
  chatLogprobs,
  checkPromptText,
  type ChoiceState,
  collect,
  completionLogprobs,
  countUsage,
  encodePrompts,
  type InferenceContext,
  planRows,
  resolveModel,
  responseId,
  streamJob,
  unsupported,
} from "./_generation.ts";
import { chatRequestSchema, completionRequestSchema, jsonBody } from "./schemas.ts";

export { DEFAULT_CHAT_STOP, DEFAULT_CHAT_TEMPLATE };

/** Options of {@linkcode inferenceRoutes}. */
export interface InferenceRoutesOptions extends InferenceContext {
  /**
   * `max_tokens` of a completion request that sets none (OpenAI's default is 16). Chat requests default
   * to the room left in the context.
   * @default {16}
   */
  defaultCompletionTokens?: number;
  /** Unix time reported as the base model's `created`. @default the time the routes were made */
  created?: number;
}

function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop == null) return [];
  return typeof stop === "string" ? [stop] : stop;
}

/**
 * The inference routes, to mount behind the tenant middleware.
 *
 * @param options Engine, metrics and limits.
 * @returns A Hono app with the routes.
 */
export function inferenceRoutes(options: InferenceRoutesOptions): Hono<AppEnv> {
  const ctx: InferenceContext = options;
  const { engine } = options;
  const created = options.created ?? Math.floor(Date.now() / 1000);
  const app = new Hono<AppEnv>();
  const tokenizer = engine.tokenizer;

  const baseModel = () => ({ id: engine.modelId, object: "model", created, owned_by: "weightlora" });
  const adapterModel = (r: { name: string; createdAt: number; tenant: string }) => ({
    id: r.name,
    object: "model",
    created: r.createdAt,
    owned_by: r.tenant,
    parent: engine.modelId,
    root: engine.modelId,
  });

  app.get("/v1/models", async (c) => {
    const adapters = await engine.store.list(c.get("tenant"));
    return c.json({ object: "list", data: [baseModel(), ...adapters.map(adapterModel)] });
  });

  app.get("/v1/models/:id", async (c) => {
    const id = c.req.param("id");
    if (id === engine.modelId) return c.json(baseModel());
    let record;
    try {
      record = await engine.store.get(c.get("tenant"), id);
    } catch {
      record = undefined;
    }
    if (!record) {
      throw new ApiError(404, `The model "${id}" does not exist or you do not have access to it`, {
        param: "model",
        code: "model_not_found",
      });
    }
    return c.json(adapterModel(record));
  });

  app.post("/v1/completions", jsonBody(completionRequestSchema), async (c) => {
    const body = c.req.valid("json");
    if (body.echo) unsupported("echo", "echo");
    if (body.best_of != null && body.best_of > 1) unsupported("best_of", "best_of greater than 1");
    if (body.suffix) unsupported("suffix", "suffix");
    if (body.logit_bias && Object.keys(body.logit_bias).length > 0) unsupported("logit_bias", "logit_bias");
    if (body.presence_penalty) unsupported("presence_penalty", "A non-zero presence_penalty");
    if (body.frequency_penalty) unsupported("frequency_penalty", "A non-zero frequency_penalty");
    const model = await resolveModel(ctx, c.get("tenant"), body.model);
    const raw = body.prompt;
    const list: (string | number[])[] = typeof raw === "string"
      ? [raw]
      : raw.length > 0 && typeof raw[0] === "number"
      ? [raw as number[]]
      : (raw as (string | number[])[]);
    const vocab = engine.config.vocabSize;
    const texts = list.flatMap((p, i) =>
      typeof p === "string" ? [{ text: p, param: list.length > 1 ? `prompt[${i}]` : "prompt" }] : []
    );
    const encoded = await encodePrompts(
      ctx,
      texts,
      (p) => p === "" && tokenizer.bosId !== undefined ? [tokenizer.bosId] : tokenizer.encode(p),
    );
    const prompts = list.map((p, i) => {
      if (typeof p === "string") {
        const ids = encoded.shift()!;
        if (ids.length === 0) {
          throw new ApiError(400, `Prompt ${i} is empty and the model has no BOS token to start from`, {
            param: "prompt",
            code: "invalid_value",
          });
        }
        return ids;
      }
      const bad = p.find((id) => id >= vocab);
      if (bad !== undefined) {
        throw new ApiError(
          400,
          `Invalid token id ${bad} in prompt ${i}: the vocabulary has ids 0 to ${vocab - 1}`,
          {
            param: "prompt",
            code: "invalid_value",
          },
        );
      }
      return [...p];
    });
    const n = body.n ?? 1;
    const rows = planRows(ctx, prompts, {
      maxTokens: body.max_tokens,
      defaultMaxTokens: options.defaultCompletionTokens ?? 16,
      n,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? 0,
      seed: body.seed,
      stop: stopList(body.stop),
      logprobs: body.logprobs ?? undefined,
    });
    const id = responseId("cmpl");
    const now = Math.floor(Date.now() / 1000);
    const job = { rows, model, signal: c.get("signal") };
    const choice = (index: number, s: ChoiceState, text: string, full: boolean) => ({
      index,
      text,
      logprobs: body.logprobs == null ? null : completionLogprobs(full ? s.logprobs : s.logprobs.slice(-1)),
      finish_reason: s.finish,
    });
    if (body.stream) {
      const includeUsage = body.stream_options?.include_usage === true;
      const base = { id, object: "text_completion", created: now, model: body.model };
      return streamJob(c, ctx, job, {
        chunks: (events: JobEvent[], choices) =>
          events
            .filter((e) => e.text !== "" || e.finishReason || e.logprob)
            .map((e) => ({
              ...base,
              choices: [{
                ...choice(e.row, choices[e.row], e.text, false),
                logprobs: body.logprobs == null || !e.logprob ? null : completionLogprobs([e.logprob]),
                finish_reason: e.finishReason ? choices[e.row].finish : null,
              }],
              ...(includeUsage ? { usage: null } : {}),
            })),
        final: (choices) => {
          const usage = countUsage(ctx, prompts, choices);
          return includeUsage ? [{ ...base, choices: [], usage }] : [];
        },
      });
    }
    const choices = await collect(ctx, job);
    const usage = countUsage(ctx, prompts, choices);
    return c.json({
      id,
      object: "text_completion",
      created: now,
      model: body.model,
      choices: choices.map((s, i) => choice(i, s, s.text, true)),
      usage,
    });
  });

  app.post("/v1/chat/completions", jsonBody(chatRequestSchema), async (c) => {
    const body = c.req.valid("json");
    if (body.tools && body.tools.length > 0) unsupported("tools", "Tool calling");
    if (body.response_format && body.response_format.type !== "text") {
      unsupported("response_format", `response_format "${body.response_format.type}"`);
    }
    if (body.logit_bias && Object.keys(body.logit_bias).length > 0) unsupported("logit_bias", "logit_bias");
    if (body.presence_penalty) unsupported("presence_penalty", "A non-zero presence_penalty");
    if (body.frequency_penalty) unsupported("frequency_penalty", "A non-zero frequency_penalty");
    const model = await resolveModel(ctx, c.get("tenant"), body.model);
    const template = engine.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
    const messages = body.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join(""),
    }));
    // the rendered prompt holds every message: refuse what cannot fit before rendering it
    checkPromptText(ctx, messages.map((m) => m.content).join(""), "messages");
    const bosText = tokenizer.bosId === undefined ? "" : (tokenizer.idToToken(tokenizer.bosId) ?? "");
    const eosText = tokenizer.eosIds.length ? (tokenizer.idToToken(tokenizer.eosIds[0]) ?? "") : "";
    let text: string;
    try {
      text = renderChatTemplate(template, { messages, bosToken: bosText, eosToken: eosText });
    } catch (e) {
      throw new ApiError(400, `Cannot render the chat prompt: ${(e as Error).message}`, {
        param: "messages",
        code: "invalid_messages",
      });
    }
    const prompts = await encodePrompts(
      ctx,
      [{ text, param: "messages" }],
      (text) =>
        bosText !== "" && text.startsWith(bosText)
          ? tokenizer.encode(text, { addBos: false })
          : tokenizer.encode(text),
    );
    const stop = stopList(body.stop);
    if (engine.chatTemplate === undefined && !stop.includes(DEFAULT_CHAT_STOP)) stop.push(DEFAULT_CHAT_STOP);
    const n = body.n ?? 1;
    const rows = planRows(ctx, prompts, {
      maxTokens: body.max_completion_tokens ?? body.max_tokens,
      defaultMaxTokens: "context",
      n,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? 0,
      seed: body.seed,
      stop,
      logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined,
    });
    const id = responseId("chatcmpl");
    const now = Math.floor(Date.now() / 1000);
    const job = { rows, model, signal: c.get("signal") };
    const wantTop = body.top_logprobs != null;
    if (body.stream) {
      const includeUsage = body.stream_options?.include_usage === true;
      const base = {
        id,
        object: "chat.completion.chunk",
        created: now,
        model: body.model,
        system_fingerprint: null,
      };
      const started = new Set<number>();
      return streamJob(c, ctx, job, {
        chunks: (events: JobEvent[], choices) => {
          const out: unknown[] = [];
          for (const e of events) {
            const first = !started.has(e.row);
            started.add(e.row);
            if (!first && e.text === "" && !e.finishReason && !e.logprob) continue;
            const delta: Record<string, string> = first ? { role: "assistant", content: e.text } : {};
            if (!first && e.text !== "") delta.content = e.text;
            out.push({
              ...base,
              choices: [{
                index: e.row,
                delta,
                logprobs: body.logprobs && e.logprob ? chatLogprobs([e.logprob], wantTop) : null,
                finish_reason: e.finishReason ? choices[e.row].finish : null,
              }],
              ...(includeUsage ? { usage: null } : {}),
            });
          }
          return out;
        },
        final: (choices) => {
          const usage = countUsage(ctx, prompts, choices);
          return includeUsage ? [{ ...base, choices: [], usage }] : [];
        },
      });
    }
    const choices = await collect(ctx, job);
    const usage = countUsage(ctx, prompts, choices);
    return c.json({
      id,
      object: "chat.completion",
      created: now,
      model: body.model,
      system_fingerprint: null,
      choices: choices.map((s, i) => ({
        index: i,
        message: { role: "assistant", content: s.text, refusal: null },
        logprobs: body.logprobs ? chatLogprobs(s.logprobs, wantTop) : null,
        finish_reason: s.finish,
      })),
      usage,
    });
  });

  return app;
}
