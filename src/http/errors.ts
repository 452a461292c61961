/**
 * Errors in OpenAI's shape: every failure answers `{"error": {"message", "type", "param", "code"}}` with
 * the matching status, from one place ({@linkcode handleError}), so that existing OpenAI clients raise
 * their usual exceptions.
 *
 * @module
 */

import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** OpenAI's error types. */
export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "timeout_error"
  | "server_error";

/** The error object of an OpenAI error body. */
export interface ApiErrorBody {
  /** What failed, for people. */
  message: string;
  /** The error class. */
  type: ApiErrorType;
  /** The request field at fault, or null. */
  param: string | null;
  /** A machine-readable code, or null. */
  code: string | null;
}

/** Options of {@linkcode ApiError}. */
export interface ApiErrorOptions {
  /** Error type. @default by status: 400 invalid_request_error, 401 authentication_error, … */
  type?: ApiErrorType;
  /** The field at fault. */
  param?: string;
  /** Machine-readable code. */
  code?: string;
  /** The underlying error. */
  cause?: unknown;
}

function typeFor(status: number): ApiErrorType {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 408 || status === 504) return "timeout_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** An error that becomes an OpenAI error response. Throw it from routes and middleware. */
export class ApiError extends HTTPException {
  /** The body's error object. */
  readonly body: ApiErrorBody;

  /**
   * @param status HTTP status.
   * @param message What failed (sentence case, no trailing period).
   * @param options Type, param, code.
   */
  constructor(status: ContentfulStatusCode, message: string, options: ApiErrorOptions = {}) {
    super(status, { message, cause: options.cause });
    this.body = {
      message,
      type: options.type ?? typeFor(status),
      param: options.param ?? null,
      code: options.code ?? null,
    };
  }
}

/**
 * An OpenAI error response.
 *
 * @param status HTTP status.
 * @param body The error object.
 * @returns A JSON response.
 */
export function errorResponse(status: number, body: ApiErrorBody): Response {
  return new Response(JSON.stringify({ error: body }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * The app's error handler: {@linkcode ApiError} as is, Hono's own exceptions (malformed JSON, body
 * limits) in OpenAI's shape, and anything else — an unexpected exception or an {@linkcode ApiError} with
 * status 500 — as a 500 with a generic message and an error id: the detail (which may hold database text,
 * file paths or stack traces) goes to the server's log under that id, never to the client.
 *
 * @param error The thrown value.
 * @param c The request context.
 * @returns The error response.
 */
export function handleError(error: Error, c: Context): Response {
  if (error instanceof ApiError && error.status !== 500) return errorResponse(error.status, error.body);
  if (!(error instanceof ApiError) && error instanceof HTTPException && error.status < 500) {
    const status = error.status;
    const message = error.message || (status === 413 ? "Request body too large" : "Bad request");
    return errorResponse(status, {
      message: message === "Malformed JSON in request body" ? "Invalid JSON in the request body" : message,
      type: typeFor(status),
      param: null,
      code: status === 413 ? "request_too_large" : null,
    });
  }
  const id = `err_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const detail = error instanceof ApiError
    ? `${error.message}${error.cause ? ` (${error.cause})` : ""}`
    : error;
  console.error(`${c.req.method} ${c.req.path} failed [${id}]:`, detail);
  return errorResponse(500, {
    message: `Internal error while serving ${c.req.method} ${c.req.path} (error id ${id}); ` +
      "the server's log has the details",
    type: "server_error",
    param: null,
    code: error instanceof ApiError ? error.body.code ?? "internal_error" : "internal_error",
  });
}

/**
 * The app's 404 handler.
 *
 * @param c The request context.
 * @returns An OpenAI 404 body naming the route.
 */
export function handleNotFound(c: Context): Response {
  return errorResponse(404, {
    message: `Unknown route ${c.req.method} ${c.req.path}`,
    type: "not_found_error",
    param: null,
    code: "unknown_url",
  });
}
