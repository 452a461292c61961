/**
 * {@linkcode consoleRoutes}: the tenant web console under `/console` — sign-in with an API key, adapters,
 * fine-tuning jobs (live loss curve, gate heatmap), and a playground comparing the base model with an
 * adapter. Server-rendered with `hono/jsx`; one small script adds the live parts.
 *
 * Tenant isolation stays in one place, the API's: every read and write goes through the app's own `/v1`
 * routes, called in-process with the session's API key (so the console shows the API's validation messages
 * and obeys its quotas), except two reads the API has no route for, done with the same store calls and the
 * session's tenant: the adapters' files (sites, ranks, parameters) and a job's gates (its summary or latest
 * checkpoint). The key itself stays on the server: the browser holds an HTTP-only session cookie.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import type { KeyTable } from "../http/auth.ts";
import type { AppVariables } from "../http/context.ts";
import { bodyLimitBytes } from "../http/limits.ts";
import { JOB_METHODS } from "../jobs/hyperparameters.ts";
import type { ServeEngine } from "../serve/engine.ts";
import type { JobStore } from "../store/db/job_store.ts";
import { type AdapterInfo, adapterInfo, formatRanks } from "./adapter_info.ts";
import { loadConsoleAssets } from "./assets.ts";
import { jobGates } from "./gates.ts";
import type { Flash } from "./layout.tsx";
import { type AdapterRow, AdaptersPage } from "./pages/adapters_page.tsx";
import { GatesSection, JobPage, type JobPageProps, type MetricsRow } from "./pages/job_page.tsx";
import { JOB_FIELDS, type JobFormValues, type JobRow, JobsPage } from "./pages/jobs_page.tsx";
import { LoginPage } from "./pages/login_page.tsx";
import { PlaygroundPage, type PlaygroundValues } from "./pages/playground_page.tsx";
import { NotFoundPage } from "./pages/not_found_page.tsx";
import {
  type ConsoleSession,
  ConsoleSessions,
  CSRF_FIELD,
  sameOrigin,
  sessionCookie,
  sessionIdOf,
  validCsrf,
} from "./session.ts";

/** Options of {@linkcode consoleRoutes}. */
export interface ConsoleRoutesOptions {
  /** The engine (base model id and config, adapter store). */
  engine: ServeEngine;
  /** The app's fetch handler: the console calls the `/v1` API through it, with the session's key. */
  api: (request: Request) => Response | Promise<Response>;
  /** API keys; without them anyone signs in as the single tenant `default` (as the open API serves). */
  keys?: KeyTable;
  /** The job store, for the gate heatmap (fine-tuning pages need the server's database mode). */
  jobs?: JobStore;
  /** Sessions (created when absent). */
  sessions?: ConsoleSessions;
  /**
   * Largest form body (an adapter upload: both files), bytes.
   * @default {64 MiB + 64 KiB}
   */
  maxUploadBytes?: number;
}

/** The console's context variables. */
export interface ConsoleEnv {
  /** The API's variables and the signed-in session. */
  Variables: AppVariables & { session: ConsoleSession };
}

const SECURITY_HEADERS: Record<string, string> = {
  // nothing but the console's own origin: no CDN, no external request, no framing
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
};

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** The `error.message` of an API error response, or its status line. */
async function apiMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const message = JSON.parse(text)?.error?.message;
    if (typeof message === "string") return message;
  } catch {
    // not JSON
  }
  return `The API answered ${response.status} ${response.statusText}`.trim();
}

/** Where to go after signing in: a console path (normalized: no `..`, no other host), else the adapters. */
function safeNext(next: unknown): string {
  const fallback = "/console/adapters";
  if (typeof next !== "string" || !next.startsWith("/console")) return fallback;
  let url: URL;
  try {
    url = new URL(next, "http://console.internal");
  } catch {
    return fallback;
  }
  const inConsole = url.pathname === "/console" || url.pathname.startsWith("/console/");
  return url.host === "console.internal" && inConsole ? url.pathname + url.search : fallback;
}

/**
 * The console's routes (mount at `/`; `createApp` does it when given `console` options).
 *
 * @param options Engine, the app's fetch handler, keys, job store.
 * @returns A Hono app serving `/console/*`.
 * @example
 * ```ts ignore
 * const { app } = createApp({ engine, keys, console: { jobs } });
 * // GET /console → /console/login, then /console/adapters once signed in
 * ```
 */
export function consoleRoutes(options: ConsoleRoutesOptions): Hono<ConsoleEnv> {
  const { engine, keys, jobs } = options;
  const sessions = options.sessions ?? new ConsoleSessions();
  const maxUpload = options.maxUploadBytes ?? 64 * 2 ** 20 + 64 * 1024;
  const app = new Hono<ConsoleEnv>();
  const infos = new Map<string, AdapterInfo>(); // by adapter version: versions never change

  /** Calls the API as the session's tenant. */
  const api = (session: ConsoleSession, path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${session.apiKey}`);
    return Promise.resolve(
      options.api(new Request(new URL(path, "http://console.internal"), { ...init, headers })),
    );
  };
  const apiJson = (session: ConsoleSession, path: string, body: unknown) =>
    api(session, path, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
  const takeFlash = (session: ConsoleSession): Flash | undefined => {
    const flash = session.flash;
    session.flash = undefined;
    return flash;
  };
  const redirect = (c: Context<ConsoleEnv>, to: string, flash?: Flash) => {
    if (flash) c.get("session").flash = flash;
    return c.redirect(to, 303);
  };
  const pageOf = (session: ConsoleSession) => ({ tenant: session.tenant, csrf: session.csrf });

  app.use("/console/*", async function consoleHeaders(c, next) {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
    if (!c.req.path.startsWith("/console/assets/")) c.res.headers.set("cache-control", "no-store");
  });
  app.use("/console", async function consoleRootHeaders(c, next) {
    await next();
    c.res.headers.set("cache-control", "no-store");
  });

  // every form body counted while it streams in (a chunked upload has no content-length to check first)
  app.use(
    "/console/*",
    bodyLimitBytes(maxUpload, "console form") as unknown as MiddlewareHandler<ConsoleEnv>,
  );

  app.get("/console", (c) => {
    const session = sessions.get(sessionIdOf(c.req.raw));
    return c.redirect(session ? "/console/adapters" : "/console/login", 303);
  });

  app.get("/console/assets/:file", async (c) => {
    const assets = await loadConsoleAssets();
    const file = assets.files.get(c.req.param("file"));
    if (!file) return c.text("Not found", 404);
    const etag = `"${assets.version}"`;
    const gzip = /\bgzip\b/.test(c.req.header("accept-encoding") ?? "");
    const headers: Record<string, string> = {
      "content-type": file.type,
      "cache-control": "public, max-age=31536000, immutable",
      vary: "accept-encoding",
      etag,
    };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    if (gzip) headers["content-encoding"] = "gzip";
    return c.body(gzip ? file.gzip : file.body, 200, headers);
  });

  app.get("/console/login", async (c) => {
    const { version } = await loadConsoleAssets();
    if (sessions.get(sessionIdOf(c.req.raw))) return c.redirect("/console/adapters", 303);
    const flash: Flash | undefined = c.req.query("signed_out") !== undefined
      ? { kind: "ok", text: "Signed out" }
      : undefined;
    const next = c.req.query("next");
    return c.html(
      <LoginPage
        assetVersion={version}
        flash={flash}
        next={next ? safeNext(next) : undefined}
        open={!keys}
      />,
    );
  });

  app.post("/console/login", async (c) => {
    const { version } = await loadConsoleAssets();
    if (!sameOrigin(c.req.raw)) return c.text("Cross-site sign-in refused", 403);
    const form = await c.req.parseBody();
    const key = typeof form.api_key === "string" ? form.api_key.trim() : "";
    const tenant = key === "" ? undefined : keys ? await keys.tenantOf(key) : "default";
    if (tenant === undefined) {
      const flash: Flash = {
        kind: "error",
        text: key === "" ? "Enter your API key" : "Incorrect API key: no tenant has this key",
      };
      return c.html(<LoginPage assetVersion={version} flash={flash} open={!keys} />, 401);
    }
    // a fresh id at every sign-in (no fixation); an earlier session of this browser ends
    const previous = sessionIdOf(c.req.raw);
    if (previous) sessions.delete(previous);
    const session = sessions.create(tenant, key);
    c.header("set-cookie", sessionCookie(session.id, new URL(c.req.url).protocol === "https:"));
    return c.redirect(safeNext(form.next), 303);
  });

  // everything below needs a session; state-changing requests need the console's origin and CSRF token
  app.use("/console/*", async function consoleSession(c, next) {
    const session = sessions.get(sessionIdOf(c.req.raw));
    if (!session) {
      if (c.req.method === "GET" && c.req.header("accept")?.includes("text/html") !== false) {
        const url = new URL(c.req.url);
        return c.redirect(`/console/login?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
      }
      return c.text("Sign in first: no console session", 401);
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !sameOrigin(c.req.raw)) {
      return c.text("Cross-site request refused", 403);
    }
    c.set("session", session);
    await next();
  });

  /** The posted form, once its CSRF token is checked (undefined: refused). */
  const checkedForm = async (c: Context<ConsoleEnv>): Promise<FormData | undefined> => {
    let form: FormData;
    try {
      form = await c.req.raw.formData();
    } catch {
      return undefined;
    }
    const token = form.get(CSRF_FIELD);
    return validCsrf(c.get("session"), typeof token === "string" ? token : null) ? form : undefined;
  };
  const csrfRefused = (c: Context<ConsoleEnv>) =>
    c.text("The form's CSRF token is missing or stale: reload the page and submit again", 403);

  app.post("/console/logout", async (c) => {
    if (!(await checkedForm(c))) return csrfRefused(c);
    sessions.delete(c.get("session").id);
    c.header("set-cookie", sessionCookie(undefined, new URL(c.req.url).protocol === "https:"));
    return c.redirect("/console/login?signed_out", 303);
  });

  // ---- adapters ----

  app.get("/console/adapters", async (c) => {
    const session = c.get("session");
    const { version } = await loadConsoleAssets();
    const records = await engine.store.list(session.tenant);
    const madeBy = new Map<string, { job: string; method: string }>();
    if (jobs) {
      const res = await api(session, "/v1/fine_tuning/jobs?limit=100");
      if (res.ok) {
        for (
          const j of (await res.json()).data as {
            id: string;
            fine_tuned_model: string | null;
            method: { type: string };
          }[]
        ) {
          if (j.fine_tuned_model) madeBy.set(j.fine_tuned_model, { job: j.id, method: j.method.type });
        }
      } else await res.body?.cancel();
    }
    const rows: AdapterRow[] = [];
    for (const r of records.sort((a, b) => b.createdAt - a.createdAt || a.name.localeCompare(b.name))) {
      let info = infos.get(r.version);
      if (!info) {
        try {
          info = adapterInfo(await engine.store.read(r), engine.config);
          infos.set(r.version, info);
        } catch {
          continue; // replaced or deleted meanwhile
        }
      }
      const made = madeBy.get(r.name);
      rows.push({
        name: r.name,
        base: info.baseModel ?? engine.modelId,
        method: made?.method ?? "uploaded",
        job: made?.job,
        sites: info.sites,
        candidates: info.candidates,
        ranks: formatRanks(info.ranks),
        parameters: info.parameters,
        bytes: r.bytes,
        createdAt: r.createdAt,
      });
    }
    return c.html(
      <AdaptersPage
        session={pageOf(session)}
        adapters={rows}
        readOnly={engine.store.readOnly}
        flash={takeFlash(session)}
        assetVersion={version}
      />,
    );
  });

  app.post("/console/adapters", async (c) => {
    const form = await checkedForm(c);
    if (!form) return csrfRefused(c);
    const upload = new FormData();
    for (const field of ["name", "adapter_config.json", "adapter_model.safetensors"]) {
      const value = form.get(field);
      if (value !== null && !(value instanceof File && value.size === 0 && value.name === "")) {
        upload.append(field, value);
      }
    }
    const res = await api(c.get("session"), "/v1/adapters", { method: "POST", body: upload });
    if (!res.ok) return redirect(c, "/console/adapters", { kind: "error", text: await apiMessage(res) });
    const body = await res.json();
    return redirect(c, "/console/adapters", {
      kind: "ok",
      text: `${
        body.replaced ? "Replaced" : "Uploaded"
      } adapter ${body.id}: ${body.sites} sites, rank ${body.rank}`,
    });
  });

  app.post("/console/adapters/:name/delete", async (c) => {
    if (!(await checkedForm(c))) return csrfRefused(c);
    const name = c.req.param("name");
    const res = await api(c.get("session"), `/v1/adapters/${encodeURIComponent(name)}`, { method: "DELETE" });
    if (!res.ok) return redirect(c, "/console/adapters", { kind: "error", text: await apiMessage(res) });
    await res.body?.cancel();
    return redirect(c, "/console/adapters", { kind: "ok", text: `Deleted adapter ${name}` });
  });

  // ---- fine-tuning ----

  const jobsPage = async (c: Context<ConsoleEnv>, extra: { values?: JobFormValues; flash?: Flash } = {}) => {
    const session = c.get("session");
    const { version } = await loadConsoleAssets();
    const [jobsRes, filesRes] = await Promise.all([
      api(session, "/v1/fine_tuning/jobs?limit=100"),
      api(session, "/v1/files"),
    ]);
    if (!jobsRes.ok || !filesRes.ok) {
      await jobsRes.body?.cancel();
      await filesRes.body?.cancel();
      return c.html(
        <NotFoundPage
          session={pageOf(session)}
          assetVersion={version}
          title="Fine-tuning"
          text="Fine-tuning is not enabled on this server: start it with a database (--db) to train adapters."
        />,
        404,
      );
    }
    type ApiJob = {
      id: string;
      status: string;
      method: { type: string };
      progress: { step: number; total_steps: number };
      fine_tuned_model: string | null;
      created_at: number;
      training_file: string;
    };
    type ApiFile = { id: string; filename: string; bytes: number; created_at: number; purpose: string };
    const list: JobRow[] = ((await jobsRes.json()).data as ApiJob[]).map((j) => ({
      id: j.id,
      status: j.status,
      method: j.method.type,
      step: j.progress.step,
      totalSteps: j.progress.total_steps,
      fineTunedModel: j.fine_tuned_model,
      createdAt: j.created_at,
      trainingFile: j.training_file,
    }));
    const files = ((await filesRes.json()).data as (ApiFile & { rows?: number })[])
      .filter((f) => f.purpose === "fine-tune")
      .sort((a, b) => b.created_at - a.created_at)
      .map((f) => ({
        id: f.id,
        filename: f.filename,
        bytes: f.bytes,
        createdAt: f.created_at,
        rows: f.rows ?? 0,
      }));
    // the API's file object has no row count: count lines of the newest small files for the form's labels
    for (const f of files.slice(0, 20)) {
      if (f.rows === 0 && f.bytes <= 4 * 2 ** 20) {
        const res = await api(session, `/v1/files/${f.id}/content`);
        if (res.ok) f.rows = (await res.text()).split("\n").filter((l) => l.trim() !== "").length;
        else await res.body?.cancel();
      }
    }
    return c.html(
      <JobsPage
        session={pageOf(session)}
        jobs={list}
        files={files}
        methods={JOB_METHODS}
        model={engine.modelId}
        values={extra.values}
        flash={extra.flash ?? takeFlash(session)}
        assetVersion={version}
      />,
      extra.flash?.kind === "error" ? 400 : 200,
    );
  };

  app.get("/console/jobs", (c) => jobsPage(c));

  app.post("/console/files", async (c) => {
    const form = await checkedForm(c);
    if (!form) return csrfRefused(c);
    const upload = new FormData();
    upload.append("purpose", "fine-tune");
    const file = form.get("file");
    if (file instanceof File && file.size > 0) upload.append("file", file);
    const res = await api(c.get("session"), "/v1/files", { method: "POST", body: upload });
    if (!res.ok) return redirect(c, "/console/jobs", { kind: "error", text: await apiMessage(res) });
    const body = await res.json();
    return redirect(c, "/console/jobs", { kind: "ok", text: `Uploaded ${body.filename} as ${body.id}` });
  });

  app.post("/console/jobs", async (c) => {
    const form = await checkedForm(c);
    if (!form) return csrfRefused(c);
    const values: JobFormValues = {};
    for (const [k, v] of form) if (typeof v === "string" && k !== CSRF_FIELD) values[k] = v.trim();
    const type = values.method || "weightlora";
    const hyperparameters: Record<string, unknown> = {};
    for (const [name] of JOB_FIELDS) {
      const text = values[name];
      if (!text) continue;
      // numbers as numbers ("all" and anything else as written: the API's message names what is wrong)
      hyperparameters[name] = text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
    }
    const body: Record<string, unknown> = {
      model: engine.modelId,
      training_file: values.training_file,
      method: { type, [type]: { hyperparameters } },
    };
    if (values.validation_file) body.validation_file = values.validation_file;
    if (values.suffix) body.suffix = values.suffix;
    const res = await apiJson(c.get("session"), "/v1/fine_tuning/jobs", body);
    if (!res.ok) return await jobsPage(c, { values, flash: { kind: "error", text: await apiMessage(res) } });
    const job = await res.json();
    return redirect(c, `/console/jobs/${job.id}`, { kind: "ok", text: `Started job ${job.id}` });
  });

  const gatesOf = async (session: ConsoleSession, id: string) => {
    if (!jobs) return undefined;
    const record = await jobs.get(session.tenant, id);
    if (!record) return undefined;
    const checkpoint = record.result ? undefined : await jobs.checkpoint(id);
    return jobGates(record, { config: engine.config, checkpoint });
  };

  app.get("/console/jobs/:id", async (c) => {
    const session = c.get("session");
    const { version } = await loadConsoleAssets();
    const id = c.req.param("id");
    const res = await api(session, `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
    if (!res.ok) {
      const text = await apiMessage(res);
      return c.html(
        <NotFoundPage session={pageOf(session)} assetVersion={version} title="No such job" text={text} />,
        404,
      );
    }
    const job = await res.json() as JobPageProps["job"];
    const eventsRes = await api(session, `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?limit=100`);
    const events = eventsRes.ok ? (await eventsRes.json()).data as { type: string; data: unknown }[] : [];
    const metrics = events.filter((e) => e.type === "metrics").map((e) => e.data as MetricsRow).slice(0, 20);
    return c.html(
      <JobPage
        session={pageOf(session)}
        job={job}
        metrics={metrics}
        gates={await gatesOf(session, id)}
        frame={c.req.query("frame")}
        flash={takeFlash(session)}
        assetVersion={version}
      />,
    );
  });

  app.get("/console/jobs/:id/gates", async (c) => {
    const id = c.req.param("id");
    const session = c.get("session");
    const res = await api(session, `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
    if (!res.ok) return c.text(await apiMessage(res), res.status as 404);
    const job = await res.json();
    c.header("x-job-status", job.status);
    return c.html(
      <GatesSection
        gates={await gatesOf(session, id)}
        frame={c.req.query("frame")}
        href={`/console/jobs/${id}`}
      />,
    );
  });

  app.get("/console/jobs/:id/status", async (c) => {
    const id = c.req.param("id");
    const res = await api(c.get("session"), `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
    if (!res.ok) return c.json({ error: await apiMessage(res) }, res.status as 404);
    const job = await res.json();
    return c.json({
      status: job.status,
      step: job.progress.step,
      total_steps: job.progress.total_steps,
      fine_tuned_model: job.fine_tuned_model,
      finished_at: job.finished_at,
      done: TERMINAL.has(job.status),
    });
  });

  app.get("/console/jobs/:id/events", async (c) => {
    const id = c.req.param("id");
    const after = c.req.query("after") ?? c.req.header("last-event-id");
    const query = new URLSearchParams({ stream: "true" });
    if (after) query.set("after", after);
    const res = await api(
      c.get("session"),
      `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?${query}`,
      {
        signal: c.req.raw.signal,
      },
    );
    if (!res.ok) return c.text(await apiMessage(res), res.status as 404);
    return new Response(res.body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  });

  app.post("/console/jobs/:id/cancel", async (c) => {
    if (!(await checkedForm(c))) return csrfRefused(c);
    const id = c.req.param("id");
    const res = await api(c.get("session"), `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/cancel`, {
      method: "POST",
    });
    if (!res.ok) return redirect(c, `/console/jobs/${id}`, { kind: "error", text: await apiMessage(res) });
    await res.body?.cancel();
    return redirect(c, `/console/jobs/${id}`, { kind: "ok", text: `Cancelled job ${id}` });
  });

  // ---- playground ----

  const playgroundValues = (form: Record<string, unknown>, adapters: string[]): PlaygroundValues => {
    const text = (k: string) => (typeof form[k] === "string" ? (form[k] as string) : "");
    const temperature = Number(text("temperature") || 0.8);
    const maxTokens = Number(text("max_tokens") || 64);
    return {
      prompt: text("prompt") || "Once upon a time",
      adapter: adapters.includes(text("adapter")) ? text("adapter") : adapters[0] ?? "",
      mode: text("mode") === "sampled" ? "sampled" : "greedy",
      temperature: Number.isFinite(temperature) ? temperature : 0.8,
      maxTokens: Number.isFinite(maxTokens) ? maxTokens : 64,
    };
  };
  const adapterNames = async (session: ConsoleSession) =>
    (await engine.store.list(session.tenant)).map((r) => r.name).sort();

  app.get("/console/playground", async (c) => {
    const session = c.get("session");
    const { version } = await loadConsoleAssets();
    const adapters = await adapterNames(session);
    return c.html(
      <PlaygroundPage
        session={pageOf(session)}
        base={engine.modelId}
        adapters={adapters}
        values={playgroundValues(c.req.query(), adapters)}
        flash={takeFlash(session)}
        assetVersion={version}
      />,
    );
  });

  const completionBody = (model: string, v: PlaygroundValues, stream: boolean) => ({
    model,
    prompt: v.prompt,
    max_tokens: v.maxTokens,
    temperature: v.mode === "greedy" ? 0 : v.temperature,
    ...(v.mode === "sampled" ? { seed: 1 } : {}),
    stream,
  });

  app.post("/console/playground", async (c) => {
    const form = await checkedForm(c);
    if (!form) return csrfRefused(c);
    const session = c.get("session");
    const { version } = await loadConsoleAssets();
    const adapters = await adapterNames(session);
    const values = playgroundValues(Object.fromEntries(form), adapters);
    const answer = async (model: string) => {
      const res = await apiJson(session, "/v1/completions", completionBody(model, values, false));
      if (!res.ok) throw new Error(await apiMessage(res));
      return (await res.json()).choices[0].text as string;
    };
    let answers: { base: string; adapter: string } | undefined;
    let flash: Flash | undefined;
    try {
      const [base, adapter] = await Promise.all([answer(engine.modelId), answer(values.adapter)]);
      answers = { base, adapter };
    } catch (e) {
      flash = { kind: "error", text: (e as Error).message };
    }
    return c.html(
      <PlaygroundPage
        session={pageOf(session)}
        base={engine.modelId}
        adapters={adapters}
        values={values}
        answers={answers}
        flash={flash}
        assetVersion={version}
      />,
      flash ? 400 : 200,
    );
  });

  app.post("/console/playground/stream", async (c) => {
    const session = c.get("session");
    if (!validCsrf(session, c.req.header("x-csrf-token"))) return csrfRefused(c);
    let body: Record<string, unknown>;
    try {
      body = await c.req.json();
    } catch {
      return c.text("Expected a JSON body {model, prompt, mode, temperature, max_tokens}", 400);
    }
    const model = typeof body.model === "string" ? body.model : "";
    const values = playgroundValues(
      Object.fromEntries(Object.entries(body).map(([k, v]) => [k, String(v)])),
      [],
    );
    const res = await apiJson(session, "/v1/completions", completionBody(model, values, true));
    if (!res.ok) return c.text(await apiMessage(res), res.status as 400);
    return new Response(res.body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  });

  app.all("/console/*", async (c) => {
    const { version } = await loadConsoleAssets();
    return c.html(
      <NotFoundPage
        session={pageOf(c.get("session"))}
        assetVersion={version}
        title="Not found"
        text={`The console has no page ${c.req.path}`}
      />,
      404,
    );
  });

  return app;
}
