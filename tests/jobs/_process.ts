// A subprocess (the worker or server CLI) whose stderr is read line by line, for kill -9 and replica tests.

/** A spawned Deno process and its output so far. */
export interface Spawned {
  /** The child. */
  child: Deno.ChildProcess;
  /** Every stderr and stdout line so far. */
  lines: string[];
  /** Waits for a line matching `pattern` (already seen or future); throws with the output after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Sends a signal and waits for the exit. */
  stop(signal: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Runs `deno run -A <script> <args>` from the repository root.
 *
 * @param script Path from the repository root.
 * @param args Arguments.
 * @param options Extra environment variables.
 * @returns The process handle.
 */
export function spawnDeno(
  script: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Spawned {
  const root = decodeURIComponent(new URL("../../", import.meta.url).pathname);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let exited = false;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
      for (const w of waiters) w();
    }
    if (buffer) lines.push(buffer);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status.then(async (s) => {
    await pumps.catch(() => {});
    exited = true;
    for (const w of waiters) w();
    return s;
  });
  return {
    child,
    lines,
    waitFor(pattern: RegExp, ms = 120_000): Promise<RegExpMatchArray> {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const line of lines) {
            const m = line.match(pattern);
            if (m) {
              done();
              resolve(m);
              return;
            }
          }
          if (exited) {
            done();
            reject(new Error(`${script} exited before printing ${pattern}:\n${lines.join("\n")}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${script} did not print ${pattern} within ${ms} ms:\n${lines.join("\n")}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
      if (!exited) {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
      }
      return await status;
    },
  };
}

/** The API key of the test tenant in {@linkcode writeKeys}'s file. */
export const ACME_KEY = "sk-acme-0123456789";

/**
 * Writes a keys file with tenant `acme`.
 *
 * @param dir A folder.
 * @returns The file's path.
 */
export async function writeKeys(dir: string): Promise<string> {
  const path = `${dir}/keys.json`;
  await Deno.writeTextFile(path, JSON.stringify({ tenants: { acme: { keys: [ACME_KEY] } } }));
  return path;
}

/**
 * Starts `src/cli/serve.ts` on port 0 and waits for its URL.
 *
 * @param args Arguments besides `--port 0` and `--ep wasm`.
 * @param options Extra environment variables.
 * @returns The process and its base URL.
 */
export async function spawnServer(
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<{ server: Spawned; url: string }> {
  const server = spawnDeno(
    "src/cli/serve.ts",
    [...args, "--port", "0", "--ep", "wasm", "--workers", "0"],
    options,
  );
  try {
    const [, url] = await server.waitFor(/^Listening on (http:\/\/127\.0\.0\.1:\d+)/, 120_000);
    return { server, url };
  } catch (e) {
    await server.stop("SIGKILL");
    throw e;
  }
}

/**
 * Calls the API as tenant `acme`.
 *
 * @param url Base URL.
 * @param path Path.
 * @param init Method and body (a JSON value or a FormData).
 * @returns The parsed JSON answer and its status.
 */
export async function api(
  url: string,
  path: string,
  init: { method?: string; json?: unknown; form?: FormData } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { authorization: `Bearer ${ACME_KEY}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${url}${path}`, {
    method: init.method ?? (init.json !== undefined || init.form ? "POST" : "GET"),
    headers,
    body: init.form ?? (init.json === undefined ? undefined : JSON.stringify(init.json)),
  });
  return { status: response.status, body: await response.json() };
}
