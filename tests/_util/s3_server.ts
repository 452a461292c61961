/**
 * A real S3-compatible server for one test file: `s3rver` from npm behind a front that checks AWS
 * Signature V4 ({@linkcode startS3Server}), started as a subprocess on a loopback port.
 *
 * @example
 * ```ts ignore
 * import { startS3Server } from "./s3_server.ts";
 * const s3 = await startS3Server({ buckets: ["adapters"] });
 * try {
 *   // s3.env: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL
 * } finally {
 *   await s3.stop();
 * }
 * ```
 *
 * @module
 */

/** Options of {@linkcode startS3Server}. */
export interface S3ServerOptions {
  /** Buckets to create. */
  buckets: string[];
}

/** A running test S3 server. */
export interface S3Server {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** The access key id the server accepts. */
  accessKeyId: string;
  /** Its secret. */
  secretAccessKey: string;
  /** The `AWS_*` variables that point a client at this server. */
  env: Record<string, string>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/**
 * Starts s3rver on a loopback port with fresh buckets and a random secret.
 *
 * @param options The buckets.
 * @returns The server.
 * @throws {Error} When it does not start within 60 s.
 */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const dir = await Deno.makeTempDir({ prefix: "s3rver_" });
  const accessKeyId = "WEIGHTLORATEST";
  const secretAccessKey = [...crypto.getRandomValues(new Uint8Array(20))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const script = new URL("./s3_server_main.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", decodeURIComponent(script), dir, accessKeyId, secretAccessKey, ...options.buckets],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let endpoint: string | undefined;
  while (!endpoint) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
    endpoint = /S3 listening on (http:\/\/\S+)/.exec(out)?.[1];
  }
  clearTimeout(timer);
  if (!endpoint) {
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`The test S3 server did not start:\n${out}\n${await stderr}`);
  }
  const drain = (async () => {
    while (!(await reader.read()).done) {
      // keep stdout flowing
    }
  })();
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    env: {
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL: endpoint,
    },
    async stop() {
      await child.stdin.close().catch(() => {});
      const timeout = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await child.status;
      clearTimeout(timeout);
      await drain.catch(() => {});
      await stderr.catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
