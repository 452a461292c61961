/**
 * File-system helpers private to `src/io`: atomic writes, path joins, existence checks.
 *
 * @module
 */

/** Joins path segments with `/` (all paths here are POSIX-style or accepted as such by Deno). */
export function joinPath(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/").replace(/\/{2,}/g, "/");
}

/** The folder part of a path (`"."` when there is none). */
export function dirName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : trimmed.slice(0, i);
}

/** The last segment of a path. */
export function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** A random suffix for temporary names. */
export function randomSuffix(): string {
  return crypto.randomUUID().slice(0, 8);
}

/**
 * Writes `data` to `path` atomically: into `<path>.tmp-<random>` in the same folder, then a rename.
 * The temporary file is removed when anything fails.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write ${path}: ${(e as Error).message}`);
  }
}

/** Whether a path exists (any kind). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Reads and parses a JSON file, with errors that name the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`Cannot read ${path}: the file does not exist`);
    throw new Error(`Cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot parse ${path}: ${(e as Error).message}`);
  }
}
