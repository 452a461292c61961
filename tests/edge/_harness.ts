// The edge harness shared by the edge tests and `bench/edge_bench.ts`: starts `examples/edge/main.ts` under
// `deno serve` with the permissions of an edge isolate, or the ordinary server for comparison, and reads the
// child's memory and CPU time from /proc.
//
// Isolate permissions: read access to the model and adapter folders only (onnxruntime's wasm binary is
// imported as a module with --unstable-raw-imports, so the npm cache needs no read access), network access
// to the listening address only, the WEIGHTLORA_* environment variables only, no write, no subprocess, a
// V8 heap cap, and no Workers (Deno has no permission for those: `_isolate_main.ts` removes the global).

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** The environment variables an edge deployment may read. */
export const EDGE_ENV_ALLOW =
  "WEIGHTLORA_MODEL,WEIGHTLORA_ADAPTERS,WEIGHTLORA_KEYS,WEIGHTLORA_CACHE_MB,WEIGHTLORA_WASM_THREADS";

/** How the server runs. */
export type EdgeMode =
  /** `deno serve` of `examples/edge/main.ts` (inside `_isolate_main.ts`) with an isolate's permissions. */
  | "isolate"
  /** `deno serve -A examples/edge/main.ts`: the same file with every permission and no heap cap. */
  | "full"
  /** `deno run -A src/cli/serve.ts --read-only --ep wasm`: the ordinary server (`deno task serve`). */
  | "serve";

/** Options of {@linkcode spawnEdge}. */
export interface SpawnEdgeOptions {
  /** The model folder. */
  model: string;
  /** The adapter folder, or `s3://BUCKET/PREFIX` (then no read access is given for it). */
  adapters: string;
  /** The keys file's JSON value (else no authentication). */
  keys?: unknown;
  /** @default "isolate" */
  mode?: EdgeMode;
  /** The module `deno serve` runs. @default tests/edge/_isolate_main.ts (isolate), examples/edge/main.ts (full) */
  entry?: string;
  /** V8 old-space cap in MiB (isolate mode). @default 256 */
  heapMb?: number;
  /** More hosts the isolate may reach (`host:port`, e.g. an object store), besides its listening address. */
  allowNet?: string[];
  /** More environment variables the isolate may read (e.g. `AWS_ACCESS_KEY_ID`). */
  allowEnv?: string[];
  /** More environment variables for the child (e.g. a missing WEIGHTLORA_MODEL is `undefined`). */
  env?: Record<string, string | undefined>;
  /** How long to wait for the listening line. @default 120000 */
  timeoutMs?: number;
}

/** A running edge server. */
export interface EdgeServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  url: string;
  /** The child process. */
  child: Deno.ChildProcess;
  /** `performance.now()` just before the spawn. */
  spawnedAt: number;
  /** `performance.now()` when the listening line arrived. */
  listeningAt: number;
  /** Everything the child printed so far (stdout and stderr, by line). */
  output: string[];
  /** Stops the child (SIGTERM, then SIGKILL after 5 s) and returns its exit code. */
  close(): Promise<number>;
}

/** The command line of a mode. */
export function edgeCommand(options: SpawnEdgeOptions & { port: number; keysFile?: string }): string[] {
  const mode = options.mode ?? "isolate";
  const entry = options.entry ??
    (mode === "isolate" ? "tests/edge/_isolate_main.ts" : "examples/edge/main.ts");
  if (mode === "serve") {
    return [
      "run",
      "-A",
      "--unstable-raw-imports",
      "src/cli/serve.ts",
      "--model",
      options.model,
      "--store",
      options.adapters,
      "--read-only",
      "--ep",
      "wasm",
      "--host",
      "127.0.0.1",
      "--port",
      String(options.port),
      ...(options.keysFile ? ["--keys", options.keysFile] : []),
    ];
  }
  const permissions = mode === "full" ? ["-A"] : [
    "--no-prompt",
    `--allow-read=${[options.model, ...(options.adapters.startsWith("s3://") ? [] : [options.adapters])]}`,
    `--allow-net=${[`127.0.0.1:${options.port}`, ...(options.allowNet ?? [])].join(",")}`,
    `--allow-env=${[EDGE_ENV_ALLOW, ...(options.allowEnv ?? [])].join(",")}`,
    `--v8-flags=--max-old-space-size=${options.heapMb ?? 256}`,
  ];
  return [
    "serve",
    "--unstable-raw-imports",
    ...permissions,
    "--host",
    "127.0.0.1",
    "--port",
    String(options.port),
    entry,
  ];
}

/** A free loopback port (closed again; another process could take it, which is unlikely here). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Starts the server and resolves once it listens.
 *
 * @throws {Error} With the child's output when it exits or does not listen in time.
 */
export async function spawnEdge(options: SpawnEdgeOptions): Promise<EdgeServer> {
  const port = freePort();
  let keysFile: string | undefined;
  const env: Record<string, string> = {};
  if (options.mode === "serve" && options.keys !== undefined) {
    keysFile = await Deno.makeTempFile({ prefix: "edge_keys_", suffix: ".json" });
    await Deno.writeTextFile(keysFile, JSON.stringify(options.keys));
  } else {
    env.WEIGHTLORA_MODEL = options.model;
    env.WEIGHTLORA_ADAPTERS = options.adapters;
    if (options.keys !== undefined) env.WEIGHTLORA_KEYS = JSON.stringify(options.keys);
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const baseEnv = Deno.env.toObject();
  for (const name of Object.keys(baseEnv)) if (name.startsWith("WEIGHTLORA_")) delete baseEnv[name];
  const spawnedAt = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: edgeCommand({ ...options, port, keysFile }),
    cwd: ROOT,
    clearEnv: true,
    env: { ...baseEnv, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  let listening: ((at: number) => void) | undefined;
  const listened = new Promise<number>((resolve) => (listening = resolve));
  const pump = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        output.push(line);
        if (/Listening on http:\/\/127\.0\.0\.1:\d+/.test(line)) listening?.(performance.now());
      }
    }
    if (pending) output.push(pending);
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exitCode: number | undefined;
  const exited = child.status.then(async (s) => {
    await pumped;
    exitCode = s.code;
    if (keysFile) await Deno.remove(keysFile).catch(() => {});
    return s.code;
  });
  const close = async (): Promise<number> => {
    if (exitCode === undefined) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5_000);
      await exited;
      clearTimeout(timer);
    }
    return exitCode!;
  };
  const timeoutMs = options.timeoutMs ?? 120_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    listened.then((at) => ({ at })),
    exited.then((code) => ({ code })),
    new Promise<{ timeout: true }>((
      resolve,
    ) => (timer = setTimeout(() => resolve({ timeout: true }), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (!("at" in outcome)) {
    await close();
    const why = "code" in outcome
      ? `exited with code ${outcome.code}`
      : `did not listen within ${timeoutMs} ms`;
    const error = new Error(`The edge server (${options.mode ?? "isolate"}) ${why}:\n${output.join("\n")}`);
    (error as Error & { output?: string[] }).output = output;
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, child, spawnedAt, listeningAt: outcome.at, output, close };
}

/** Resident and peak resident memory of a process, bytes (Linux). */
export function processMemory(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
}

/** User + system CPU time of a process (all its threads), seconds (Linux, clock-tick resolution). */
export function processCpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // after the command name: state is field 3, utime 14, stime 15 (1-based in proc(5))
  const utime = Number(fields[14 - 3]), stime = Number(fields[15 - 3]);
  return (utime + stime) / 100; // USER_HZ is 100 on Linux
}
