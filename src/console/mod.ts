/**
 * The tenant web console, served by the app under `/console` (`createApp({ …, console: { jobs } })`):
 * sign-in with an API key ({@linkcode ConsoleSessions}: an HTTP-only, `SameSite=Strict` cookie; the key stays
 * on the server), adapters, fine-tuning jobs with their live loss curve and gate heatmap ({@linkcode jobGates}),
 * and a playground comparing the base model with an adapter ({@linkcode consoleRoutes}).
 *
 * @example
 * ```ts ignore
 * import { createApp } from "../http/app.ts";
 * const { fetch } = createApp({ engine, keys, console: { jobs } });
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, fetch); // http://127.0.0.1:8080/console
 * ```
 *
 * @module
 */

export * from "./adapter_info.ts";
export * from "./gates.ts";
export * from "./routes.tsx";
export * from "./session.ts";
