// Which database a command uses: `--db`, else the DATABASE_URL environment variable, else the embedded
// folder .weightlora/db — the same rule for `deno task serve` and `deno task worker`.

/** The embedded database folder used when neither `--db` nor `DATABASE_URL` names one. */
export const DEFAULT_DATABASE = ".weightlora/db";

/** A database location and where it came from. */
export interface DatabaseChoice {
  /** A `postgres://` URL or an embedded database folder. */
  location: string;
  /** `--db`, `DATABASE_URL` or `default`. */
  source: "--db" | "DATABASE_URL" | "default";
}

/**
 * Chooses the database: `--db` wins over `DATABASE_URL`, which wins over {@linkcode DEFAULT_DATABASE}.
 * `DATABASE_URL` is read only where the environment permission for it was granted.
 *
 * @param flag The `--db` value, if given.
 * @returns The location and its source.
 */
export function chooseDatabase(flag: string | undefined): DatabaseChoice {
  if (flag !== undefined && flag !== "") return { location: flag, source: "--db" };
  const permitted = Deno.permissions.querySync({ name: "env", variable: "DATABASE_URL" }).state === "granted";
  const url = permitted ? Deno.env.get("DATABASE_URL") : undefined;
  if (url) return { location: url, source: "DATABASE_URL" };
  return { location: DEFAULT_DATABASE, source: "default" };
}

/**
 * Whether a location names a Postgres server (as `isServerUrl` of `src/store/db`, without loading the
 * database drivers).
 *
 * @param location A URL or a folder.
 * @returns True for `postgres://` and `postgresql://` URLs.
 */
export function isServerLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}
