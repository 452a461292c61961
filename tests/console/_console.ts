// The console's test server: stories260K on wasm, an embedded PGlite database (adapters, files, jobs), two
// tenants, the files and fine-tuning routes, a job runner, and the app with its console, served on loopback.

import { createApp, type ServeApp } from "../../src/http/app.ts";
import { KeyTable } from "../../src/http/auth.ts";
import { filesRoutes, jsonlValidator } from "../../src/http/files_routes.ts";
import { fineTuningRoutes } from "../../src/http/fine_tuning_routes.ts";
import { JobRunner } from "../../src/jobs/job_runner.ts";
import { ServeEngine } from "../../src/serve/engine.ts";
import { DbAdapterStore, FileStore, JobStore } from "../../src/store/db/mod.ts";
import { BACKENDS } from "../jobs/_db.ts";
import { jobModels } from "../jobs/_jobs.ts";
import { stories260k } from "../train/_stories.ts";

/** The two tenants' API keys. */
export const KEYS = { acme: "sk-acme-0123456789", beta: "sk-beta-0123456789" } as const;

/** A running console server. */
export interface ConsoleServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The app. */
  app: ServeApp;
  /** The engine. */
  engine: ServeEngine;
  /** The job store. */
  jobs: JobStore;
  /** The file store. */
  files: FileStore;
  /** Stops the server, the runner, the engine and the database. */
  close(): Promise<void>;
}

/**
 * Starts the console's test server, or returns undefined (after a skip message) without stories260K.
 *
 * @param t The test.
 * @param options Whether to run a job runner (training) too.
 */
export async function startConsoleServer(
  t: Deno.TestContext,
  options: { train?: boolean } = {},
): Promise<ConsoleServer | undefined> {
  const model = await stories260k(t);
  if (!model) return undefined;
  const test = (await BACKENDS[0].create(t))!;
  const { db } = test;
  const adapters = new DbAdapterStore(db);
  const files = new FileStore(db);
  const jobs = new JobStore(db);
  const models = jobModels(model);
  const engine = await ServeEngine.create({ model, store: adapters, ep: "wasm", workers: 0 });
  const keys = await KeyTable.fromJson({
    tenants: { acme: { keys: [KEYS.acme] }, beta: { keys: [KEYS.beta] } },
  }, "keys.json");
  const app = createApp({
    engine,
    keys,
    routes: [
      filesRoutes({ files, validate: jsonlValidator(model) }),
      fineTuningRoutes({ jobs, files, models, streamPollSeconds: 0.2 }),
    ],
    console: { jobs },
  });
  const runner = options.train
    ? new JobRunner({
      jobs,
      files,
      models,
      ep: "wasm",
      heartbeatSeconds: 0.2,
      pollSeconds: 0.2,
      metricsEverySeconds: 0,
      log: () => {},
    })
    : undefined;
  await runner?.start();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    app,
    engine,
    jobs,
    files,
    async close() {
      await server.shutdown();
      await runner?.stop();
      await engine.close(0);
      await test.dispose();
    },
  };
}
