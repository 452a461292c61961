// Helpers of the HTTP tests: a server on a loopback port with a fresh adapter folder, two tenants' keys,
// JSON and multipart requests, and SSE parsing.

import type { AppLimits } from "../../src/http/app.ts";
import { KeyTable } from "../../src/http/auth.ts";
import { type RunningServer, startServer } from "../../src/http/server.ts";
import type { AdapterFiles } from "../../src/store/adapter_store.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { stories260kHf } from "../serve/_fixtures.ts";

/** API keys of the test tenants. */
export const KEYS = { acme: "sk-acme-0123456789", beta: "sk-beta-0123456789" } as const;

/** The keys file content for {@linkcode KEYS}. */
export const KEYS_JSON = { tenants: { acme: { keys: [KEYS.acme] }, beta: { keys: [KEYS.beta] } } };

/** Options of {@linkcode startTestServer}. */
export interface TestServerOptions {
  /** Use {@linkcode KEYS} (else one open tenant `default`). @default true */
  keys?: boolean;
  /** Read-only store. */
  readOnly?: boolean;
  /** Adapter cache budget, bytes. */
  cacheBytes?: number;
  /** Inference workers. @default 0 */
  workers?: number;
  /** Limits. */
  limits?: AppLimits;
}

/** A server for one test, with its adapter folder. */
export interface TestServer {
  /** Base URL. */
  url: string;
  /** The running server. */
  server: RunningServer;
  /** The adapter folder. */
  storeDir: string;
  /** Stops the server and removes the folder. */
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1, port 0, wasm. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const storeDir = await Deno.makeTempDir({ prefix: "http_test_store_" });
  const keys = options.keys === false ? undefined : await KeyTable.fromJson(KEYS_JSON, "test keys");
  const server = await startServer({
    model: await stories260kHf(),
    store: new FolderAdapterStore(storeDir, { readOnly: options.readOnly }),
    keys,
    ep: "wasm",
    workers: options.workers ?? 0,
    cacheBytes: options.cacheBytes,
    limits: options.limits,
    port: 0,
  });
  return {
    url: server.url,
    server,
    storeDir,
    async close() {
      await server.shutdown(5_000);
      await Deno.remove(storeDir, { recursive: true });
    },
  };
}

/** A JSON response's status and parsed body. */
export interface JsonReply {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** Sends a request and parses the JSON reply. */
export async function call(
  url: string,
  options: {
    method?: string;
    key?: string;
    json?: unknown;
    body?: BodyInit;
    headers?: Record<string, string>;
  } = {},
): Promise<JsonReply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const res = await fetch(url, {
    method: options.method ?? (body === undefined ? "GET" : "POST"),
    headers,
    body,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON: keep the text */ }
  return { status: res.status, body: parsed };
}

/** The multipart body of an adapter upload. */
export function adapterForm(name: string, files: AdapterFiles): FormData {
  const form = new FormData();
  form.set("name", name);
  form.set("adapter_config.json", new File([files.config as Uint8Array<ArrayBuffer>], "adapter_config.json"));
  form.set(
    "adapter_model.safetensors",
    new File([files.weights as Uint8Array<ArrayBuffer>], "adapter_model.safetensors"),
  );
  return form;
}

/** Uploads an adapter. */
export function upload(
  url: string,
  key: string | undefined,
  name: string,
  files: AdapterFiles,
): Promise<JsonReply> {
  return call(`${url}/v1/adapters`, { key, body: adapterForm(name, files) });
}

/** A greedy completion's text. */
export async function complete(
  url: string,
  key: string | undefined,
  model: string,
  maxTokens = 24,
): Promise<string> {
  const reply = await call(`${url}/v1/completions`, {
    key,
    json: { model, prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0 },
  });
  if (reply.status !== 200) {
    throw new Error(`completion failed: ${reply.status} ${JSON.stringify(reply.body)}`);
  }
  return reply.body.choices[0].text;
}

/** Reads an SSE response into its `data:` payloads (JSON parsed, `[DONE]` kept as a string). */
export async function readSse(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text.split("\n\n").filter((block) => block.startsWith("data: ")).map((block) => {
    const data = block.slice(6);
    return data === "[DONE]" ? data : JSON.parse(data);
  });
}
