/**
 * {@linkcode createJob}: checks a `POST /v1/fine_tuning/jobs` body completely — model, the tenant's files
 * (tokenized with the model, so a bad row is reported with its line), method and hyperparameters — and
 * only then queues the job in one transaction. A refused request writes nothing.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import { listAdapterSites } from "../models/sites.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { type Dataset, parseJsonl } from "../train/data.ts";
import type { FileStore } from "../store/db/file_store.ts";
import { type JobRecord, type JobStore, MissingFileError } from "../store/db/job_store.ts";
import { HyperparameterError, parseMethod, resolveMethod } from "./hyperparameters.ts";

/** A served base model, as job creation needs it (a loaded `ModelFolder` fits). */
export interface JobModel {
  /** Model id (the request's `model`). */
  id: string;
  /** Its folder (the trainer loads it from there). */
  dir: string;
  /** Architecture. */
  config: LlamaConfig;
  /** Tokenizer (to check and measure the data). */
  tokenizer: Pick<Tokenizer, "encode" | "bosId" | "eosIds" | "vocabSize" | "idToToken">;
  /** Chat template, for `messages` rows. */
  chatTemplate?: string;
}

/** A refused request: HTTP status, OpenAI error code and the parameter at fault. */
export class JobRequestError extends Error {
  /** 400 (bad request) or 404 (unknown model or file). */
  readonly status: 400 | 404;
  /** The parameter (`training_file`, `method.lora.hyperparameters.rank`, …), or null. */
  readonly param: string | null;
  /** OpenAI-style error code. */
  readonly code: string;
  /**
   * @param message What is wrong, with the bad value.
   * @param details Status, parameter and code.
   */
  constructor(message: string, details: { status: 400 | 404; param: string | null; code: string }) {
    super(message);
    this.name = "JobRequestError";
    this.status = details.status;
    this.param = details.param;
    this.code = details.code;
  }
}

/** Options of {@linkcode createJob}. */
export interface CreateJobOptions {
  /** The requesting tenant. */
  tenant: string;
  /** Job store. */
  jobs: JobStore;
  /** File store. */
  files: FileStore;
  /** Served models by id. */
  models: ReadonlyMap<string, JobModel>;
}

const FIELDS = ["model", "training_file", "validation_file", "suffix", "method", "seed", "hyperparameters"];
const SUFFIX = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;

function bad(message: string, param: string | null, code = "invalid_request_error"): never {
  throw new JobRequestError(message, { status: 400, param, code });
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v === "") {
    bad(`Invalid ${field} ${JSON.stringify(v)}: expected a string`, field);
  }
  return v;
}

async function readDataset(
  options: CreateJobOptions,
  id: string,
  param: string,
  parse: (text: string) => Dataset,
): Promise<Dataset> {
  const content = await options.files.content(options.tenant, id);
  if (!content) {
    throw new JobRequestError(`No such file: ${id}`, { status: 404, param, code: "file_not_found" });
  }
  try {
    return parse(new TextDecoder().decode(content));
  } catch (e) {
    return bad(`Invalid ${param} ${id}: ${(e as Error).message}`, param, "invalid_file");
  }
}

/**
 * Validates a job request and queues the job.
 *
 * @param body The parsed JSON body.
 * @param options Tenant, stores, models.
 * @returns The queued job.
 * @throws {JobRequestError} On any bad field (400) or an unknown model or file (404); nothing is written.
 */
export async function createJob(body: unknown, options: CreateJobOptions): Promise<JobRecord> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    bad("Invalid request body: expected a JSON object", null);
  }
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !FIELDS.includes(k));
  if (unknown.length) bad(`Unknown field ${unknown.map((k) => `"${k}"`).join(", ")}`, unknown[0]);
  const modelId = optionalString(b, "model") ?? bad("Missing model: name a served base model", "model");
  const model = options.models.get(modelId);
  if (!model) {
    throw new JobRequestError(
      `The model ${JSON.stringify(modelId)} does not exist; served base models: ${
        [...options.models.keys()].join(", ")
      }`,
      { status: 404, param: "model", code: "model_not_found" },
    );
  }
  const trainingFile = optionalString(b, "training_file") ?? bad("Missing training_file", "training_file");
  const validationFile = optionalString(b, "validation_file");
  const suffix = optionalString(b, "suffix");
  if (suffix !== undefined && !SUFFIX.test(suffix)) {
    bad(
      `Invalid suffix ${
        JSON.stringify(suffix)
      }: use 1–40 letters, digits, ".", "_" or "-", starting with a letter or digit`,
      "suffix",
    );
  }
  let method = b.method;
  if (b.hyperparameters !== undefined) {
    if (method !== undefined) {
      bad("Give hyperparameters inside method, not at the top level", "hyperparameters");
    }
    method = { type: "weightlora", weightlora: { hyperparameters: b.hyperparameters } };
  }
  try {
    const parsed = parseMethod(method, b.seed);
    const maxLen = Math.min(parsed.options.seqLen, model.config.maxPositionEmbeddings);
    const parse = (name: string) => (text: string) =>
      parseJsonl(text, name, {
        tokenizer: model.tokenizer,
        seqLen: maxLen,
        chatTemplate: model.chatTemplate,
        completionEos: parsed.options.completionEos,
      });
    const train = await readDataset(options, trainingFile, "training_file", parse(trainingFile));
    const evalSet = validationFile
      ? await readDataset(options, validationFile, "validation_file", parse(validationFile))
      : undefined;
    const longestRow = Math.max(
      ...train.examples.map((e) => e.inputIds.length),
      ...(evalSet?.examples ?? []).map((e) => e.inputIds.length),
    );
    const candidates = listAdapterSites(model.config)
      .filter((s) => parsed.options.targetModules.includes(s.module));
    const resolved = resolveMethod(parsed, { candidates, rows: train.examples.length, longestRow });
    return await options.jobs.create({
      tenant: options.tenant,
      model: model.id,
      trainingFile,
      validationFile: validationFile ?? null,
      suffix: suffix ?? null,
      method: resolved.method,
      options: resolved.options as unknown as Record<string, unknown>,
      totalSteps: resolved.options.steps,
    });
  } catch (e) {
    if (e instanceof HyperparameterError) bad(e.message, e.param, "invalid_hyperparameters");
    if (e instanceof MissingFileError) {
      throw new JobRequestError(e.message, { status: 404, param: e.param, code: "file_not_found" });
    }
    throw e;
  }
}
