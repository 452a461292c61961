/**
 * Messages between the job runner (which owns the database) and a training worker
 * (`workers/train_worker.ts`, which owns the model and the training sessions). The worker never touches
 * the database: an embedded database lives in one thread, and this keeps one code path for both backends.
 *
 * @module
 */

import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import type { StepRecord, TrainSummary } from "../train/trainer.ts";
import type { JobTrainOptions } from "./hyperparameters.ts";

/** What a worker needs to run one job. */
export interface TrainJobSpec {
  /** Job id (for messages). */
  jobId: string;
  /** The base model's folder. */
  modelDir: string;
  /** The base model's id (part of the checkpoint fingerprint: must not change between attempts). */
  modelId: string;
  /** Resolved trainer options. */
  options: JobTrainOptions;
  /** Execution provider. */
  ep: ExecutionProviderChoice;
  /** Training JSONL text and its name (for `file:line` messages). */
  train: { name: string; text: string };
  /** Validation JSONL text and its name. */
  eval?: { name: string; text: string };
  /** The last checkpoint to resume from. */
  checkpoint?: CheckpointFiles;
  /** A scratch folder for the trainer's outputs (removed by the runner). */
  workDir: string;
}

/** The two files of a trainer checkpoint. */
export interface CheckpointFiles {
  /** Step it was taken at. */
  step: number;
  /** `trainer_state.json`. */
  trainerState: Uint8Array;
  /** `training_state.safetensors`. */
  trainingState: Uint8Array;
}

/** Runner → worker. */
export type ToWorker =
  /** `nice`: the training thread's scheduling niceness (0–19; 0 leaves it as it is). */
  | { type: "start"; spec: TrainJobSpec; nice?: number }
  | { type: "cancel" };

/** Worker → runner (`ready` first: the runner sends `start` only then). */
export type FromWorker =
  | { type: "ready" }
  /** The training thread's niceness once set (`null`: could not be set, `reason` says why). */
  | { type: "priority"; nice: number | null; reason?: string }
  | { type: "step"; record: StepRecord; total: number }
  | { type: "note"; message: string }
  | { type: "checkpoint"; checkpoint: CheckpointFiles }
  | {
    type: "done";
    summary: TrainSummary;
    /** The PEFT files (absent when the run stopped early). */
    adapter?: { config: Uint8Array; weights: Uint8Array };
  }
  | { type: "error"; message: string };
