/**
 * Console sessions: {@linkcode ConsoleSessions} keeps, in server memory only, which tenant signed in with which
 * API key (the key is needed to call the API on the tenant's behalf and never leaves the server). The browser
 * holds only a random session id in an HTTP-only, `SameSite=Strict` cookie scoped to `/console`. Every
 * state-changing form carries the session's CSRF token, and every POST must come from the console's own
 * origin (the `Origin` header, or `Sec-Fetch-Site`, when the browser sends them).
 *
 * @module
 */

/** The session cookie's name. */
export const SESSION_COOKIE = "wl_console";

/** The form field (and header, `x-csrf-token`) that carries a session's CSRF token. */
export const CSRF_FIELD = "_csrf";

/** A signed-in tenant. */
export interface ConsoleSession {
  /** Random id (the cookie's value). */
  id: string;
  /** The tenant, resolved from the key as the API resolves it. */
  tenant: string;
  /** The API key it signed in with (server-side only). */
  apiKey: string;
  /** Token that forms must echo. */
  csrf: string;
  /** Last use, ms since the epoch. */
  lastSeen: number;
  /** A message for the next page (set before a redirect, shown once). */
  flash?: { kind: "ok" | "error"; text: string };
}

/** Options of {@linkcode ConsoleSessions}. */
export interface ConsoleSessionsOptions {
  /**
   * A session unused for this long is forgotten, ms.
   * @default {43200000} (12 hours)
   */
  idleMs?: number;
  /**
   * Most sessions kept; the least recently used goes first.
   * @default {10000}
   */
  maxSessions?: number;
  /** Clock, ms (tests). @default {Date.now} */
  now?: () => number;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Constant-time comparison of two strings (tokens). */
function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The console's sessions, in memory.
 *
 * @example
 * ```ts
 * import { ConsoleSessions } from "./session.ts";
 * const sessions = new ConsoleSessions();
 * const s = sessions.create("acme", "sk-acme-0123456789");
 * console.assert(sessions.get(s.id)?.tenant === "acme");
 * sessions.delete(s.id);
 * console.assert(sessions.get(s.id) === undefined);
 * ```
 */
export class ConsoleSessions {
  #sessions = new Map<string, ConsoleSession>();
  #idleMs: number;
  #max: number;
  #now: () => number;

  /** @param options Idle timeout, size and clock. */
  constructor(options: ConsoleSessionsOptions = {}) {
    this.#idleMs = options.idleMs ?? 12 * 3600_000;
    this.#max = options.maxSessions ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Sessions held. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Starts a session.
   *
   * @param tenant The tenant the key resolved to.
   * @param apiKey The key (kept server-side).
   * @returns The session.
   */
  create(tenant: string, apiKey: string): ConsoleSession {
    while (this.#sessions.size >= this.#max) {
      const oldest = this.#sessions.keys().next().value!;
      this.#sessions.delete(oldest);
    }
    const session = { id: randomToken(), tenant, apiKey, csrf: randomToken(), lastSeen: this.#now() };
    this.#sessions.set(session.id, session);
    return session;
  }

  /**
   * The live session of an id (refreshing its last use), or undefined.
   *
   * @param id The cookie's value.
   * @returns The session.
   */
  get(id: string | undefined): ConsoleSession | undefined {
    if (!id) return undefined;
    const session = this.#sessions.get(id);
    if (!session) return undefined;
    const now = this.#now();
    if (now - session.lastSeen > this.#idleMs) {
      this.#sessions.delete(id);
      return undefined;
    }
    session.lastSeen = now;
    // most recently used last
    this.#sessions.delete(id);
    this.#sessions.set(id, session);
    return session;
  }

  /**
   * Ends a session.
   *
   * @param id The cookie's value.
   */
  delete(id: string): void {
    this.#sessions.delete(id);
  }
}

/**
 * Whether a form's token is the session's.
 *
 * @param session The session.
 * @param token The submitted token.
 * @returns True when they match.
 */
export function validCsrf(session: ConsoleSession, token: string | undefined | null): boolean {
  return typeof token === "string" && sameToken(token, session.csrf);
}

/**
 * Whether a state-changing request comes from the console's own origin: its `Origin` header (when present)
 * names the request's own host, and `Sec-Fetch-Site` (when present) is `same-origin`.
 *
 * @param request The request.
 * @returns False for a cross-site request.
 */
export function sameOrigin(request: Request): boolean {
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") return false;
  const origin = request.headers.get("origin");
  if (origin === null) return true;
  if (origin === "null") return false;
  const url = new URL(request.url);
  const host = request.headers.get("host") ?? url.host;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/**
 * The `Set-Cookie` value of a session (or of its removal, with `undefined`).
 *
 * @param id The session id, or undefined to clear the cookie.
 * @param secure Whether to mark it `Secure` (the console is served over HTTPS).
 * @returns The header value.
 */
export function sessionCookie(id: string | undefined, secure: boolean): string {
  const parts = [
    `${SESSION_COOKIE}=${id ?? ""}`,
    "Path=/console",
    "HttpOnly",
    "SameSite=Strict",
  ];
  if (secure) parts.push("Secure");
  if (id === undefined) parts.push("Max-Age=0");
  return parts.join("; ");
}

/**
 * The session id a request's cookies carry.
 *
 * @param request The request.
 * @returns The id, or undefined.
 */
export function sessionIdOf(request: Request): string | undefined {
  const header = request.headers.get("cookie");
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === SESSION_COOKIE) return rest.join("=") || undefined;
  }
  return undefined;
}
