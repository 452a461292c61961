/**
 * Fine-tuning jobs: request checking ({@linkcode createJob}, {@linkcode parseMethod},
 * {@linkcode resolveMethod}), and the trainer side of the queue ({@linkcode JobRunner}, which runs each
 * job in a Worker from `workers/train_worker.ts`).
 *
 * @example
 * ```ts ignore
 * import { JobRunner } from "./mod.ts";
 * const runner = new JobRunner({ jobs, files, models, workers: 2 });
 * await runner.start();
 * ```
 *
 * @module
 */

export * from "./hyperparameters.ts";
export * from "./create_job.ts";
export * from "./job_runner.ts";
export * from "./worker_protocol.ts";
