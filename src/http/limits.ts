/**
 * Request limits as Hono middleware: {@linkcode tenantConcurrency} (a per-tenant cap on requests in
 * flight, 429 beyond it), {@linkcode requestTimeout} (an abort signal that fires after a deadline),
 * {@linkcode bodyLimitBytes} (413 for oversize bodies, counted while they stream in), and
 * {@linkcode RequestTracker} (requests in flight, for a graceful shutdown). A streamed response counts as
 * in flight until its body ends.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

/**
 * Calls `fn` once when a response's body has been sent, failed or been cancelled (at once when it has
 * no body).
 *
 * @param res The response.
 * @param fn The callback.
 * @returns A response with the same status, headers and body.
 */
export function onResponseEnd(res: Response, fn: () => void): Response {
  let called = false;
  const once = () => {
    if (!called) {
      called = true;
      fn();
    }
  };
  if (!res.body) {
    once();
    return res;
  }
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          once();
        } else controller.enqueue(value);
      } catch (e) {
        controller.error(e);
        once();
      }
    },
    async cancel(reason) {
      once();
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** Options of {@linkcode tenantConcurrency}. */
export interface TenantConcurrencyOptions {
  /** Most requests in flight per tenant. */
  max: number;
}

/**
 * Middleware: at most `max` requests in flight per tenant (after authentication); more answer 429.
 *
 * @param options The cap.
 * @returns The middleware.
 */
export function tenantConcurrency(options: TenantConcurrencyOptions): MiddlewareHandler<AppEnv> {
  const inFlight = new Map<string, number>();
  return async function tenantConcurrencyMiddleware(c, next) {
    const tenant = c.get("tenant");
    const n = inFlight.get(tenant) ?? 0;
    if (n >= options.max) {
      throw new ApiError(
        429,
        `Too many concurrent requests for tenant "${tenant}": the limit is ${options.max}; retry when one finishes`,
        { code: "concurrency_limit_exceeded" },
      );
    }
    inFlight.set(tenant, n + 1);
    const release = () => {
      const left = (inFlight.get(tenant) ?? 1) - 1;
      if (left > 0) inFlight.set(tenant, left);
      else inFlight.delete(tenant);
    };
    try {
      await next();
    } catch (e) {
      release();
      throw e;
    }
    c.res = onResponseEnd(c.res, release);
  };
}

/** Options of {@linkcode requestTimeout}. */
export interface RequestTimeoutOptions {
  /** Deadline of a request (including a streamed body), ms. */
  ms: number;
}

/** The abort reason of a request that ran past its deadline. */
export class RequestTimeoutError extends Error {
  /** @param ms The deadline. */
  constructor(ms: number) {
    super(`The request took longer than the server's limit of ${ms / 1000} s`);
    this.name = "RequestTimeoutError";
  }
}

/**
 * Middleware: sets `c.get("signal")`, which aborts after the deadline (reason {@linkcode
 * RequestTimeoutError}). A streamed response also stops when the client disconnects (its body is
 * cancelled); a non-streamed one runs to its end (bounded by `max_tokens` and the deadline), since
 * `Request.signal` in `Deno.serve` also fires after every successful response.
 *
 * @param options The deadline.
 * @returns The middleware.
 */
export function requestTimeout(options: RequestTimeoutOptions): MiddlewareHandler<AppEnv> {
  return async function requestTimeoutMiddleware(c, next) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new RequestTimeoutError(options.ms)), options.ms);
    c.set("signal", controller.signal);
    try {
      await next();
    } catch (e) {
      clearTimeout(timer);
      throw e;
    }
    c.res = onResponseEnd(c.res, () => clearTimeout(timer));
  };
}

/**
 * Middleware: refuses bodies over `maxBytes` with a 413 OpenAI error while they stream in, before the
 * route buffers them. A declared `content-length` over the limit is refused without reading a byte; any
 * other body (chunked included) is counted as the route reads it, and reading fails as soon as the count
 * passes the limit, so at most `maxBytes` plus one chunk is ever held, whatever the client sends.
 *
 * @param maxBytes The limit.
 * @param what What the body is, for the message.
 * @returns The middleware.
 */
export function bodyLimitBytes(maxBytes: number, what = "request body"): MiddlewareHandler<AppEnv> {
  const tooLarge = () =>
    new ApiError(413, `The ${what} is larger than the server's limit of ${maxBytes} bytes`, {
      code: "request_too_large",
    });
  return async function bodyLimitMiddleware(c, next) {
    const raw = c.req.raw;
    if (!raw.body) return await next();
    const declared = raw.headers.get("content-length");
    if (declared !== null && Number(declared) > maxBytes) {
      // read a modest excess to the end (discarding it), so that the client sees the 413 rather than a
      // connection reset while it is still sending; a larger one is not worth the traffic
      if (Number(declared) <= DRAIN_MAX_BYTES) {
        const handBack = eventLoopHandBack();
        for await (const _ of raw.body) await handBack();
      }
      throw tooLarge();
    }
    let seen = 0;
    let exceeded = false;
    const handBack = eventLoopHandBack();
    const counted = raw.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > maxBytes) {
            exceeded = true;
            controller.error(tooLarge());
            return;
          }
          // a client that sends faster than the route consumes keeps every read resolved at once, and a
          // chain of resolved reads never lets the event loop serve other requests: hand it back
          await handBack();
          controller.enqueue(chunk);
        },
      }),
    );
    c.req.raw = new Request(raw, { body: counted, duplex: "half" } as RequestInit);
    await next();
    // the route saw a failed read (and may have answered 400 for it): the cause is the size
    if (exceeded) throw tooLarge();
  };
}

/** Longest stretch of reading one request body before the event loop is handed back, ms. */
const BODY_SLICE_MS = 20;

/**
 * A function to await between chunks of a body: it hands the event loop back (a macrotask turn, so other
 * requests' I/O runs) once `BODY_SLICE_MS` have passed since the last time, and returns at once otherwise.
 */
function eventLoopHandBack(): () => Promise<void> {
  let slice = performance.now();
  return async () => {
    if (performance.now() - slice < BODY_SLICE_MS) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    slice = performance.now();
  };
}

/** The most bytes of an oversize body with a declared length read (and discarded) before answering 413. */
const DRAIN_MAX_BYTES = 16 * 2 ** 20;

/** Counts requests in flight and lets a shutdown wait for them. */
export class RequestTracker {
  #inFlight = 0;
  #closing = false;
  #waiters: (() => void)[] = [];

  /** Requests in flight (streamed bodies included). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether a shutdown began. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Middleware: counts the request; once a shutdown began, new requests answer 503.
   *
   * @returns The middleware.
   */
  middleware(): MiddlewareHandler<AppEnv> {
    return async (c, next) => {
      if (this.#closing && c.req.path !== "/health" && c.req.path !== "/metrics") {
        throw new ApiError(503, "The server is shutting down; retry on another replica", {
          code: "shutting_down",
        });
      }
      this.#inFlight++;
      try {
        await next();
      } catch (e) {
        this.#done();
        throw e;
      }
      c.res = onResponseEnd(c.res, () => this.#done());
    };
  }

  /**
   * Begins a shutdown and waits until no request is in flight, or the grace period ends.
   *
   * @param graceMs Most time to wait.
   * @returns Whether every request finished.
   */
  async drain(graceMs: number): Promise<boolean> {
    this.#closing = true;
    if (this.#inFlight === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      new Promise<boolean>((resolve) => this.#waiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    return finished;
  }

  #done(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) { for (const w of this.#waiters.splice(0)) w(); }
  }
}
