/**
 * `/console/jobs/:id`: one job — its state and hyperparameters, a cancel button, the live loss curve (train
 * and validation) with learning rate, tokens/s and phase markers (drawn by the page's script from the job's
 * event stream; a table of the latest metrics without script), and the gate heatmap.
 *
 * @module
 */

import type { Child } from "hono/jsx";
import { Heatmap } from "../components/heatmap.tsx";
import type { JobGates } from "../gates.ts";
import { Csrf, type Flash, formatCount, Layout, Time } from "../layout.tsx";

/** A metrics event, as the API's events carry it. */
export interface MetricsRow {
  /** Step. */
  step: number;
  /** Training loss. */
  train_loss: number;
  /** Validation loss, on steps that evaluated. */
  valid_loss?: number;
  /** Learning rate. */
  learning_rate: number;
  /** Tokens per second. */
  tokens_per_s: number;
  /** Phase (`select`, `grow`, `train`). */
  phase: string;
  /** Active sites. */
  active_adapters: number;
}

/** Props of {@linkcode JobPage}. */
export interface JobPageProps {
  /** The tenant and CSRF token. */
  session: { tenant: string; csrf: string };
  /** The job as the API shows it (`fine_tuning.job`). */
  job: {
    id: string;
    status: string;
    model: string;
    created_at: number;
    finished_at: number | null;
    fine_tuned_model: string | null;
    training_file: string;
    validation_file: string | null;
    hyperparameters: Record<string, unknown>;
    trained_tokens: number | null;
    error: { message?: string } | null;
    method: { type: string };
    progress: { step: number; total_steps: number };
  };
  /** Latest metrics, newest first. */
  metrics: MetricsRow[];
  /** The heatmap's data (absent until the job has gates). */
  gates?: JobGates;
  /** The heatmap frame asked for. */
  frame?: string;
  /** Last action's message. */
  flash?: Flash;
  /** Asset version. */
  assetVersion: string;
}

const TERMINAL = ["succeeded", "failed", "cancelled"];

/**
 * The gate section's content (also served alone, for the script's refreshes).
 *
 * @param props Gates, frame and the job's URL.
 * @returns The content.
 */
export function GatesSection(props: { gates?: JobGates; frame?: string; href: string }): Child {
  if (!props.gates) {
    return (
      <p class="muted" id="no-gates">No gate values yet: they appear with the job's first checkpoint.</p>
    );
  }
  return <Heatmap gates={props.gates} frame={props.frame} href={props.href} />;
}

/**
 * The job page.
 *
 * @param props Job, metrics, gates and session.
 * @returns The page.
 */
export function JobPage(props: JobPageProps): Child {
  const { job, session } = props;
  const href = `/console/jobs/${job.id}`;
  const done = TERMINAL.includes(job.status);
  const hp = Object.entries(job.hyperparameters).filter(([, v]) => v !== null && v !== undefined);
  return (
    <Layout
      title={`Job ${job.id}`}
      current="jobs"
      session={session}
      flash={props.flash}
      assetVersion={props.assetVersion}
    >
      <div class="columns">
        <section class="card">
          <h2>State</h2>
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              <span id="job-status" class={`status ${job.status}`}>{job.status}</span>
            </dd>
            <dt>Progress</dt>
            <dd id="job-progress">{job.progress.step} / {job.progress.total_steps} steps</dd>
            <dt>Method</dt>
            <dd>{job.method.type}</dd>
            <dt>Base model</dt>
            <dd>{job.model}</dd>
            <dt>Training file</dt>
            <dd>
              <code>{job.training_file}</code>
              {job.validation_file && (
                <>
                  {" "}· validation <code>{job.validation_file}</code>
                </>
              )}
            </dd>
            <dt>Created</dt>
            <dd>
              <Time seconds={job.created_at} />
            </dd>
            <dt>Finished</dt>
            <dd id="job-finished">
              <Time seconds={job.finished_at} />
            </dd>
            <dt>Adapter</dt>
            <dd id="job-adapter">
              {job.fine_tuned_model
                ? (
                  <a href={`/console/playground?adapter=${encodeURIComponent(job.fine_tuned_model)}`}>
                    {job.fine_tuned_model}
                  </a>
                )
                : "–"}
            </dd>
            {job.trained_tokens !== null && (
              <>
                <dt>Trained tokens</dt>
                <dd>{formatCount(job.trained_tokens)}</dd>
              </>
            )}
            {job.error?.message && (
              <>
                <dt>Error</dt>
                <dd class="error-text">{job.error.message}</dd>
              </>
            )}
          </dl>
          {!done && (
            <form method="post" action={`${href}/cancel`} data-confirm="Cancel this job?">
              <Csrf token={session.csrf} />
              <button type="submit" class="danger">Cancel job</button>
            </form>
          )}
          <details>
            <summary>Hyperparameters</summary>
            <dl class="facts small">
              {hp.map(([k, v]) => (
                <>
                  <dt>{k}</dt>
                  <dd>{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
                </>
              ))}
            </dl>
          </details>
        </section>

        <section class="card wide">
          <h2>Loss</h2>
          <figure
            id="loss"
            data-events={`${href}/events`}
            data-total={String(job.progress.total_steps)}
            data-status-url={`${href}/status`}
          >
            <div class="chart" aria-hidden="true"></div>
            <figcaption>
              <span class="key train">train loss</span> <span class="key eval">validation loss</span>{" "}
              <span class="key marker">phase marker</span>
            </figcaption>
          </figure>
          <dl class="stats" id="stats" aria-live="polite">
            <dt>Step</dt>
            <dd data-stat="step">{props.metrics[0]?.step ?? "–"}</dd>
            <dt>Train loss</dt>
            <dd data-stat="train_loss">{props.metrics[0]?.train_loss.toFixed(4) ?? "–"}</dd>
            <dt>Validation loss</dt>
            <dd data-stat="valid_loss">
              {props.metrics.find((m) => m.valid_loss !== undefined)?.valid_loss?.toFixed(4) ?? "–"}
            </dd>
            <dt>Learning rate</dt>
            <dd data-stat="learning_rate">{props.metrics[0]?.learning_rate.toExponential(2) ?? "–"}</dd>
            <dt>Tokens/s</dt>
            <dd data-stat="tokens_per_s">
              {props.metrics[0] ? Math.round(props.metrics[0].tokens_per_s) : "–"}
            </dd>
            <dt>Phase</dt>
            <dd data-stat="phase">{props.metrics[0]?.phase ?? "–"}</dd>
            <dt>Active sites</dt>
            <dd data-stat="active_adapters">{props.metrics[0]?.active_adapters ?? "–"}</dd>
          </dl>
          <h3>Phase markers</h3>
          <ol id="markers" class="plain"></ol>
          <details class="nojs-metrics">
            <summary>Latest metrics</summary>
            <div class="scroll">
              <table>
                <thead>
                  <tr>
                    <th scope="col" class="num">Step</th>
                    <th scope="col" class="num">Train loss</th>
                    <th scope="col" class="num">Validation loss</th>
                    <th scope="col" class="num">LR</th>
                    <th scope="col" class="num">Tokens/s</th>
                    <th scope="col">Phase</th>
                  </tr>
                </thead>
                <tbody>
                  {props.metrics.map((m) => (
                    <tr>
                      <td class="num">{m.step}</td>
                      <td class="num">{m.train_loss.toFixed(4)}</td>
                      <td class="num">{m.valid_loss?.toFixed(4) ?? ""}</td>
                      <td class="num">{m.learning_rate.toExponential(2)}</td>
                      <td class="num">{Math.round(m.tokens_per_s)}</td>
                      <td>{m.phase}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </details>
        </section>
      </div>
      <section class="card" id="gates-card">
        <h2>Gates</h2>
        <div id="gates" data-src={`${href}/gates`} data-done={done ? "true" : "false"}>
          <GatesSection gates={props.gates} frame={props.frame} href={href} />
        </div>
      </section>
    </Layout>
  );
}
