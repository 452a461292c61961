// Helpers of the job tests: a stories260K job model, a queued job, and waiting for a job's state.

import { createJob, type JobModel } from "../../src/jobs/create_job.ts";
import type { Database } from "../../src/store/db/database.ts";
import { FileStore } from "../../src/store/db/file_store.ts";
import { type JobRecord, JobStore } from "../../src/store/db/job_store.ts";
import type { ModelFolder } from "../../src/io/model_folder.ts";

/** A job model from a loaded folder. */
export function jobModels(model: ModelFolder): Map<string, JobModel> {
  return new Map([[model.id, {
    id: model.id,
    dir: model.dir,
    config: model.config,
    tokenizer: model.tokenizer,
    chatTemplate: model.chatTemplate,
  }]]);
}

/** A small, quick WeightLoRA method (wasm-friendly: rank 2, batch 4). */
export function quickMethod(steps: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "weightlora",
    weightlora: {
      hyperparameters: {
        steps,
        k: 3,
        rank: 2,
        batch_size: 4,
        select_steps: 2,
        save_every: 2,
        seed: 3,
        ...extra,
      },
    },
  };
}

/** Uploads rows as a file and queues a job on it. */
export async function queueJob(
  db: Database,
  options: {
    tenant: string;
    model: ModelFolder;
    rows: string;
    method: Record<string, unknown>;
    suffix?: string;
  },
): Promise<JobRecord> {
  const files = new FileStore(db);
  const content = new TextEncoder().encode(options.rows);
  const file = await files.create({
    tenant: options.tenant,
    filename: "train.jsonl",
    purpose: "fine-tune",
    content,
    rows: options.rows.trim().split("\n").length,
  });
  return await createJob(
    { model: options.model.id, training_file: file.id, method: options.method, suffix: options.suffix },
    { tenant: options.tenant, jobs: new JobStore(db), files, models: jobModels(options.model) },
  );
}

/** Polls a job until `check` holds (or throws after `ms`, naming the job's last state). */
export async function waitForJob(
  jobs: JobStore,
  id: string,
  check: (job: JobRecord) => boolean,
  ms = 120_000,
): Promise<JobRecord> {
  const end = Date.now() + ms;
  for (;;) {
    const job = await jobs.get(undefined, id);
    if (job && check(job)) return job;
    if (Date.now() > end) {
      throw new Error(`Job ${id} did not reach the expected state within ${ms} ms: ${JSON.stringify(job)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
