/**
 * `/console/jobs`: the tenant's fine-tuning jobs with their status, its training files (and an upload form),
 * and the form that starts a job from an uploaded file with the common hyperparameters. Plain forms:
 * everything works without JavaScript.
 *
 * @module
 */

import type { Child } from "hono/jsx";
import { Csrf, type Flash, formatBytes, formatCount, Layout, Time } from "../layout.tsx";

/** One job row. */
export interface JobRow {
  /** `ftjob-…`. */
  id: string;
  /** Status. */
  status: string;
  /** Method type. */
  method: string;
  /** Steps done and planned. */
  step: number;
  /** Planned steps. */
  totalSteps: number;
  /** The adapter it made. */
  fineTunedModel: string | null;
  /** Creation time, Unix seconds. */
  createdAt: number;
  /** Training file id. */
  trainingFile: string;
}

/** One training file row. */
export interface FileRow {
  /** `file-…`. */
  id: string;
  /** Uploaded name. */
  filename: string;
  /** Rows. */
  rows: number;
  /** Bytes. */
  bytes: number;
  /** Upload time, Unix seconds. */
  createdAt: number;
}

/** What the new-job form shows again after a refused submission. */
export type JobFormValues = Record<string, string>;

/** Props of {@linkcode JobsPage}. */
export interface JobsPageProps {
  /** The tenant and CSRF token. */
  session: { tenant: string; csrf: string };
  /** Jobs, newest first. */
  jobs: JobRow[];
  /** Training files, newest first. */
  files: FileRow[];
  /** Methods a job may use. */
  methods: readonly string[];
  /** The base model jobs train on. */
  model: string;
  /** The last submitted form's values. */
  values?: JobFormValues;
  /** Last action's message. */
  flash?: Flash;
  /** Asset version. */
  assetVersion: string;
}

/** The hyperparameter fields of the form: name, label, hint. */
export const JOB_FIELDS: readonly (readonly [string, string, string])[] = [
  ["steps", "Steps", "e.g. 200"],
  ["rank", "Rank", "e.g. 8"],
  ["learning_rate", "Learning rate", "e.g. 0.001"],
  ["k", "K (sites kept)", "e.g. 10"],
  ["budget", "Budget (parameters)", "replaces K"],
  ["select_steps", "Select steps", 'a number or "all"'],
  ["batch_size", "Batch size", "e.g. 8"],
  ["eval_every", "Evaluate every (steps)", "0: at the end"],
  ["save_every", "Checkpoint every (steps)", "live gates: e.g. 10"],
];

/**
 * The jobs page.
 *
 * @param props Jobs, files and session.
 * @returns The page.
 */
export function JobsPage(props: JobsPageProps): Child {
  const { session } = props;
  const values = props.values ?? {};
  return (
    <Layout
      title="Fine-tuning"
      current="jobs"
      session={session}
      flash={props.flash}
      assetVersion={props.assetVersion}
    >
      <div class="scroll">
        <table id="jobs">
          <caption>{props.jobs.length} job{props.jobs.length === 1 ? "" : "s"}</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Status</th>
              <th scope="col">Method</th>
              <th scope="col" class="num">Step</th>
              <th scope="col">Adapter</th>
              <th scope="col">Created (UTC)</th>
            </tr>
          </thead>
          <tbody>
            {props.jobs.map((j) => (
              <tr data-job={j.id}>
                <th scope="row">
                  <a href={`/console/jobs/${j.id}`}>{j.id}</a>
                </th>
                <td>
                  <span class={`status ${j.status}`}>{j.status}</span>
                </td>
                <td>{j.method}</td>
                <td class="num">{j.step} / {j.totalSteps}</td>
                <td>{j.fineTunedModel ?? "–"}</td>
                <td>
                  <Time seconds={j.createdAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <div class="columns">
        <form class="card" id="start-job" method="post" action="/console/jobs">
          <h2>Start a job on {props.model}</h2>
          <Csrf token={session.csrf} />
          <label for="job-file">Training file</label>
          <select id="job-file" name="training_file" required>
            {props.files.map((f) => (
              <option value={f.id} selected={values.training_file === f.id}>
                {f.filename} ({f.id}, {formatCount(f.rows)} rows)
              </option>
            ))}
          </select>
          <label for="job-valid">Validation file</label>
          <select id="job-valid" name="validation_file">
            <option value="">none</option>
            {props.files.map((f) => (
              <option value={f.id} selected={values.validation_file === f.id}>{f.filename} ({f.id})</option>
            ))}
          </select>
          <label for="job-method">Method</label>
          <select id="job-method" name="method">
            {props.methods.map((m) => (
              <option value={m} selected={(values.method ?? "weightlora") === m}>{m}</option>
            ))}
          </select>
          <div class="grid2">
            {JOB_FIELDS.map(([name, label, hint]) => (
              <div>
                <label for={`job-${name}`}>{label}</label>
                <input
                  id={`job-${name}`}
                  name={name}
                  inputmode={name === "select_steps" ? "text" : "decimal"}
                  placeholder={hint}
                  value={values[name] ?? ""}
                  autocomplete="off"
                />
              </div>
            ))}
          </div>
          <label for="job-suffix">Suffix of the adapter's name</label>
          <input id="job-suffix" name="suffix" value={values.suffix ?? ""} autocomplete="off" />
          <p class="muted">Empty fields take the server's defaults.</p>
          <button type="submit" disabled={props.files.length === 0}>Start job</button>
        </form>

        <section class="card">
          <h2>Training files</h2>
          <ul id="files" class="plain">
            {props.files.map((f) => (
              <li>
                <code>{f.id}</code> {f.filename} · {formatCount(f.rows)} rows · {formatBytes(f.bytes)} ·{" "}
                <Time seconds={f.createdAt} />
              </li>
            ))}
          </ul>
          {props.files.length === 0 && <p class="muted">No file yet: upload a JSONL file first.</p>}
          <form id="upload-file" method="post" action="/console/files" enctype="multipart/form-data">
            <Csrf token={session.csrf} />
            <label for="file-input">JSONL file (prompt/completion, text or messages rows)</label>
            <input id="file-input" name="file" type="file" accept=".jsonl,.json,.txt" required />
            <button type="submit">Upload file</button>
          </form>
        </section>
      </div>
    </Layout>
  );
}
