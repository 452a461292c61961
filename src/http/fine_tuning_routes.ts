/**
 * `/fine_tuning/jobs` routes shaped like OpenAI's fine-tuning API: create (`{model, training_file,
 * validation_file?, suffix?, method: {type, <type>: {hyperparameters}}}`), list, get, events (a JSON list,
 * or `?stream=true` for server-sent events until the job ends) and cancel. A tenant sees only its own jobs;
 * another tenant's job is "not found".
 *
 * @module
 */

import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { createJob, type JobModel, JobRequestError } from "../jobs/create_job.ts";
import {
  EVENTS_CHANNEL,
  type JobEvent,
  type JobRecord,
  JobStateError,
  type JobStore,
  TERMINAL_STATUSES,
} from "../store/db/job_store.ts";
import type { FileStore } from "../store/db/file_store.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

/** Options of {@linkcode fineTuningRoutes}. */
export interface FineTuningRoutesOptions {
  /** Job store. */
  jobs: JobStore;
  /** File store. */
  files: FileStore;
  /** Served base models by id. */
  models: ReadonlyMap<string, JobModel>;
  /**
   * Seconds between checks of a streamed job when no notification arrives.
   * @default {1}
   */
  streamPollSeconds?: number;
}

/**
 * A job as OpenAI's API shows it (plus `progress`).
 *
 * @param job The record.
 * @returns The `fine_tuning.job` object.
 */
export function jobObject(job: JobRecord): Record<string, unknown> {
  const type = job.method.type as string;
  const hyperparameters = (job.method[type] as { hyperparameters?: Record<string, unknown> } | undefined)
    ?.hyperparameters ?? {};
  return {
    object: "fine_tuning.job",
    id: job.id,
    model: job.model,
    created_at: job.createdAt,
    finished_at: job.finishedAt,
    fine_tuned_model: job.fineTunedModel,
    organization_id: job.tenant,
    // the finished adapter, as a tar of its two PEFT files (GET it with the same API key)
    result_files: job.fineTunedModel ? [`/v1/adapters/${job.fineTunedModel}/content`] : [],
    status: job.status,
    validation_file: job.validationFile,
    training_file: job.trainingFile,
    hyperparameters,
    trained_tokens: job.trainedTokens,
    error: job.error,
    seed: hyperparameters.seed ?? null,
    estimated_finish: null,
    integrations: [],
    metadata: null,
    suffix: job.suffix,
    method: job.method,
    progress: { step: job.step, total_steps: job.totalSteps, attempts: job.attempts },
  };
}

/**
 * An event as OpenAI's API shows it.
 *
 * @param event The event.
 * @returns The `fine_tuning.job.event` object.
 */
export function eventObject(event: JobEvent): Record<string, unknown> {
  return {
    object: "fine_tuning.job.event",
    id: `ftevent-${event.seq}`,
    created_at: Math.floor(event.createdAt),
    level: event.level,
    message: event.message,
    data: event.data,
    type: event.type,
  };
}

/** The largest event sequence number (a 32-bit `integer` column). */
const MAX_EVENT_SEQ = 2 ** 31 - 1;

function limitOf(text: string | undefined): number | undefined {
  if (text === undefined) return 20;
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= 100 ? n : undefined;
}

/**
 * The `/fine_tuning/jobs` sub-app (mount it at `/`, behind the auth middleware; `createApp`'s `routes` does that).
 *
 * @param options Stores and served models.
 * @returns A Hono app.
 * @example
 * ```ts ignore
 * app.route("/", fineTuningRoutes({ jobs: new JobStore(db), files: new FileStore(db), models }));
 * ```
 */
export function fineTuningRoutes(options: FineTuningRoutesOptions): Hono<AppEnv> {
  const { jobs, files, models } = options;
  const pollMs = (options.streamPollSeconds ?? 1) * 1000;
  const app = new Hono<AppEnv>();
  const notFound = (id: string) =>
    new ApiError(404, `No such fine-tuning job: ${id}`, {
      param: "fine_tuning_job_id",
      code: "job_not_found",
    });
  const badLimit = (text: string | undefined) =>
    new ApiError(400, `Invalid limit ${JSON.stringify(text)}: expected an integer in 1..100`, {
      param: "limit",
    });

  app.post("/v1/fine_tuning/jobs", async function createFineTuningJob(c) {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (e) {
      throw new ApiError(400, `Invalid JSON in the request body: ${(e as Error).message}`);
    }
    try {
      const job = await createJob(body, { tenant: c.get("tenant"), jobs, files, models });
      return c.json(jobObject(job));
    } catch (e) {
      if (e instanceof JobRequestError) {
        throw new ApiError(e.status, e.message, { param: e.param ?? undefined, code: e.code });
      }
      throw e;
    }
  });

  app.get("/v1/fine_tuning/jobs", async function listFineTuningJobs(c) {
    const limit = limitOf(c.req.query("limit"));
    if (limit === undefined) throw badLimit(c.req.query("limit"));
    const { jobs: list, hasMore } = await jobs.list(c.get("tenant"), { after: c.req.query("after"), limit });
    return c.json({ object: "list", data: list.map(jobObject), has_more: hasMore });
  });

  app.get("/v1/fine_tuning/jobs/:id", async function getFineTuningJob(c) {
    const job = await jobs.get(c.get("tenant"), c.req.param("id"));
    if (!job) throw notFound(c.req.param("id"));
    return c.json(jobObject(job));
  });

  app.post("/v1/fine_tuning/jobs/:id/cancel", async function cancelFineTuningJob(c) {
    const id = c.req.param("id");
    let job: JobRecord | undefined;
    try {
      job = await jobs.cancel(c.get("tenant"), id);
    } catch (e) {
      if (e instanceof JobStateError) {
        throw new ApiError(409, e.message, { param: "fine_tuning_job_id", code: "job_not_cancellable" });
      }
      throw e;
    }
    if (!job) throw notFound(id);
    return c.json(jobObject(job));
  });

  app.get("/v1/fine_tuning/jobs/:id/events", async function listFineTuningEvents(c) {
    const id = c.req.param("id");
    const job = await jobs.get(c.get("tenant"), id);
    if (!job) throw notFound(id);
    const afterText = c.req.query("after");
    const after = afterText === undefined ? undefined : Number(afterText.replace(/^ftevent-/, ""));
    if (after !== undefined && !(Number.isInteger(after) && after >= 0 && after <= MAX_EVENT_SEQ)) {
      throw new ApiError(
        400,
        `Invalid after ${
          JSON.stringify(afterText)
        }: expected an event id (ftevent-N, N in 0..${MAX_EVENT_SEQ})`,
        { param: "after" },
      );
    }
    const stream = c.req.query("stream");
    if (stream !== "true") {
      const limit = limitOf(c.req.query("limit"));
      if (limit === undefined) throw badLimit(c.req.query("limit"));
      const page = await jobs.events(id, { after, limit });
      return c.json({ object: "list", data: page.events.map(eventObject), has_more: page.hasMore });
    }
    return streamSSE(c, async function streamEvents(sse) {
      let wake: (() => void) | undefined;
      const unlisten = await jobs.db.listen(EVENTS_CHANNEL, (jobId) => {
        if (jobId === id) wake?.();
      });
      let closed = false;
      sse.onAbort(() => {
        closed = true;
        wake?.();
      });
      // the request deadline ends the stream too (with an error event saying so)
      const deadline = c.get("signal") as AbortSignal | undefined;
      const onDeadline = () => {
        closed = true;
        wake?.();
      };
      deadline?.addEventListener("abort", onDeadline, { once: true });
      let cursor = after ?? 0;
      try {
        while (!closed) {
          // read the job first: events written before it ended are then certainly visible below
          const current = await jobs.get(undefined, id);
          const ended = !current || (TERMINAL_STATUSES.includes(current.status) && current.lockedBy === null);
          for (;;) {
            const page = await jobs.events(id, { after: cursor, order: "asc", limit: 100 });
            for (const event of page.events) {
              await sse.writeSSE({ data: JSON.stringify(eventObject(event)), id: `ftevent-${event.seq}` });
              cursor = event.seq;
            }
            if (!page.hasMore) break;
          }
          if (ended) {
            await sse.writeSSE({ data: "[DONE]" });
            break;
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, pollMs);
            function done() {
              clearTimeout(timer);
              resolve();
            }
            wake = done;
          });
          wake = undefined;
        }
        if (deadline?.aborted) {
          const message = deadline.reason instanceof Error
            ? deadline.reason.message
            : "The request timed out";
          await sse.writeSSE({
            data: JSON.stringify({
              error: {
                message: `${message}; reconnect with after=ftevent-${cursor}`,
                type: "timeout_error",
                param: null,
                code: "request_timeout",
              },
            }),
          });
        }
      } finally {
        deadline?.removeEventListener("abort", onDeadline);
        await unlisten().catch(() => {});
      }
    });
  });

  return app;
}
