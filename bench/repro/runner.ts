/**
 * How `deno task repro` executes runs, shared by its presets: each run in a child process (one wasm thread),
 * a few at a time, stoppable by a signal; the work folder's settings check; the machine description; the
 * invocation history; atomic writes and the results JSON layout.
 *
 * @module
 */

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");

/** The repository root (no trailing slash). */
export const REPO_ROOT: string = ROOT;

/**
 * Reads a run folder's `result.json`.
 *
 * @param dir The run's folder.
 * @returns The result, or undefined when the run has not finished.
 */
export function readResult<T>(dir: string): T | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/result.json`)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Refuses a work folder whose runs were made with other run settings (they would not be comparable); a
 * folder that differs only in which runs exist is extended.
 *
 * @param work The work folder.
 * @param config This invocation's settings.
 * @param differ The run settings that differ between two configurations.
 */
export async function claimWorkFolder<C>(
  work: string,
  config: C,
  differ: (a: C, b: C) => string[],
): Promise<void> {
  await Deno.mkdir(work, { recursive: true });
  const path = `${work}/config.json`;
  try {
    const old = JSON.parse(await Deno.readTextFile(path)) as C;
    const names = differ(old, config);
    if (names.length > 0) {
      throw new Error(
        `Cannot continue in ${work}: it holds runs made with other settings (${names.join(", ")} differ); ` +
          `use another --work folder or remove it`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await writeAtomic(path, JSON.stringify(config, null, 2) + "\n");
}

/** Runs jobs in child processes (`script JOB.json`), at most `jobs` at a time, and stops cleanly on a signal. */
export class Runner<Spec extends { key: string }, Result> {
  #running = new Set<Deno.ChildProcess>();
  #script: string;
  #work: string;
  #maxRuns: number;
  #job: (spec: Spec, dir: string) => unknown;
  started = 0;
  finished = 0;
  stopping = false;

  /**
   * @param options The child script, the work folder, the most runs to start, and the job written for a run.
   */
  constructor(
    options: { script: string; work: string; maxRuns: number; job: (spec: Spec, dir: string) => unknown },
  ) {
    this.#script = options.script;
    this.#work = options.work;
    this.#maxRuns = options.maxRuns;
    this.#job = options.job;
  }

  /** A run's folder. */
  runDir(spec: Spec): string {
    return `${this.#work}/runs/${spec.key}`;
  }

  /** Whether another run may start now. */
  get canStart(): boolean {
    return !this.stopping && this.started < this.#maxRuns;
  }

  /** Runs one job (or reads its result); undefined when it may not start or was stopped. */
  async run(spec: Spec): Promise<Result | undefined> {
    const dir = this.runDir(spec);
    const done = readResult<Result>(dir);
    if (done) return done;
    if (!this.canStart) return undefined;
    this.started++;
    await Deno.mkdir(dir, { recursive: true });
    const jobPath = `${dir}/job.json`;
    await Deno.writeTextFile(jobPath, JSON.stringify(this.#job(spec, dir), null, 2) + "\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        "--config",
        `${ROOT}/deno.json`,
        this.#script,
        jobPath,
      ],
      env: { WEIGHTLORA_WASM_THREADS: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#running.add(child);
    const output = await child.output();
    this.#running.delete(child);
    if (this.stopping) return undefined;
    if (!output.success) {
      const err = new TextDecoder().decode(output.stderr).split("\n").filter((l) =>
        !l.includes("XDG_RUNTIME_DIR")
      );
      throw new Error(`Run ${spec.key} failed (exit ${output.code}):\n${err.slice(-20).join("\n")}`);
    }
    this.finished++;
    return readResult<Result>(dir);
  }

  /** Kills the running children (their runs resume from their checkpoints next time). */
  stop(): void {
    this.stopping = true;
    for (const child of this.#running) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
    }
  }
}

/**
 * A small promise pool: `worker` is called on queue items, `jobs` at a time; items may be added while running
 * (at the end, or at the front to run next).
 *
 * @param queue The items.
 * @param jobs Items at a time.
 * @param worker The work on one item.
 */
export async function pool<T>(queue: T[], jobs: number, worker: (item: T) => Promise<void>): Promise<void> {
  const active = new Set<Promise<void>>();
  while (queue.length > 0 || active.size > 0) {
    while (queue.length > 0 && active.size < jobs) {
      const p: Promise<void> = worker(queue.shift()!).finally(() => active.delete(p));
      active.add(p);
    }
    if (active.size > 0) await Promise.race(active);
  }
}

/**
 * The machine: CPU, cores, memory, OS, Deno and onnxruntime-web versions.
 *
 * @returns A description for the results JSON.
 */
export function machine(): Record<string, unknown> {
  // Deno reads /proc only with --allow-all: ask `cat` (the task may run subprocesses) when it refuses
  let cpuinfo = "";
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    try {
      const out = new Deno.Command("cat", { args: ["/proc/cpuinfo"], stdout: "piped", stderr: "null" })
        .outputSync();
      cpuinfo = new TextDecoder().decode(out.stdout);
    } catch {
      cpuinfo = "";
    }
  }
  let memoryGiB: number | null = null;
  try {
    memoryGiB = Number((Deno.systemMemoryInfo().total / 2 ** 30).toFixed(1));
  } catch {
    memoryGiB = null;
  }
  const ort = /onnxruntime-web@([\d.]+)/.exec(Deno.readTextFileSync(`${ROOT}/deno.json`))?.[1] ?? "unknown";
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? "unknown CPU",
    cores: navigator.hardwareConcurrency,
    memoryGiB,
    os: `${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
    deno: Deno.version.deno,
    onnxruntimeWeb: ort,
  };
}

/**
 * Writes a file through a temporary name and a rename, creating its folder.
 *
 * @param path The file.
 * @param text Its content.
 */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${path}.tmp`, text);
  await Deno.rename(`${path}.tmp`, path);
}

/**
 * The results JSON: pretty at the top, one line per run (the file stays small and diffable).
 *
 * @param json The document; its `runs` go one per line.
 * @returns The text.
 */
export function resultsJson(json: Record<string, unknown> & { runs: unknown[] }): string {
  const { runs, ...head } = json;
  const top = JSON.stringify(head, null, 2);
  const lines = runs.map((r) => `    ${JSON.stringify(r)}`).join(",\n");
  return `${top.slice(0, -2)},\n  "runs": [\n${lines}\n  ]\n}\n`;
}

/** One invocation's timing in `<work>/invocations.json`. */
export interface Invocation {
  /** Wall time, s. */
  wallS: number;
  /** Runs started. */
  runsStarted: number;
  /** Load averages at the start. */
  loadStart: number[];
  /** Load averages at the end. */
  loadEnd: number[];
  /** When it ended. */
  date: string;
}

/**
 * Appends this invocation's timing to `<work>/invocations.json` and returns them all.
 *
 * @param work The work folder.
 * @param entry This invocation.
 * @returns Every invocation so far.
 */
export async function recordInvocation(
  work: string,
  entry: { wallS: number; runsStarted: number; loadStart: number[] },
): Promise<Invocation[]> {
  const path = `${work}/invocations.json`;
  let history: Invocation[] = [];
  try {
    history = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  history.push({ ...entry, loadEnd: Deno.loadavg(), date: new Date().toISOString() });
  await writeAtomic(path, JSON.stringify(history, null, 2) + "\n");
  return history;
}
