// A local HTTP server that answers like the Hugging Face hub's `/OWNER/REPO/resolve/REV/FILE` URLs:
// small files directly (ETag = a git-style sha1, X-Repo-Commit), large ("LFS") files as a 302 to a CDN
// path with X-Linked-Etag (sha256) and X-Linked-Size, a CDN that honours Range, 401 for private repos
// without the right token, 404 with X-Error-Code, 307 for a renamed repo — and switches to interrupt a
// transfer part-way or corrupt it.

import { createHash } from "node:crypto";

/** A repository served by {@linkcode FakeHub}. */
export interface FakeRepo {
  /** Files by name. */
  files: Map<string, Uint8Array>;
  /** Names served through the CDN redirect (safetensors by default). */
  lfs?: Set<string>;
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** The commit `main` resolves to. */
  commit: string;
}

/** One request the server saw. */
export interface SeenRequest {
  method: string;
  path: string;
  range: string | null;
  authorization: string | null;
}

function hex(algorithm: string, bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest("hex");
}

/** The fake hub. Start with {@linkcode FakeHub.start}, stop with {@linkcode FakeHub.close}. */
export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly renamed = new Map<string, string>();
  readonly requests: SeenRequest[] = [];
  /** sha256 → bytes to send before breaking the connection (once). */
  readonly interrupt = new Map<string, number>();
  /** sha256s whose CDN bytes are served corrupted. */
  readonly corrupt = new Set<string>();
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #blobs = new Map<string, Uint8Array>();

  /** The base URL (`http://127.0.0.1:PORT`). */
  get url(): string {
    return `http://127.0.0.1:${this.#server!.addr.port}`;
  }

  /** Adds a repository; returns the sha256 of each LFS file. */
  add(name: string, repo: FakeRepo): Map<string, string> {
    this.repos.set(name, repo);
    const shas = new Map<string, string>();
    for (const [file, bytes] of repo.files) {
      if (this.#isLfs(repo, file)) {
        const sha = hex("sha256", bytes);
        this.#blobs.set(sha, bytes);
        shas.set(file, sha);
      }
    }
    return shas;
  }

  #isLfs(repo: FakeRepo, file: string): boolean {
    return repo.lfs?.has(file) ?? file.endsWith(".safetensors");
  }

  start(): this {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => this.#handle(req));
    return this;
  }

  async close(): Promise<void> {
    await this.#server?.shutdown();
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    this.requests.push({
      method: req.method,
      path: url.pathname,
      range: req.headers.get("range"),
      authorization: req.headers.get("authorization"),
    });
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) return this.#serveBlob(req, cdn[1]);
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!m) return new Response("not found", { status: 404 });
    const [, name, rev, file] = m.map(decodeURIComponent);
    const target = this.renamed.get(name);
    if (target !== undefined) {
      return new Response(null, { status: 307, headers: { location: `/${target}/resolve/${rev}/${file}` } });
    }
    const repo = this.repos.get(name);
    if (repo === undefined) {
      return new Response(null, { status: 404, headers: { "x-error-code": "RepositoryNotFound" } });
    }
    if (repo.token !== undefined && req.headers.get("authorization") !== `Bearer ${repo.token}`) {
      return new Response("unauthorized", { status: 401, headers: { "x-error-code": "GatedRepo" } });
    }
    if (rev !== "main" && rev !== repo.commit) {
      return new Response(null, { status: 404, headers: { "x-error-code": "RevisionNotFound" } });
    }
    const bytes = repo.files.get(file);
    if (bytes === undefined) {
      return new Response(null, {
        status: 404,
        headers: { "x-error-code": "EntryNotFound", "x-repo-commit": repo.commit },
      });
    }
    const headers = new Headers({ "x-repo-commit": repo.commit });
    if (this.#isLfs(repo, file)) {
      const sha = hex("sha256", bytes);
      headers.set("location", `${this.url}/cdn/${sha}`);
      headers.set("x-linked-etag", `"${sha}"`);
      headers.set("x-linked-size", String(bytes.byteLength));
      headers.set("etag", `"${hex("sha1", bytes)}"`);
      return new Response(null, { status: 302, headers });
    }
    headers.set("etag", `"${hex("sha1", bytes)}"`);
    headers.set("content-length", String(bytes.byteLength));
    return new Response(req.method === "HEAD" ? null : bytes.slice(), { headers });
  }

  #serveBlob(req: Request, sha: string): Response {
    let bytes = this.#blobs.get(sha);
    if (bytes === undefined) return new Response(null, { status: 404 });
    if (this.corrupt.has(sha)) {
      bytes = bytes.slice();
      bytes[bytes.length >> 1] ^= 0xff;
    }
    let start = 0;
    let status = 200;
    const headers = new Headers({ "accept-ranges": "bytes" });
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    if (range) {
      start = Number(range[1]);
      if (start >= bytes.byteLength) return new Response(null, { status: 416 });
      status = 206;
      headers.set("content-range", `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`);
    }
    const body = bytes.subarray(start);
    headers.set("content-length", String(body.byteLength));
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const cut = this.interrupt.get(sha);
    if (cut !== undefined) {
      this.interrupt.delete(sha);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(body.slice(0, cut));
        },
        pull(controller) {
          // Ending the body short of its Content-Length makes the server drop the connection.
          controller.close();
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(body.slice(), { status, headers });
  }
}
