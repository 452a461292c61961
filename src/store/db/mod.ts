/**
 * Durable state in one Postgres schema: {@linkcode openDatabase} (embedded PGlite in a folder, or a
 * Postgres server by URL), {@linkcode migrate}, and the stores on top — {@linkcode DbAdapterStore}
 * (tenants' adapters, shared by replicas), {@linkcode FileStore} (uploaded files) and
 * {@linkcode JobStore} (fine-tuning jobs with a claim-once queue, events and checkpoints).
 *
 * @example
 * ```ts ignore
 * import { DbAdapterStore, FileStore, JobStore, migrate, openDatabase } from "./mod.ts";
 * const db = await openDatabase(Deno.env.get("DATABASE_URL") ?? "state/db");
 * await migrate(db);
 * const adapters = new DbAdapterStore(db);
 * const files = new FileStore(db);
 * const jobs = new JobStore(db);
 * console.log(await adapters.list("acme"), await files.list("acme"), await jobs.list("acme"));
 * ```
 *
 * @module
 */

export * from "./database.ts";
export * from "./migrations.ts";
export * from "./db_adapter_store.ts";
export * from "./file_store.ts";
export * from "./job_store.ts";
