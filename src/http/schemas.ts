/**
 * Request bodies of the OpenAI-compatible routes as zod schemas, and {@linkcode jsonBody}, a
 * `@hono/zod-validator` wrapper that turns a failed check into an OpenAI 400 naming the field.
 * Unknown fields are ignored (as OpenAI does for fields it does not use); fields this server cannot
 * honour (`echo`, `best_of`, `suffix`, `logit_bias`, non-zero penalties, tools) are refused by the routes.
 *
 * @module
 */

import { zValidator } from "@hono/zod-validator";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

const tokenId = z.number().int().min(0);
const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().nullish(),
};

/** `POST /v1/completions`. */
export const completionRequestSchema = z.looseObject({
  ...sampling,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1),
  ], { error: "expected a string, a list of strings, a list of token ids or a list of token-id lists" }),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.string().nullish(),
});

/** A parsed completion request. */
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

const textPart = z.looseObject({ type: z.literal("text"), text: z.string() });

/** One chat message (text content, or a list of text parts). */
export const chatMessageSchema = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(textPart), z.null()], {
    error: 'expected a string or a list of {"type": "text", "text": …} parts',
  }).optional(),
  name: z.string().optional(),
});

/** `POST /v1/chat/completions`. */
export const chatRequestSchema = z.looseObject({
  ...sampling,
  messages: z.array(chatMessageSchema).min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(z.unknown()).nullish(),
  response_format: z.looseObject({ type: z.string() }).nullish(),
});

/** A parsed chat request. */
export type ChatRequest = z.infer<typeof chatRequestSchema>;

function describe(issue: z.core.$ZodIssue): { param: string; message: string } {
  const param = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(
    /^\./,
    "",
  );
  return { param, message: issue.message };
}

/**
 * Middleware: validates the JSON body against a schema (`c.req.valid("json")` afterwards); a bad body is
 * an OpenAI 400 naming the field (`Invalid value for "temperature": …`), malformed JSON a 400 too.
 *
 * @param schema The zod schema.
 * @returns The validator middleware.
 */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return zValidator("json", schema, (result) => {
    if (result.success) return;
    const issues = result.error.issues;
    const first = describe(issues[0]);
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problems)` : "";
    throw new ApiError(
      400,
      first.param
        ? `Invalid value for "${first.param}": ${first.message}${more}`
        : `Invalid request body: ${first.message}${more}`,
      { param: first.param || undefined, code: "invalid_value" },
    );
  }) as MiddlewareHandler<AppEnv, string, { in: { json: z.input<T> }; out: { json: z.output<T> } }>;
}
