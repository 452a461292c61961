/**
 * The typed per-request values of the Hono app (`c.get("tenant")`, `c.get("signal")`), shared by every
 * middleware and route so that later features (fine-tuning jobs, files) see the same context.
 *
 * @module
 */

/** Per-request values set by the middleware. */
export interface AppVariables {
  /** The caller's tenant (set by {@linkcode tenantAuth}). */
  tenant: string;
  /** Aborts when the request runs past its deadline (set by {@linkcode requestTimeout}). */
  signal: AbortSignal;
  /**
   * The tenant's byte quota and what it may still store (set by the quota middleware before an upload):
   * an upload that streams in without a declared length is stopped there.
   */
  uploadByteBudget?: { remaining: number; limit: number };
}

/** The Hono environment of the app. */
export interface AppEnv {
  /** Typed context variables. */
  Variables: AppVariables;
}
