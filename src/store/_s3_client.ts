// A small S3 client over aws4fetch (SigV4): GET (conditional), PUT, DELETE and ListObjectsV2 of one bucket,
// with a per-request deadline, a few retries of server errors, and errors that name the object, the
// endpoint and the access key id (never the secret). Used by S3AdapterStore only.

import { AwsClient } from "aws4fetch";

/** Where and as whom to reach a bucket. */
export interface S3ClientConfig {
  /** Bucket name. */
  bucket: string;
  /** Region, for the signature. */
  region: string;
  /** An S3-compatible endpoint (path-style addressing), or undefined for AWS (virtual-hosted style). */
  endpoint?: string;
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
  /** Deadline of one request, milliseconds. */
  timeoutMs: number;
  /** Retries of a request that failed with a 5xx status, 429 or a network error. */
  retries: number;
  /** The fetch function (tests count requests through it). */
  fetch: (request: Request) => Promise<Response>;
}

/** A failed S3 request: the HTTP status and S3's error code. */
export class S3RequestError extends Error {
  /** HTTP status, or 0 when no answer came. */
  readonly status: number;
  /** S3's error code (`NoSuchKey`, `NoSuchBucket`, `SignatureDoesNotMatch`, …), or `""`. */
  readonly code: string;
  constructor(message: string, status: number, code: string) {
    super(message);
    this.name = "S3RequestError";
    this.status = status;
    this.code = code;
  }
}

/** An object read by {@linkcode S3Client.get}. */
export interface S3Object {
  /** The bytes. */
  body: Uint8Array;
  /** The ETag header (quotes included), or `""`. */
  etag: string;
}

/** One page of ListObjectsV2. */
export interface S3Listing {
  /** Object keys. */
  keys: string[];
  /** Common prefixes (with the delimiter). */
  prefixes: string[];
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function xmlText(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => XML_ENTITIES[e]);
}

function xmlValues(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => xmlText(m[1]));
}

/** A client of one bucket. */
export class S3Client {
  readonly config: S3ClientConfig;
  #aws: AwsClient;

  constructor(config: S3ClientConfig) {
    this.config = config;
    this.#aws = new AwsClient({
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      sessionToken: config.sessionToken,
      service: "s3",
      region: config.region,
      retries: 0,
    });
  }

  /** Where requests go, for messages. */
  get endpointLabel(): string {
    return this.config.endpoint ?? `https://${this.config.bucket}.s3.${this.config.region}.amazonaws.com`;
  }

  /** `s3://bucket/key`. */
  uri(key: string): string {
    return `s3://${this.config.bucket}/${key}`;
  }

  /** The URL of a key, or of the bucket with a query. */
  url(key: string, query?: URLSearchParams): string {
    const path = key.split("/").map(encodeURIComponent).join("/");
    const base = this.config.endpoint
      ? `${this.config.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(this.config.bucket)}/${path}`
      : `${this.endpointLabel}/${path}`;
    return query ? `${base}?${query}` : base;
  }

  /**
   * Reads an object.
   *
   * @returns The object, `undefined` when absent (404), or `"not-modified"` when its ETag matched.
   */
  async get(
    key: string,
    options: { ifNoneMatch?: string } = {},
  ): Promise<S3Object | "not-modified" | undefined> {
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch) headers["if-none-match"] = options.ifNoneMatch;
    const response = await this.#send("GET", key, { headers, accept: [304, 404] });
    if (response.status === 304) {
      await response.body?.cancel();
      return "not-modified";
    }
    if (response.status === 404) {
      const code = await this.#errorCode(response);
      if (code === "NoSuchBucket") throw this.#noSuchBucket();
      return undefined;
    }
    return { body: new Uint8Array(await response.arrayBuffer()), etag: response.headers.get("etag") ?? "" };
  }

  /**
   * Writes an object (S3 checks the body against `sha256` when given).
   *
   * @returns The new ETag.
   */
  async put(
    key: string,
    body: Uint8Array,
    options: { contentType?: string; sha256?: string } = {},
  ): Promise<string> {
    const headers: Record<string, string> = {
      "content-type": options.contentType ?? "application/octet-stream",
    };
    if (options.sha256) headers["x-amz-content-sha256"] = options.sha256;
    const response = await this.#send("PUT", key, { headers, body });
    await response.body?.cancel();
    return response.headers.get("etag") ?? "";
  }

  /** Deletes an object (absent is fine). */
  async delete(key: string): Promise<void> {
    const response = await this.#send("DELETE", key, { accept: [404] });
    if (response.status === 404 && (await this.#errorCode(response)) === "NoSuchBucket") {
      throw this.#noSuchBucket();
    }
    await response.body?.cancel();
  }

  /** Lists keys and common prefixes under a prefix (all pages). */
  async list(prefix: string, delimiter?: string): Promise<S3Listing> {
    const out: S3Listing = { keys: [], prefixes: [] };
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ "list-type": "2", prefix });
      if (delimiter) query.set("delimiter", delimiter);
      if (token) query.set("continuation-token", token);
      const response = await this.#send("GET", "", { query, label: `list ${this.uri(prefix)}` });
      const xml = await response.text();
      for (const block of xmlValues(xml, "Contents")) out.keys.push(...xmlValues(block, "Key"));
      for (const block of xmlValues(xml, "CommonPrefixes")) out.prefixes.push(...xmlValues(block, "Prefix"));
      const truncated = xmlValues(xml, "IsTruncated")[0] === "true";
      token = truncated ? xmlValues(xml, "NextContinuationToken")[0] : undefined;
    } while (token);
    return out;
  }

  #noSuchBucket(): S3RequestError {
    return new S3RequestError(
      `The bucket "${this.config.bucket}" does not exist at ${this.endpointLabel} (S3 answered NoSuchBucket): ` +
        "create it, or check the bucket name and AWS_ENDPOINT_URL",
      404,
      "NoSuchBucket",
    );
  }

  async #errorCode(response: Response): Promise<string> {
    const text = await response.text().catch(() => "");
    return xmlValues(text, "Code")[0] ?? "";
  }

  async #send(
    method: string,
    key: string,
    options: {
      headers?: Record<string, string>;
      body?: Uint8Array;
      query?: URLSearchParams;
      accept?: number[];
      label?: string;
    },
  ): Promise<Response> {
    const url = this.url(key, options.query);
    const label = options.label ?? `${method} ${this.uri(key)}`;
    const where = `Cannot ${label} at ${this.endpointLabel}`;
    const { timeoutMs } = this.config;
    for (let attempt = 0;; attempt++) {
      let response: Response;
      try {
        const request = await this.#aws.sign(url, {
          method,
          headers: options.headers,
          body: options.body as BodyInit | undefined,
          signal: AbortSignal.timeout(timeoutMs),
        });
        response = await this.config.fetch(request);
      } catch (e) {
        const timedOut = e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError");
        if (timedOut) {
          throw new S3RequestError(`${where}: no answer within ${timeoutMs / 1000} s`, 0, "Timeout");
        }
        if (attempt < this.config.retries) {
          await delay(attempt);
          continue;
        }
        throw new S3RequestError(`${where}: ${(e as Error).message}`, 0, "");
      }
      if (response.ok || options.accept?.includes(response.status)) return response;
      if ((response.status >= 500 || response.status === 429) && attempt < this.config.retries) {
        await response.body?.cancel();
        await delay(attempt);
        continue;
      }
      const text = await response.text().catch(() => "");
      const code = xmlValues(text, "Code")[0] ?? "";
      const message = xmlValues(text, "Message")[0] ?? text.slice(0, 200);
      if (code === "NoSuchBucket") throw this.#noSuchBucket();
      if (code === "SignatureDoesNotMatch" || code === "InvalidAccessKeyId" || code === "InvalidToken") {
        throw new S3RequestError(
          `${where}: the credentials of access key id "${this.config.accessKeyId}" were refused (${code}: ` +
            `${message}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
          response.status,
          code,
        );
      }
      throw new S3RequestError(
        `${where}: HTTP ${response.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`,
        response.status,
        code,
      );
    }
  }
}

function delay(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt * (0.5 + Math.random())));
}
