/**
 * One resumable, verified file download from a Hugging Face-style `resolve` URL.
 *
 * 1. `HEAD` without following redirects: the hub answers 200 (small git files: `ETag` = git blob sha1)
 *    or 302 to a CDN (LFS files: `X-Linked-Etag` = sha256 of the content, `X-Linked-Size`); relative
 *    redirects (renamed repositories) are followed with the same credentials. `X-Repo-Commit` names the
 *    commit.
 * 2. `GET` of the final URL into `<dest>.incomplete`, with `Range: bytes=<have>-` when a previous
 *    attempt left bytes there (206 appends, 200 restarts). Credentials go only to the hub's own origin.
 * 3. Size check, sha256 check when the ETag is a sha256, then an atomic rename to `dest`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { formatBytes, type ProgressMode, startProgress } from "./_progress.ts";

/** What a `HEAD` of a resolve URL told us. */
export interface RemoteFile {
  /** Where to `GET` the bytes (the CDN location for LFS files). */
  url: string;
  /** The commit the revision resolved to (`X-Repo-Commit`), when given. */
  commit?: string;
  /** `X-Linked-Etag` or `ETag`, without quotes and `W/`. */
  etag?: string;
  /** Expected byte size (`X-Linked-Size` or `Content-Length`), when given. */
  size?: number;
}

/** HTTP settings shared by the requests of one resolution. */
export interface HttpContext {
  /** The fetch to use. */
  fetch: typeof fetch;
  /** Bearer token for the hub's origin. */
  token?: string;
  /** The hub's origin (credentials are sent only there). */
  origin: string;
}

/** An HTTP failure with its status, so callers can treat 404 as "optional file absent". */
export class HttpStatusError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /**
   * @param status The HTTP status.
   * @param message The message.
   */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpStatusError";
    this.status = status;
  }
}

/** Request headers for `url`: the token only for the hub's origin. */
function headersFor(url: string, ctx: HttpContext, extra: Record<string, string> = {}): Headers {
  const h = new Headers(extra);
  if (ctx.token !== undefined && new URL(url).origin === ctx.origin) {
    h.set("authorization", `Bearer ${ctx.token}`);
  }
  return h;
}

/** Strips `W/` and quotes from an ETag. */
function cleanEtag(value: string | null): string | undefined {
  if (value === null) return undefined;
  return value.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/** Explains a failed status. */
function statusError(status: number, label: string, ctx: HttpContext): HttpStatusError {
  if (status === 401 || status === 403) {
    const hint = ctx.token === undefined
      ? "the repository is private or gated: set HF_TOKEN to a token with access"
      : "the token in HF_TOKEN has no access to it (accept the model's terms on the hub, or use another token)";
    return new HttpStatusError(status, `Cannot download ${label}: HTTP ${status}, ${hint}`);
  }
  if (status === 404) return new HttpStatusError(status, `Cannot download ${label}: HTTP 404, not found`);
  return new HttpStatusError(status, `Cannot download ${label}: HTTP ${status}`);
}

/**
 * `HEAD`s a resolve URL, following relative redirects (renamed repos) and stopping at the first
 * cross-origin one (the CDN), which becomes the download URL.
 */
export async function headRemoteFile(url: string, label: string, ctx: HttpContext): Promise<RemoteFile> {
  let current = url;
  for (let hop = 0; hop < 10; hop++) {
    let res: Response;
    try {
      res = await ctx.fetch(current, {
        method: "HEAD",
        redirect: "manual",
        headers: headersFor(current, ctx),
      });
    } catch (e) {
      throw new Error(`Cannot download ${label}: request to ${current} failed (${(e as Error).message})`);
    }
    await res.body?.cancel();
    const info = {
      commit: res.headers.get("x-repo-commit") ?? undefined,
      etag: cleanEtag(res.headers.get("x-linked-etag") ?? res.headers.get("etag")),
      size: Number(res.headers.get("x-linked-size") ?? res.headers.get("content-length") ?? NaN),
    };
    const size = Number.isSafeInteger(info.size) && info.size >= 0 ? info.size : undefined;
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get("location");
      if (location === null) {
        throw new Error(`Cannot download ${label}: HTTP ${res.status} without a Location header`);
      }
      const next = new URL(location, current).toString();
      if (new URL(next).origin === new URL(current).origin && info.etag === undefined) {
        current = next; // a renamed repository or a normalised path: same hub, ask again
        continue;
      }
      return { url: next, commit: info.commit, etag: info.etag, size };
    }
    if (!res.ok) throw statusError(res.status, label, ctx);
    return { url: current, commit: info.commit, etag: info.etag, size };
  }
  throw new Error(`Cannot download ${label}: too many redirects from ${url}`);
}

/** Options of {@linkcode downloadFile}. */
export interface DownloadOptions {
  /** Attempts after an interrupted transfer, each resuming where the last stopped. */
  retries: number;
  /** Progress display. */
  progress: ProgressMode;
}

/** The size of a file, 0 when absent. */
async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

/** sha256 of a file, read in chunks. */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * Downloads `remote` to `dest` through `<dest>.incomplete`, resuming a previous partial download,
 * then checks size and sha256 (when the ETag is one) and renames atomically.
 */
export async function downloadFile(
  remote: RemoteFile,
  dest: string,
  ctx: HttpContext & DownloadOptions & { label: string },
): Promise<void> {
  const partial = `${dest}.incomplete`;
  const label = ctx.label;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt <= ctx.retries; attempt++) {
    let have = await sizeOf(partial);
    if (remote.size !== undefined && have > remote.size) {
      await Deno.remove(partial);
      have = 0;
    }
    if (remote.size !== undefined && have === remote.size && have > 0) break;
    const headers = headersFor(remote.url, ctx, have > 0 ? { range: `bytes=${have}-` } : {});
    let res: Response;
    try {
      res = await ctx.fetch(remote.url, { headers, redirect: "follow" });
    } catch (e) {
      lastError = new Error(`Cannot download ${label}: request failed (${(e as Error).message})`);
      continue;
    }
    if (res.status === 416 && have > 0) {
      await res.body?.cancel();
      await Deno.remove(partial);
      lastError = new Error(`Cannot download ${label}: the server refused to resume at byte ${have}`);
      continue;
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw statusError(res.status, label, ctx);
    }
    let append = res.status === 206;
    if (append) {
      const range = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
      if (range === null || Number(range[1]) !== have) {
        await res.body?.cancel();
        await Deno.remove(partial).catch(() => {});
        lastError = new Error(`Cannot download ${label}: the server resumed at the wrong offset`);
        continue;
      }
    } else {
      have = 0;
      append = false;
    }
    const progress = startProgress(label, { total: remote.size, start: have, mode: ctx.progress });
    let done = have;
    try {
      using file = await Deno.open(partial, { write: true, create: true, append, truncate: !append });
      if (res.body === null) throw new Error("the response has no body");
      for await (const chunk of res.body) {
        let off = 0;
        while (off < chunk.byteLength) off += await file.write(chunk.subarray(off));
        done += chunk.byteLength;
        progress.update(done);
      }
    } catch (e) {
      progress.end(false, (e as Error).message);
      lastError = new Error(
        `Cannot download ${label}: the transfer was interrupted at ${formatBytes(done)}${
          remote.size === undefined ? "" : ` of ${formatBytes(remote.size)}`
        } (${
          (e as Error).message
        }); the partial file ${partial} is kept and the next attempt resumes from it`,
      );
      continue;
    }
    progress.end(true);
    if (remote.size !== undefined && done < remote.size) {
      lastError = new Error(
        `Cannot download ${label}: the transfer ended at ${done} of ${remote.size} bytes; the next attempt resumes from ${partial}`,
      );
      continue;
    }
    lastError = undefined;
    break;
  }
  if (lastError !== undefined) throw lastError;
  const size = await sizeOf(partial);
  if (remote.size !== undefined && size !== remote.size) {
    await Deno.remove(partial);
    throw new Error(
      `Cannot download ${label}: got ${size} bytes, the hub announced ${remote.size}; the partial file was removed`,
    );
  }
  if (remote.etag !== undefined && /^[0-9a-f]{64}$/.test(remote.etag)) {
    const actual = await sha256File(partial);
    if (actual !== remote.etag) {
      await Deno.remove(partial);
      throw new Error(
        `Cannot download ${label}: sha256 ${actual} does not match the hub's ${remote.etag}; the corrupt file was removed`,
      );
    }
  }
  await Deno.rename(partial, dest);
}
