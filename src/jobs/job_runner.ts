/**
 * {@linkcode JobRunner}: the trainer side of the job queue. It claims jobs from the database (at most
 * `workers` at once), runs each in a Deno Worker (`workers/train_worker.ts`, never on the request
 * thread), records progress events, stores every checkpoint, and finishes the job: a succeeded job's
 * adapter is registered for its tenant in the same transaction, so it is served at once.
 *
 * A lease (renewed every `heartbeatSeconds`) keeps the job; when the process dies, the lease expires
 * and any runner on the database resumes the job from its last checkpoint — at once on an embedded
 * database, which only this process can open ({@linkcode JobStore.releaseOrphans}). Cancellation is seen on
 * the next heartbeat or at once through `NOTIFY`; the worker stops after its current step and keeps a
 * checkpoint.
 *
 * @module
 */

import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import type { StepRecord } from "../train/trainer.ts";
import type { FileStore } from "../store/db/file_store.ts";
import { type JobRecord, JOBS_CHANNEL, type JobStore } from "../store/db/job_store.ts";
import type { JobTrainOptions } from "./hyperparameters.ts";
import type { FromWorker, ToWorker, TrainJobSpec } from "./worker_protocol.ts";
import { type FolderLock, LOCK_FILE, lockFolder } from "../store/folder_lock.ts";

/** The name prefix of a runner's default scratch folder (in the system's temporary folder). */
export const SCRATCH_PREFIX = "weightlora-jobs-";

/**
 * Removes the scratch folders of runners that were killed: siblings of `own` named {@linkcode
 * SCRATCH_PREFIX}… whose lock can be taken (a live runner holds its own; the OS dropped a dead one's)
 * and whose lock file is over a minute old. Folders without a lock file (older versions) are left alone.
 */
async function sweepScratch(own: string): Promise<string[]> {
  const parent = own.slice(0, own.lastIndexOf("/")) || "/";
  const removed: string[] = [];
  for await (const entry of Deno.readDir(parent)) {
    const path = `${parent}/${entry.name}`;
    if (!entry.isDirectory || !entry.name.startsWith(SCRATCH_PREFIX) || path === own) continue;
    // a folder younger than a minute may be a starting runner's, between creating and locking it
    const info = await Deno.lstat(`${path}/${LOCK_FILE}`).catch(() => undefined);
    if (!info || Date.now() - (info.mtime?.getTime() ?? Date.now()) < 60_000) continue;
    let lock: FolderLock;
    try {
      lock = await lockFolder(path, { what: "scratch folder" });
    } catch {
      continue; // a live runner's (FolderLockedError), or vanished meanwhile
    }
    lock.release();
    await Deno.remove(path, { recursive: true }).catch(() => {});
    removed.push(path);
  }
  return removed;
}

/**
 * Deno's own Worker, captured when this module loads: onnxruntime-web's threaded wasm build replaces
 * `globalThis.Worker` with Node's `worker_threads.Worker` when its first wasm session starts in this
 * thread (a serving engine, a test), and a worker of that kind has no `self`.
 */
const WebWorker: typeof Worker = globalThis.Worker;

/** A base model the runner can train on. */
export interface RunnerModel {
  /** Model id (a job's `model`). */
  id: string;
  /** Its Hugging Face folder. */
  dir: string;
}

/** Options of {@linkcode JobRunner}. */
export interface JobRunnerOptions {
  /** The job store. */
  jobs: JobStore;
  /** The file store (training data). */
  files: FileStore;
  /** Models by id. */
  models: ReadonlyMap<string, RunnerModel>;
  /**
   * Jobs trained at once.
   * @default {1}
   */
  workers?: number;
  /**
   * Execution provider of the training sessions.
   * @default {"auto"}
   */
  ep?: ExecutionProviderChoice;
  /**
   * This runner's id in leases.
   * @default a random `trainer-…` id
   */
  workerId?: string;
  /**
   * Seconds without a heartbeat after which another runner may take a job over.
   * @default {15}
   */
  leaseSeconds?: number;
  /**
   * Seconds between heartbeats (lease renewal, progress, cancellation check).
   * @default {1}
   */
  heartbeatSeconds?: number;
  /**
   * Seconds between queue polls when no notification arrives.
   * @default {2}
   */
  pollSeconds?: number;
  /**
   * Least seconds between two metrics events of a job (the first and last steps always get one).
   * @default {1}
   */
  metricsEverySeconds?: number;
  /**
   * Scratch folder for the workers' outputs.
   * @default a new temporary folder
   */
  workDir?: string;
  /**
   * The folder in which the runner makes its scratch folder (when `workDir` is not given) and sweeps
   * killed runners' scratch folders.
   * @default the system's temporary folder
   */
  scratchParent?: string;
  /**
   * Scheduling niceness of the training threads (0–19, Linux `nice`): above 0, a training step yields the
   * CPU to everything else on the machine (serving, other processes) whenever both want it, and runs at full
   * speed otherwise. 0 leaves training at the process's priority. Needs `--allow-sys=setPriority,getPriority`
   * (else training runs at normal priority and the log says so once).
   * @default {0}
   */
  trainNice?: number;
  /**
   * Log lines (job claimed, finished, failed).
   * @default {console.error}
   */
  log?: (message: string) => void;
}

/**
 * The adapter name a job produces: `ft-<suffix>-<8 characters of the job id>`, or `ft-<…>` without a suffix.
 *
 * @param job The job.
 * @returns A valid adapter name.
 */
export function fineTunedName(job: Pick<JobRecord, "id" | "suffix">): string {
  const short = job.id.replace(/^ftjob-/, "").slice(0, 8);
  return job.suffix ? `ft-${job.suffix}-${short}` : `ft-${short}`;
}

interface Running {
  job: JobRecord;
  /** Its worker, once started (after the job's data is read). */
  worker?: Worker;
  cancelled: boolean;
  /** The worker reported its end (done or error): later notifications are about the job's own end. */
  finished: boolean;
  done: Promise<void>;
}

/**
 * Claims and trains jobs.
 *
 * @example
 * ```ts ignore
 * import { JobRunner } from "./job_runner.ts";
 * const runner = new JobRunner({ jobs, files, models: new Map([["stories260K", { id: "stories260K", dir }]]) });
 * await runner.start();
 * // …
 * await runner.stop();
 * ```
 */
export class JobRunner {
  /** This runner's lease id. */
  readonly workerId: string;
  #o:
    & Required<Omit<JobRunnerOptions, "workDir" | "scratchParent">>
    & Pick<JobRunnerOptions, "workDir" | "scratchParent">;
  #running = new Map<string, Running>();
  #stopped = true;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #workDir: string | undefined;
  #workLock: FolderLock | undefined;
  #trainingNice: number | null | undefined;

  /** @param options Stores, models, concurrency and timings. */
  constructor(options: JobRunnerOptions) {
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`Invalid number of training workers ${workers}: expected an integer ≥ 1`);
    }
    const trainNice = options.trainNice ?? 0;
    if (!Number.isInteger(trainNice) || trainNice < 0 || trainNice > 19) {
      throw new RangeError(`Invalid training niceness ${trainNice}: expected an integer from 0 to 19`);
    }
    this.workerId = options.workerId ?? `trainer-${crypto.randomUUID().slice(0, 8)}`;
    this.#o = {
      ep: "auto",
      leaseSeconds: 15,
      heartbeatSeconds: 1,
      pollSeconds: 2,
      metricsEverySeconds: 1,
      log: (m: string) => console.error(m),
      workerId: this.workerId,
      ...options,
      workers,
      trainNice,
    };
  }

  /**
   * The niceness the last training thread reported: a number once set, `null` when it could not be set,
   * `undefined` before a job started (or with `trainNice: 0`).
   */
  get trainingNice(): number | null | undefined {
    return this.#trainingNice;
  }

  /** Ids of the jobs training now. */
  get running(): string[] {
    return [...this.#running.keys()];
  }

  /** Starts claiming jobs (after releasing orphaned ones on an embedded database). */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    if (this.#o.workDir) this.#workDir = this.#o.workDir;
    else {
      this.#workDir = await Deno.makeTempDir({ prefix: SCRATCH_PREFIX, dir: this.#o.scratchParent });
      this.#workLock = await lockFolder(this.#workDir, { what: "scratch folder" });
      const swept = await sweepScratch(this.#workDir);
      if (swept.length) this.#o.log(`jobs: removed ${swept.length} scratch folder(s) of killed trainers`);
    }
    const { jobs } = this.#o;
    if (jobs.db.exclusive) {
      const orphans = await jobs.releaseOrphans();
      if (orphans.length) {
        this.#o.log(`jobs: resuming ${orphans.length} interrupted job(s): ${orphans.join(", ")}`);
      }
    }
    this.#unlisten = await jobs.db.listen(JOBS_CHANNEL, (id) => {
      const running = this.#running.get(id);
      if (running) void this.#checkCancel(running);
      else this.#wake?.();
    });
    this.#loop = this.#claimLoop();
  }

  /**
   * Stops: no new claims; running jobs stop after their current step (with a checkpoint) and go back to
   * the queue, where this or another runner resumes them.
   *
   * @param options `timeoutSeconds`: how long to wait for workers before terminating them (default 30).
   */
  async stop(options: { timeoutSeconds?: number } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    await this.#unlisten?.().catch(() => {});
    const all = [...this.#running.values()];
    for (const r of all) this.#send(r, { type: "cancel" });
    const timeout = (options.timeoutSeconds ?? 30) * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(all.map((r) => r.done)),
      new Promise<void>((resolve) => timer = setTimeout(resolve, timeout)),
    ]);
    clearTimeout(timer);
    for (const r of this.#running.values()) {
      r.worker?.terminate();
      await this.#o.jobs.release(r.job.id, this.workerId, "Trainer stopped: the job goes back to the queue")
        .catch(() => {});
    }
    this.#running.clear();
    if (!this.#o.workDir && this.#workDir) {
      this.#workLock?.release();
      this.#workLock = undefined;
      await Deno.remove(this.#workDir, { recursive: true }).catch(() => {});
    }
  }

  async #claimLoop(): Promise<void> {
    while (!this.#stopped) {
      if (this.#running.size < this.#o.workers) {
        let job: JobRecord | undefined;
        try {
          job = await this.#o.jobs.claim(this.workerId, {
            leaseSeconds: this.#o.leaseSeconds,
            models: [...this.#o.models.keys()],
          });
        } catch (e) {
          if (!this.#stopped) this.#o.log(`jobs: cannot claim a job: ${(e as Error).message}`);
        }
        if (job && !this.#stopped) {
          this.#begin(job);
          continue;
        }
        if (job) await this.#o.jobs.release(job.id, this.workerId, "Trainer stopped before starting");
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#o.pollSeconds * 1000);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }

  #begin(job: JobRecord): void {
    const running: Running = { job, cancelled: false, finished: false, done: Promise.resolve() };
    this.#running.set(job.id, running);
    running.done = this.#run(running).catch((e) => {
      this.#o.log(`jobs: ${job.id}: ${(e as Error).message}`);
    }).finally(() => {
      running.worker?.terminate();
      this.#running.delete(job.id);
      this.#wake?.();
    });
  }

  #send(running: Running, message: ToWorker): void {
    try {
      running.worker?.postMessage(message);
    } catch {
      // the worker is gone
    }
  }

  async #checkCancel(running: Running, step?: number): Promise<void> {
    if (running.finished) return;
    let status: string | undefined;
    try {
      status = await this.#o.jobs.heartbeat(running.job.id, this.workerId, step);
    } catch (e) {
      this.#o.log(`jobs: ${running.job.id}: heartbeat failed: ${(e as Error).message}`);
      return;
    }
    if (running.finished) return;
    if (status !== "running" && !running.cancelled) {
      running.cancelled = true;
      this.#send(running, { type: "cancel" });
      if (status === undefined) this.#o.log(`jobs: ${running.job.id}: lease lost; stopping its worker`);
    }
  }

  async #run(running: Running): Promise<void> {
    const { jobs, files } = this.#o;
    const job = running.job;
    const id = job.id;
    const me = this.workerId;
    const fail = (code: string, message: string) => jobs.fail(id, me, { code, message, param: null });
    const model = this.#o.models.get(job.model);
    if (!model) {
      await fail("model_not_found", `This trainer does not serve model ${job.model}`);
      return;
    }
    const trainText = await files.content(job.tenant, job.trainingFile);
    const evalText = job.validationFile ? await files.content(job.tenant, job.validationFile) : undefined;
    if (!trainText || (job.validationFile && !evalText)) {
      await fail("file_not_found", `The training or validation file of ${id} no longer exists`);
      return;
    }
    const checkpoint = await jobs.checkpoint(id);
    const workDir = await Deno.makeTempDir({ dir: this.#workDir, prefix: `${id}-` });
    const decoder = new TextDecoder();
    const spec: TrainJobSpec = {
      jobId: id,
      modelDir: model.dir,
      modelId: model.id,
      options: job.options as unknown as JobTrainOptions,
      ep: this.#o.ep,
      train: { name: job.trainingFile, text: decoder.decode(trainText) },
      eval: evalText ? { name: job.validationFile!, text: decoder.decode(evalText) } : undefined,
      checkpoint,
      workDir,
    };
    await jobs.addEvent(id, {
      level: "info",
      type: "message",
      message: checkpoint
        ? `Resuming fine-tuning job from its checkpoint at step ${checkpoint.step} (attempt ${job.attempts})`
        : `Fine-tuning job started on ${me}`,
      data: { worker: me, attempt: job.attempts, resumed_from_step: checkpoint?.step ?? null },
    });
    this.#o.log(
      `jobs: ${id} (${job.tenant}) ${checkpoint ? `resumed at step ${checkpoint.step}` : "started"}`,
    );

    let lastStep = checkpoint?.step ?? job.step;
    let lastMetrics = 0;
    // database writes of this job, in the order the worker produced them
    let writes = Promise.resolve();
    const queue = (fn: () => Promise<unknown>) => {
      writes = writes.then(fn).then(() => {}, (e) => this.#o.log(`jobs: ${id}: ${(e as Error).message}`));
    };
    const metrics = (record: StepRecord, total: number) => {
      const now = performance.now();
      const due = now - lastMetrics >= this.#o.metricsEverySeconds * 1000 || record.step === total ||
        lastMetrics === 0;
      if (!due) return;
      lastMetrics = now;
      queue(() =>
        jobs.addEvent(id, {
          level: "info",
          type: "metrics",
          message: `Step ${record.step}/${total}: training loss=${record.loss.toFixed(4)}`,
          data: {
            step: record.step,
            total_steps: total,
            train_loss: record.loss,
            learning_rate: record.lr,
            tokens_per_s: record.tokens_per_s,
            phase: record.phase,
            active_adapters: record.active,
            elapsed_s: record.elapsed,
            ...(record.eval_loss === undefined ? {} : { valid_loss: record.eval_loss }),
          },
        })
      );
    };

    const heartbeat = setInterval(
      () => void this.#checkCancel(running, lastStep),
      this.#o.heartbeatSeconds * 1000,
    );
    try {
      await new Promise<void>((resolve) => {
        // handlers are attached in the same tick as the worker starts, so no early error is lost
        const worker = new WebWorker(new URL("../../workers/train_worker.ts", import.meta.url), {
          type: "module",
        });
        running.worker = worker;
        worker.onmessage = (event: MessageEvent<FromWorker>) => {
          const m = event.data;
          switch (m.type) {
            case "ready":
              this.#send(running, { type: "start", spec, nice: this.#o.trainNice });
              if (running.cancelled) this.#send(running, { type: "cancel" });
              break;
            case "priority":
              if (m.nice === null && this.#trainingNice !== null) {
                this.#o.log(`jobs: training runs at the server's priority: ${m.reason}`);
              }
              this.#trainingNice = m.nice;
              break;
            case "step":
              lastStep = m.record.step;
              metrics(m.record, m.total);
              break;
            case "note":
              if (!/^Saved checkpoint/.test(m.message)) {
                queue(() => jobs.addEvent(id, { level: "info", type: "message", message: m.message }));
              }
              break;
            case "checkpoint":
              queue(async () => {
                if (await jobs.saveCheckpoint(id, me, m.checkpoint)) {
                  this.#o.log(`jobs: ${id} checkpoint at step ${m.checkpoint.step}`);
                }
              });
              break;
            case "done":
              running.finished = true;
              queue(async () => {
                if (!m.adapter) {
                  await jobs.release(
                    id,
                    me,
                    `Training stopped at step ${m.summary.steps}; the checkpoint of that step is kept`,
                  );
                  this.#o.log(`jobs: ${id} stopped at step ${m.summary.steps}`);
                  return;
                }
                const record = await jobs.succeed(id, me, {
                  adapterName: fineTunedName(job),
                  files: m.adapter,
                  result: m.summary as unknown as Record<string, unknown>,
                  trainedTokens: m.summary.tokens_seen,
                  steps: m.summary.steps,
                });
                if (!record) {
                  await jobs.release(
                    id,
                    me,
                    "Training finished after the job was cancelled: no adapter stored",
                  );
                }
                this.#o.log(
                  `jobs: ${id} ${record ? `succeeded: adapter ${record.name}` : "finished, not stored"}`,
                );
              });
              queue(() => Promise.resolve(resolve()));
              break;
            case "error":
              running.finished = true;
              queue(async () => {
                await fail("training_failed", m.message);
                this.#o.log(`jobs: ${id} failed: ${m.message}`);
              });
              queue(() => Promise.resolve(resolve()));
              break;
          }
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          running.finished = true;
          queue(() => fail("training_failed", `The training worker crashed: ${event.message}`));
          queue(() => Promise.resolve(resolve()));
        };
      });
      await writes;
    } finally {
      clearInterval(heartbeat);
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    }
  }
}
