/**
 * {@linkcode JobStore}: fine-tuning jobs, their events and their last checkpoint in the database, with a
 * queue that hands each job to exactly one trainer.
 *
 * A trainer {@linkcode JobStore.claim}s the oldest queued job (`FOR UPDATE SKIP LOCKED`, so two trainers
 * never take the same row) or a running job whose lease expired (its trainer died), and keeps the lease by
 * {@linkcode JobStore.heartbeat}. Every write of a trainer is fenced by its worker id: a trainer that lost
 * its lease cannot overwrite the new owner's checkpoint or result. Status changes and events are announced
 * with `NOTIFY` ({@linkcode JOBS_CHANNEL}, {@linkcode EVENTS_CHANNEL}).
 *
 * @module
 */

import type { AdapterFiles, AdapterRecord, AdapterStore } from "../adapter_store.ts";
import type { Database, Queryable } from "./database.ts";
import { DbAdapterStore } from "./db_adapter_store.ts";
import { newId } from "./file_store.ts";

/** Notified (payload: job id) when a job is created, cancelled or finishes. */
export const JOBS_CHANNEL = "weightlora_jobs";
/** Notified (payload: job id) when a job gets an event. */
export const EVENTS_CHANNEL = "weightlora_job_events";

/** OpenAI's job states. */
export type JobStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** States after which nothing changes. */
export const TERMINAL_STATUSES: readonly JobStatus[] = ["succeeded", "failed", "cancelled"];

/** Why a job failed. */
export interface JobError {
  /** A short code (`training_failed`, `invalid_training_file`, …). */
  code: string;
  /** What happened. */
  message: string;
  /** The request parameter at fault, if any. */
  param: string | null;
}

/** One stored job. */
export interface JobRecord {
  /** `ftjob-…`. */
  id: string;
  /** Owning tenant. */
  tenant: string;
  /** The base model's id. */
  model: string;
  /** Training file id. */
  trainingFile: string;
  /** Validation file id. */
  validationFile: string | null;
  /** Suffix of the produced adapter's name. */
  suffix: string | null;
  /** The method as requested, with every hyperparameter resolved (`{type, [type]: {hyperparameters}}`). */
  method: Record<string, unknown>;
  /** What the trainer needs (resolved training options and the like), as stored at creation. */
  options: Record<string, unknown>;
  /** State. */
  status: JobStatus;
  /** The produced adapter's name, once succeeded. */
  fineTunedModel: string | null;
  /** Why it failed. */
  error: JobError | null;
  /** The training summary, once finished. */
  result: Record<string, unknown> | null;
  /** Tokens trained on. */
  trainedTokens: number | null;
  /** Last step reported. */
  step: number;
  /** Steps of the run. */
  totalSteps: number;
  /** Creation time, Unix seconds. */
  createdAt: number;
  /** First start, Unix seconds. */
  startedAt: number | null;
  /** End, Unix seconds. */
  finishedAt: number | null;
  /** The trainer holding the lease. */
  lockedBy: string | null;
  /** How often it was claimed (1 + resumes). */
  attempts: number;
}

/** What {@linkcode JobStore.create} stores. */
export interface NewJob {
  /** Owning tenant. */
  tenant: string;
  /** Base model id. */
  model: string;
  /** Training file id (must be the tenant's). */
  trainingFile: string;
  /** Validation file id (must be the tenant's). */
  validationFile?: string | null;
  /** Suffix. */
  suffix?: string | null;
  /** Resolved method. */
  method: Record<string, unknown>;
  /** Resolved trainer options. */
  options: Record<string, unknown>;
  /** Steps of the run. */
  totalSteps: number;
}

/** One job event (OpenAI's `fine_tuning.job.event`). */
export interface JobEvent {
  /** Sequence number (increasing across the database). */
  seq: number;
  /** Job id. */
  jobId: string;
  /** Unix seconds, with the database clock's fraction. */
  createdAt: number;
  /** `info`, `warn` or `error`. */
  level: "info" | "warn" | "error";
  /** `message` or `metrics`. */
  type: "message" | "metrics";
  /** Text. */
  message: string;
  /** Metrics (step, loss, tokens/s, phase, active adapters) or other details. */
  data: Record<string, unknown> | null;
}

/** A new event. */
export type NewJobEvent = Pick<JobEvent, "level" | "type" | "message"> & { data?: Record<string, unknown> };

/** A stored checkpoint: the two files of the trainer's `checkpoint/` folder. */
export interface JobCheckpoint {
  /** Step it was taken at. */
  step: number;
  /** `trainer_state.json`. */
  trainerState: Uint8Array;
  /** `training_state.safetensors`. */
  trainingState: Uint8Array;
}

/** What a succeeded job stores. */
export interface JobSuccess {
  /** Adapter name to register for the tenant. */
  adapterName: string;
  /** The PEFT files. */
  files: AdapterFiles;
  /** The training summary. */
  result: Record<string, unknown>;
  /** Tokens trained on. */
  trainedTokens: number;
  /** Steps trained. */
  steps: number;
}

/** Options of {@linkcode JobStore.list} and {@linkcode JobStore.events}. */
export interface PageOptions {
  /** Return items after this id (jobs) or sequence number (events) in the listing order. */
  after?: string | number;
  /**
   * Most items.
   * @default {20}
   */
  limit?: number;
}

/** Thrown when a job is not in a state that allows the action (cancel of a finished job). */
export class JobStateError extends Error {
  /** The job's state. */
  readonly status: JobStatus;
  /**
   * @param message What was refused.
   * @param status The job's state.
   */
  constructor(message: string, status: JobStatus) {
    super(message);
    this.name = "JobStateError";
    this.status = status;
  }
}

/** Thrown by {@linkcode JobStore.create} when a file is missing or not the tenant's. */
export class MissingFileError extends Error {
  /** The request parameter (`training_file`, `validation_file`). */
  readonly param: string;
  /**
   * @param message Which file.
   * @param param The parameter.
   */
  constructor(message: string, param: string) {
    super(message);
    this.name = "MissingFileError";
    this.param = param;
  }
}

const EPOCH = "extract(epoch from now())";
const JOB_COLUMNS = `id, tenant, model, training_file, validation_file, suffix, method, options, status,
  fine_tuned_model, error, result, trained_tokens, step, total_steps, created_at, started_at, finished_at,
  locked_by, attempts`;

type JobRow = Record<string, unknown>;

function json<T>(text: unknown): T | null {
  return typeof text === "string" ? JSON.parse(text) as T : null;
}

function num(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function toJob(row: JobRow): JobRecord {
  return {
    id: row.id as string,
    tenant: row.tenant as string,
    model: row.model as string,
    trainingFile: row.training_file as string,
    validationFile: (row.validation_file as string | null) ?? null,
    suffix: (row.suffix as string | null) ?? null,
    method: json<Record<string, unknown>>(row.method) ?? {},
    options: json<Record<string, unknown>>(row.options) ?? {},
    status: row.status as JobStatus,
    fineTunedModel: (row.fine_tuned_model as string | null) ?? null,
    error: json<JobError>(row.error),
    result: json<Record<string, unknown>>(row.result),
    trainedTokens: num(row.trained_tokens),
    step: Number(row.step),
    totalSteps: Number(row.total_steps),
    createdAt: Math.floor(Number(row.created_at)),
    startedAt: row.started_at === null ? null : Math.floor(Number(row.started_at)),
    finishedAt: row.finished_at === null ? null : Math.floor(Number(row.finished_at)),
    lockedBy: (row.locked_by as string | null) ?? null,
    attempts: Number(row.attempts),
  };
}

function toEvent(row: Record<string, unknown>): JobEvent {
  return {
    seq: Number(row.seq),
    jobId: row.job_id as string,
    createdAt: Number(row.created_at),
    level: row.level as JobEvent["level"],
    type: row.type as JobEvent["type"],
    message: row.message as string,
    data: json<Record<string, unknown>>(row.data),
  };
}

async function insertEvent(tx: Queryable, jobId: string, event: NewJobEvent): Promise<void> {
  await tx.query(
    "insert into weightlora_job_events (job_id, level, type, message, data) values ($1, $2, $3, $4, $5)",
    [jobId, event.level, event.type, event.message, event.data ? JSON.stringify(event.data) : null],
  );
  await tx.query("select pg_notify($1, $2)", [EVENTS_CHANNEL, jobId]);
}

/** `name`, or the first of `name-2`, `name-3`, … that the tenant has no adapter of (within the name limit). */
async function freeAdapterName(tx: Queryable, tenant: string, name: string): Promise<string> {
  const taken = new Set(
    (await tx.query<{ name: string }>(
      "select name from weightlora_adapters where tenant = $1 and (name = $2 or name like $3)",
      [tenant, name, `${name.replace(/[\\%_]/g, "\\$&")}-%`],
    )).map((r) => r.name),
  );
  return firstFreeName(taken, name);
}

/** `name`, or the first of `name-2`, `name-3`, … not in `taken` (within the name limit). */
function firstFreeName(taken: Set<string>, name: string): string {
  if (!taken.has(name)) return name;
  for (let i = 2;; i++) {
    const suffix = `-${i}`;
    const candidate = `${name.slice(0, 64 - suffix.length)}${suffix}`;
    if (!taken.has(candidate)) return candidate;
  }
}

async function notifyJob(tx: Queryable, jobId: string): Promise<void> {
  await tx.query("select pg_notify($1, $2)", [JOBS_CHANNEL, jobId]);
}

/** Options of {@linkcode JobStore}. */
export interface JobStoreOptions {
  /**
   * Where succeeded jobs publish their adapters: another adapter store (`deno task serve --adapters
   * s3://…`), written while the job's row is locked, before the job is marked succeeded.
   * @default {the database's adapter table, in the job's transaction}
   */
  adapters?: AdapterStore;
}

/**
 * Jobs, events and checkpoints in the database.
 *
 * @example
 * ```ts ignore
 * import { JobStore } from "./job_store.ts";
 * const jobs = new JobStore(db);
 * const job = await jobs.claim("worker-1", { leaseSeconds: 15 });
 * if (job) await jobs.addEvent(job.id, { level: "info", type: "message", message: "Started" });
 * ```
 */
export class JobStore {
  /** The database. */
  readonly db: Database;
  /** Where succeeded jobs publish their adapters, when not in the database. */
  readonly adapters: AdapterStore | undefined;

  /**
   * @param db A migrated database.
   * @param options Where adapters are published.
   */
  constructor(db: Database, options: JobStoreOptions = {}) {
    this.db = db;
    this.adapters = options.adapters;
  }

  /**
   * Queues a job, checking in the same transaction that its files are the tenant's (and keeping them
   * from being deleted meanwhile).
   *
   * @param job The job.
   * @returns Its record (status `queued`).
   * @throws {MissingFileError} When a file does not exist for the tenant.
   */
  async create(job: NewJob): Promise<JobRecord> {
    return await this.db.transaction(async (tx) => {
      const files: [string, string | null | undefined][] = [
        ["training_file", job.trainingFile],
        ["validation_file", job.validationFile],
      ];
      for (const [param, id] of files) {
        if (!id) continue;
        const found = await tx.query(
          "select id from weightlora_files where tenant = $1 and id = $2 for share",
          [job.tenant, id],
        );
        if (!found.length) throw new MissingFileError(`No such file: ${id}`, param);
      }
      const rows = await tx.query(
        `insert into weightlora_jobs (id, tenant, model, training_file, validation_file, suffix, method,
           options, status, total_steps)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9) returning ${JOB_COLUMNS}`,
        [
          newId("ftjob"),
          job.tenant,
          job.model,
          job.trainingFile,
          job.validationFile ?? null,
          job.suffix ?? null,
          JSON.stringify(job.method),
          JSON.stringify(job.options),
          job.totalSteps,
        ],
      );
      const record = toJob(rows[0]);
      await insertEvent(tx, record.id, {
        level: "info",
        type: "message",
        message: `Created fine-tuning job ${record.id}`,
      });
      await notifyJob(tx, record.id);
      return record;
    });
  }

  /**
   * One job of a tenant.
   *
   * @param tenant Tenant (`undefined`: any, for trainers).
   * @param id Job id.
   * @returns The record, or `undefined`.
   */
  async get(tenant: string | undefined, id: string): Promise<JobRecord | undefined> {
    const rows = await this.db.query(
      `select ${JOB_COLUMNS} from weightlora_jobs where id = $1 and ($2::text is null or tenant = $2)`,
      [id, tenant ?? null],
    );
    return rows.length ? toJob(rows[0]) : undefined;
  }

  /**
   * The tenant's jobs, newest first.
   *
   * @param tenant Tenant.
   * @param options `after` (a job id: those created before it) and `limit`.
   * @returns Up to `limit` jobs and whether more follow.
   */
  async list(tenant: string, options: PageOptions = {}): Promise<{ jobs: JobRecord[]; hasMore: boolean }> {
    const limit = options.limit ?? 20;
    const rows = await this.db.query(
      `select ${JOB_COLUMNS} from weightlora_jobs j where tenant = $1 and ($2::text is null or
         (created_at, id) < (select created_at, id from weightlora_jobs where id = $2 and tenant = $1))
       order by created_at desc, id desc limit $3`,
      [tenant, options.after === undefined ? null : String(options.after), limit + 1],
    );
    return { jobs: rows.slice(0, limit).map(toJob), hasMore: rows.length > limit };
  }

  /**
   * Cancels a job of the tenant: a queued job is cancelled at once; a running one is marked cancelled and
   * its trainer stops after the current step (keeping its last checkpoint).
   *
   * @param tenant Tenant.
   * @param id Job id.
   * @returns The updated record, or `undefined` when the tenant has no such job.
   * @throws {JobStateError} When the job already finished.
   */
  async cancel(tenant: string, id: string): Promise<JobRecord | undefined> {
    return await this.db.transaction(async (tx) => {
      const current = await tx.query<{ status: JobStatus }>(
        "select status from weightlora_jobs where id = $1 and tenant = $2 for update",
        [id, tenant],
      );
      if (!current.length) return undefined;
      const status = current[0].status;
      if (TERMINAL_STATUSES.includes(status)) {
        throw new JobStateError(`Cannot cancel fine-tuning job ${id}: it has already ${status}`, status);
      }
      const rows = await tx.query(
        `update weightlora_jobs set status = 'cancelled', finished_at = ${EPOCH} where id = $1
         returning ${JOB_COLUMNS}`,
        [id],
      );
      await insertEvent(tx, id, {
        level: "info",
        type: "message",
        message: status === "running"
          ? "Job cancelled: the trainer stops after the current step and keeps its last checkpoint"
          : "Job cancelled",
      });
      await notifyJob(tx, id);
      return toJob(rows[0]);
    });
  }

  /**
   * Claims the oldest runnable job for a trainer: a queued job, or a running job whose lease expired.
   * Two trainers never claim the same job (`FOR UPDATE SKIP LOCKED`).
   *
   * @param workerId The trainer's id.
   * @param options `leaseSeconds`: how long a silent trainer keeps its job; `models`: only jobs of these
   *   base models (all when absent).
   * @returns The claimed job (status `running`), or `undefined` when none is runnable.
   */
  async claim(
    workerId: string,
    options: { leaseSeconds: number; models?: readonly string[] },
  ): Promise<JobRecord | undefined> {
    // a job cancelled while its trainer died keeps that trainer's lock: clear it once the lease is over
    await this.db.query(
      `update weightlora_jobs set locked_by = null, heartbeat_at = null
       where status = 'cancelled' and locked_by is not null
         and (heartbeat_at is null or heartbeat_at < ${EPOCH} - $1)`,
      [options.leaseSeconds],
    );
    const rows = await this.db.query(
      `with next as (
         select id from weightlora_jobs q
         where (status = 'queued'
            or (status = 'running' and (heartbeat_at is null or heartbeat_at < ${EPOCH} - $2)))
           and ($3::text is null or model in (select jsonb_array_elements_text($3::jsonb)))
         order by (select count(*) from weightlora_jobs r
                   where r.tenant = q.tenant and r.status = 'running' and r.id <> q.id
                     and r.heartbeat_at >= ${EPOCH} - $2),
           created_at, id
         for update skip locked
         limit 1)
       update weightlora_jobs j set status = 'running', locked_by = $1, heartbeat_at = ${EPOCH},
         started_at = coalesce(j.started_at, ${EPOCH}), attempts = j.attempts + 1
       from next where j.id = next.id
       returning ${JOB_COLUMNS.split(",").map((c) => `j.${c.trim()}`).join(", ")}`,
      [workerId, options.leaseSeconds, options.models ? JSON.stringify(options.models) : null],
    );
    return rows.length ? toJob(rows[0]) : undefined;
  }

  /**
   * Jobs of a tenant not yet finished (validating, queued or running), for its concurrent-jobs quota.
   *
   * @param tenant The tenant.
   * @returns How many.
   */
  async activeCount(tenant: string): Promise<number> {
    const rows = await this.db.query<{ n: number }>(
      `select count(*)::int as n from weightlora_jobs
       where tenant = $1 and status in ('validating_files', 'queued', 'running')`,
      [tenant],
    );
    return Number(rows[0].n);
  }

  /**
   * Expires every lease at once (and unlocks cancelled jobs). Only for a database this process owns alone
   * (an embedded folder): the trainers that held those leases died with the previous process.
   *
   * @returns Ids of the running jobs released.
   */
  async releaseOrphans(): Promise<string[]> {
    if (!this.db.exclusive) {
      throw new Error(`Cannot release orphaned jobs on ${this.db.location}: other processes may hold them`);
    }
    await this.db.query(
      "update weightlora_jobs set locked_by = null, heartbeat_at = null where status = 'cancelled' and locked_by is not null",
    );
    const rows = await this.db.query<{ id: string }>(
      "update weightlora_jobs set heartbeat_at = null where status = 'running' returning id",
    );
    return rows.map((r) => r.id);
  }

  /**
   * Renews a trainer's lease and records its progress.
   *
   * @param id Job id.
   * @param workerId The trainer's id.
   * @param step The last finished step, when known.
   * @returns The job's status, or `undefined` when the trainer no longer holds the job.
   */
  async heartbeat(id: string, workerId: string, step?: number): Promise<JobStatus | undefined> {
    const rows = await this.db.query<{ status: JobStatus }>(
      `update weightlora_jobs set heartbeat_at = ${EPOCH}, step = coalesce($3, step)
       where id = $1 and locked_by = $2 returning status`,
      [id, workerId, step ?? null],
    );
    return rows[0]?.status;
  }

  /**
   * Adds an event to a job.
   *
   * @param jobId Job id.
   * @param event Level, type, message, data.
   */
  async addEvent(jobId: string, event: NewJobEvent): Promise<void> {
    await this.db.transaction((tx) => insertEvent(tx, jobId, event));
  }

  /**
   * A job's events.
   *
   * @param jobId Job id (the caller checked the tenant).
   * @param options `after` (a sequence number) and `limit`; `order` `desc` (newest first, OpenAI's
   *   listing) or `asc` (for streams: events after `after` in the order they happened).
   * @returns Events and whether more follow.
   */
  async events(
    jobId: string,
    options: PageOptions & { order?: "asc" | "desc" } = {},
  ): Promise<{ events: JobEvent[]; hasMore: boolean }> {
    const limit = options.limit ?? 20;
    const asc = options.order === "asc";
    const after = options.after === undefined ? null : Number(options.after);
    const rows = await this.db.query(
      `select seq, job_id, created_at, level, type, message, data from weightlora_job_events
       where job_id = $1 and ($2::integer is null or seq ${asc ? ">" : "<"} $2)
       order by seq ${asc ? "asc" : "desc"} limit $3`,
      [jobId, after, limit + 1],
    );
    return { events: rows.slice(0, limit).map(toEvent), hasMore: rows.length > limit };
  }

  /**
   * Stores a job's newest checkpoint (replacing the previous one), if the trainer still holds the job.
   *
   * @param id Job id.
   * @param workerId The trainer's id.
   * @param checkpoint Step and files.
   * @returns Whether it was stored.
   */
  async saveCheckpoint(id: string, workerId: string, checkpoint: JobCheckpoint): Promise<boolean> {
    const rows = await this.db.query(
      `insert into weightlora_job_checkpoints (job_id, step, trainer_state, training_state)
       select $1, $3, $4, $5 where exists (select 1 from weightlora_jobs where id = $1 and locked_by = $2)
       on conflict (job_id) do update set step = excluded.step, trainer_state = excluded.trainer_state,
         training_state = excluded.training_state, created_at = excluded.created_at
       returning job_id`,
      [id, workerId, checkpoint.step, checkpoint.trainerState, checkpoint.trainingState],
    );
    return rows.length > 0;
  }

  /**
   * A job's last checkpoint.
   *
   * @param id Job id.
   * @returns The checkpoint, or `undefined` when none was saved.
   */
  async checkpoint(id: string): Promise<JobCheckpoint | undefined> {
    const rows = await this.db.query<{ step: number; trainer_state: Uint8Array; training_state: Uint8Array }>(
      "select step, trainer_state, training_state from weightlora_job_checkpoints where job_id = $1",
      [id],
    );
    if (!rows.length) return undefined;
    const r = rows[0];
    return { step: Number(r.step), trainerState: r.trainer_state, trainingState: r.training_state };
  }

  /**
   * Finishes a job successfully: registers its adapter for the tenant and marks it succeeded, in one
   * transaction — unless it was cancelled meanwhile or the trainer lost it. With
   * {@linkcode JobStore.adapters} set, the adapter is published there while the job's row is locked (and
   * withdrawn again if the job cannot be marked). An existing adapter of the same
   * name (the tenant uploaded one) is never replaced: the job's gets the first free name of
   * `<name>-2`, `<name>-3`, …, which `fine_tuned_model` and the final event report.
   *
   * @param id Job id.
   * @param workerId The trainer's id.
   * @param success Adapter name and files, summary, tokens.
   * @returns The adapter record, or `undefined` when nothing was stored (cancelled or lost).
   */
  async succeed(id: string, workerId: string, success: JobSuccess): Promise<AdapterRecord | undefined> {
    const store = this.adapters;
    let published: { tenant: string; name: string } | undefined;
    try {
      return await this.#succeed(id, workerId, success, (tenant, name) => published = { tenant, name });
    } catch (e) {
      // published to the other store, but the job could not be marked: withdraw the adapter (its name was free)
      if (store && published) await store.delete(published.tenant, published.name).catch(() => {});
      throw e;
    }
  }

  async #succeed(
    id: string,
    workerId: string,
    success: JobSuccess,
    onPublished: (tenant: string, name: string) => void,
  ): Promise<AdapterRecord | undefined> {
    const store = this.adapters;
    return await this.db.transaction(async (tx) => {
      const rows = await tx.query<{ tenant: string }>(
        "select tenant from weightlora_jobs where id = $1 and locked_by = $2 and status = 'running' for update",
        [id, workerId],
      );
      if (!rows.length) return undefined;
      const tenant = rows[0].tenant;
      let name: string;
      let record: AdapterRecord;
      if (store) {
        const taken = new Set((await store.list(tenant)).map((r) => r.name));
        name = firstFreeName(taken, success.adapterName);
        ({ record } = await store.put(tenant, name, success.files));
        onPublished(tenant, name);
      } else {
        name = await freeAdapterName(tx, tenant, success.adapterName);
        ({ record } = await DbAdapterStore.putIn(tx, { tenant, name, files: success.files }, { jobId: id }));
      }
      await tx.query(
        `update weightlora_jobs set status = 'succeeded', fine_tuned_model = $2, result = $3,
           trained_tokens = $4, step = $5, finished_at = ${EPOCH}, locked_by = null, heartbeat_at = null
         where id = $1`,
        [id, name, JSON.stringify(success.result), success.trainedTokens, success.steps],
      );
      const renamed = name === success.adapterName
        ? ""
        : ` (an adapter named ${success.adapterName} already existed and is left as it was)`;
      await insertEvent(tx, id, {
        level: "info",
        type: "message",
        message: `The job has successfully completed: adapter ${name} is served${renamed}`,
        data: { fine_tuned_model: name, version: record.version },
      });
      await notifyJob(tx, id);
      return record;
    });
  }

  /**
   * Marks a job failed (if the trainer still holds it and it was not cancelled).
   *
   * @param id Job id.
   * @param workerId The trainer's id.
   * @param error Code, message, param.
   * @returns Whether it was marked.
   */
  async fail(id: string, workerId: string, error: JobError): Promise<boolean> {
    return await this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `update weightlora_jobs set status = 'failed', error = $3, finished_at = ${EPOCH}, locked_by = null,
           heartbeat_at = null
         where id = $1 and locked_by = $2 and status = 'running' returning id`,
        [id, workerId, JSON.stringify(error)],
      );
      if (!rows.length) return false;
      await insertEvent(tx, id, { level: "error", type: "message", message: `Job failed: ${error.message}` });
      await notifyJob(tx, id);
      return true;
    });
  }

  /**
   * Releases a job a trainer stopped without finishing: a cancelled job keeps its status (and its last
   * checkpoint); a job still running (the trainer is shutting down) goes back to the queue.
   *
   * @param id Job id.
   * @param workerId The trainer's id.
   * @param message The event to add.
   */
  async release(id: string, workerId: string, message: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `update weightlora_jobs set locked_by = null, heartbeat_at = null,
           status = case when status = 'running' then 'queued' else status end
         where id = $1 and locked_by = $2 returning id`,
        [id, workerId],
      );
      if (!rows.length) return;
      await insertEvent(tx, id, { level: "info", type: "message", message });
      await notifyJob(tx, id);
    });
  }
}
