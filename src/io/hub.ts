/**
 * {@linkcode resolveModelSource}: turns `"DIR"` or `"hf:OWNER/REPO[@REVISION]"` into a local model folder,
 * downloading from the Hugging Face hub (or any server with the same `/OWNER/REPO/resolve/REV/FILE`
 * URLs) into a cache.
 *
 * Cache layout (a subset of `huggingface_hub`'s, so either tool can read the other's snapshots):
 *
 *     <cache>/models--OWNER--REPO/refs/<revision>          the commit the revision resolved to
 *     <cache>/models--OWNER--REPO/snapshots/<commit>/FILE  the files, as plain files
 *     <cache>/models--OWNER--REPO/snapshots/<commit>/FILE.incomplete   a partial download, resumed later
 *
 * `<cache>` is `options.cacheDir`, else `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
 * `~/.cache/huggingface/hub`. The token is `options.token`, else `$HF_TOKEN`; the server is
 * `options.endpoint`, else `$HF_ENDPOINT`, else `https://huggingface.co`; `$HF_HUB_OFFLINE=1` uses the
 * cache only.
 *
 * @module
 */

import { dirName, exists, joinPath, randomSuffix } from "./_fs.ts";
import { downloadFile, headRemoteFile, type HttpContext, HttpStatusError } from "./_download.ts";
import type { ProgressMode } from "./_progress.ts";

export type { ProgressMode } from "./_progress.ts";

/** A parsed model source. */
export type ModelSource =
  | { kind: "dir"; path: string }
  | { kind: "hub"; repo: string; revision: string };

/** Options of {@linkcode resolveModelSource}. */
export interface ResolveModelSourceOptions {
  /** Cache root. @default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub */
  cacheDir?: string;
  /** Hub token, sent as `Authorization: Bearer`. @default $HF_TOKEN */
  token?: string;
  /** Hub base URL. @default $HF_ENDPOINT or "https://huggingface.co" */
  endpoint?: string;
  /** Use the cache only, never the network. @default $HF_HUB_OFFLINE is "1" or "true" */
  offline?: boolean;
  /** Progress on stderr: a bar on a terminal, log lines otherwise. @default "auto" */
  progress?: ProgressMode;
  /** Extra attempts per file after an interrupted transfer, each resuming. @default 3 */
  retries?: number;
  /** The fetch function (tests inject one). @default globalThis.fetch */
  fetch?: typeof fetch;
}

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Parses a model source: `hf:OWNER/REPO[@REVISION]` (revision default `main`) or a folder path.
 *
 * @param source The source string.
 * @returns Its kind and parts.
 * @throws {Error} When an `hf:` source is malformed, with the value.
 *
 * @example
 * ```ts
 * import { parseModelSource } from "./hub.ts";
 * const s = parseModelSource("hf:karpathy/tinyllamas@main");
 * console.assert(s.kind === "hub" && s.repo === "karpathy/tinyllamas");
 * ```
 */
export function parseModelSource(source: string): ModelSource {
  if (!source.startsWith("hf:")) return { kind: "dir", path: source };
  const body = source.slice(3);
  const at = body.indexOf("@");
  const repo = at < 0 ? body : body.slice(0, at);
  const revision = at < 0 ? "main" : body.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every((p) => REPO_PART.test(p) && !p.includes(".."))) {
    throw new Error(`Cannot parse model source ${JSON.stringify(source)}: expected hf:OWNER/REPO[@REVISION]`);
  }
  if (revision === "" || revision.includes("..") || /[\s\\]/.test(revision)) {
    throw new Error(
      `Cannot parse model source ${JSON.stringify(source)}: revision ${JSON.stringify(revision)} is invalid`,
    );
  }
  return { kind: "hub", repo, revision };
}

/** Reads an environment variable, `undefined` without permission. */
function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

/** The cache root from options and environment. */
export function defaultHubCacheDir(): string {
  const hubCache = env("HF_HUB_CACHE");
  if (hubCache !== undefined) return hubCache;
  const home = env("HF_HOME");
  if (home !== undefined) return joinPath(home, "hub");
  const xdg = env("XDG_CACHE_HOME");
  if (xdg !== undefined) return joinPath(xdg, "huggingface", "hub");
  const user = env("HOME") ?? env("USERPROFILE");
  if (user === undefined) throw new Error("Cannot find the Hugging Face cache: set HF_HOME or HOME");
  return joinPath(user, ".cache", "huggingface", "hub");
}

/** Files a model folder needs (`required`) or may have. */
const REQUIRED_FILES = ["config.json", "tokenizer.json"];
const OPTIONAL_FILES = ["generation_config.json", "tokenizer_config.json", "chat_template.jinja"];

/**
 * Resolves a model source to a local folder. A folder path is checked and returned as is; an
 * `hf:OWNER/REPO[@REVISION]` source is downloaded (config, weights — `model.safetensors`, or the index
 * and every shard it names —, tokenizer files, generation config) into the cache, resuming partial
 * downloads and checking sha256 where the hub gives one, and the snapshot folder is returned.
 *
 * @param source `"DIR"` or `"hf:OWNER/REPO[@REVISION]"`.
 * @param options Cache, credentials, endpoint, offline mode, progress, retries.
 * @returns The local folder.
 * @throws {Error} When the folder does not exist; on HTTP 401/403 (telling to set `HF_TOKEN`), 404, an
 *   interrupted transfer after all retries (the partial file is kept for the next call), a checksum
 *   mismatch, or offline without a cached snapshot.
 *
 * @example
 * ```ts ignore
 * import { resolveModelSource } from "./hub.ts";
 * const dir = await resolveModelSource("hf:HuggingFaceTB/SmolLM2-135M-Instruct");
 * ```
 */
export async function resolveModelSource(
  source: string,
  options: ResolveModelSourceOptions = {},
): Promise<string> {
  const parsed = parseModelSource(source);
  if (parsed.kind === "dir") {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(parsed.path);
    } catch {
      throw new Error(`Cannot use model folder ${parsed.path}: it does not exist`);
    }
    if (!info.isDirectory) throw new Error(`Cannot use model folder ${parsed.path}: it is not a folder`);
    return parsed.path;
  }
  const hub = await openHubSnapshot(parsed, source, "config.json", options);
  if (typeof hub === "string") return hub;
  const { fetchFile } = hub;
  for (const f of REQUIRED_FILES) await fetchFile(f, true);
  for (const f of OPTIONAL_FILES) await fetchFile(f, false);
  if (await fetchFile("model.safetensors.index.json", false)) {
    const index = JSON.parse(await Deno.readTextFile(joinPath(hub.snapshot, "model.safetensors.index.json")));
    const shards = new Set<string>(Object.values((index?.weight_map ?? {}) as Record<string, string>));
    for (const shard of [...shards].sort()) {
      if (typeof shard !== "string" || shard.includes("/") || shard.includes("..")) {
        throw new Error(
          `Cannot resolve ${source}: model.safetensors.index.json names shard ${JSON.stringify(shard)}`,
        );
      }
      await fetchFile(shard, true);
    }
  } else if (!(await fetchFile("model.safetensors", false))) {
    throw new Error(
      `Cannot resolve ${source}: the repository has neither model.safetensors nor model.safetensors.index.json`,
    );
  }
  await hub.finish();
  return hub.snapshot;
}

/**
 * Downloads chosen files of a hub repository (e.g. a llama2.c checkpoint and its tokenizer) into the
 * cache, with the same resuming, checksums, credentials and progress as {@linkcode resolveModelSource}.
 *
 * @param source `"hf:OWNER/REPO[@REVISION]"`.
 * @param files Paths inside the repository; the first one pins the revision to a commit.
 * @param options Cache, credentials, endpoint, offline mode, progress, retries.
 * @returns The local path of each file, by its repository path.
 * @throws {Error} When `source` is not an `hf:` source, a file is missing (404), or as
 *   {@linkcode resolveModelSource}.
 *
 * @example
 * ```ts ignore
 * import { downloadHubFiles } from "./hub.ts";
 * const paths = await downloadHubFiles("hf:karpathy/tinyllamas", ["stories260K/stories260K.bin", "stories260K/tok512.bin"]);
 * ```
 */
export async function downloadHubFiles(
  source: string,
  files: readonly string[],
  options: ResolveModelSourceOptions = {},
): Promise<Record<string, string>> {
  const parsed = parseModelSource(source);
  if (parsed.kind !== "hub") {
    throw new Error(`Cannot download files from ${source}: expected hf:OWNER/REPO[@REVISION]`);
  }
  if (files.length === 0) throw new Error(`Cannot download files from ${source}: no file named`);
  for (const f of files) {
    if (f.startsWith("/") || f.split("/").includes("..")) {
      throw new Error(`Cannot download ${JSON.stringify(f)}: not a repository path`);
    }
  }
  const hub = await openHubSnapshot(parsed, source, files[0], options);
  const snapshot = typeof hub === "string" ? hub : hub.snapshot;
  if (typeof hub !== "string") {
    for (const f of files) await hub.fetchFile(f, true);
    await hub.finish();
  }
  const paths: Record<string, string> = {};
  for (const f of files) {
    const path = joinPath(snapshot, f);
    if (!(await exists(path))) {
      throw new Error(`Cannot use ${source}: ${f} is not in the cached snapshot ${snapshot}`);
    }
    paths[f] = path;
  }
  return paths;
}

/** An opened snapshot: fetches files at the pinned commit; `finish` records the revision's commit. */
interface HubSnapshot {
  snapshot: string;
  fetchFile(file: string, required: boolean): Promise<boolean>;
  finish(): Promise<void>;
}

/**
 * Pins `parsed`'s revision to a commit (through a HEAD of `pinFile`) and prepares its snapshot folder;
 * offline, returns the cached snapshot's path instead.
 */
async function openHubSnapshot(
  parsed: { repo: string; revision: string },
  source: string,
  pinFile: string,
  options: ResolveModelSourceOptions,
): Promise<HubSnapshot | string> {
  const { repo, revision } = parsed;
  const cacheDir = options.cacheDir ?? defaultHubCacheDir();
  const repoDir = joinPath(cacheDir, `models--${repo.replace("/", "--")}`);
  const refPath = joinPath(repoDir, "refs", revision);
  const offline = options.offline ??
    ["1", "true", "yes"].includes((env("HF_HUB_OFFLINE") ?? "").toLowerCase());
  if (offline) return await cachedSnapshot(repoDir, refPath, revision, source, pinFile);

  const endpoint = (options.endpoint ?? env("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, "");
  const ctx: HttpContext = {
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    token: options.token ?? env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN"),
    origin: new URL(endpoint).origin,
  };
  const download = { retries: options.retries ?? 3, progress: options.progress ?? "auto" };
  const urlOf = (rev: string, file: string) =>
    `${endpoint}/${repo}/resolve/${encodeURIComponent(rev)}/${
      file.split("/").map(encodeURIComponent).join("/")
    }`;

  // The first file pins the revision to a commit; every other file is then fetched at that commit.
  const pinned = await headRemoteFile(urlOf(revision, pinFile), `${repo}/${pinFile}`, ctx).catch(
    (e) => {
      if (e instanceof HttpStatusError && e.status === 404) {
        throw new Error(
          `Cannot resolve ${source}: ${endpoint}/${repo} has no ${pinFile} at revision "${revision}" (or the repository does not exist)`,
        );
      }
      throw e;
    },
  );
  const commit = pinned.commit ?? revision;
  const snapshot = joinPath(repoDir, "snapshots", commit.replaceAll("/", "--"));
  await Deno.mkdir(snapshot, { recursive: true });

  const fetchFile = async (file: string, required: boolean): Promise<boolean> => {
    const dest = joinPath(snapshot, file);
    if (await exists(dest)) return true;
    const label = `${repo}/${file}`;
    let remote;
    try {
      remote = file === pinFile ? pinned : await headRemoteFile(urlOf(commit, file), label, ctx);
    } catch (e) {
      if (!required && e instanceof HttpStatusError && e.status === 404) return false;
      if (e instanceof HttpStatusError && e.status === 404) {
        throw new Error(`Cannot resolve ${source}: the repository has no ${file} at commit ${commit}`);
      }
      throw e;
    }
    await Deno.mkdir(dirName(dest), { recursive: true });
    await downloadFile(remote, dest, { ...ctx, ...download, label });
    return true;
  };
  return {
    snapshot,
    fetchFile,
    finish: async () => {
      if (commit !== revision) await writeRef(refPath, commit);
    },
  };
}

/** Records `refs/<revision>` → commit, atomically. */
async function writeRef(refPath: string, commit: string): Promise<void> {
  await Deno.mkdir(refPath.slice(0, refPath.lastIndexOf("/")), { recursive: true });
  const tmp = `${refPath}.tmp-${randomSuffix()}`;
  await Deno.writeTextFile(tmp, commit);
  await Deno.rename(tmp, refPath);
}

/** The cached snapshot of a revision, for offline use. */
async function cachedSnapshot(
  repoDir: string,
  refPath: string,
  revision: string,
  source: string,
  pinFile: string,
): Promise<string> {
  let commit = revision;
  try {
    commit = (await Deno.readTextFile(refPath)).trim();
  } catch {
    // The revision may itself be a commit.
  }
  const snapshot = joinPath(repoDir, "snapshots", commit.replaceAll("/", "--"));
  if (!(await exists(joinPath(snapshot, pinFile)))) {
    throw new Error(
      `Cannot resolve ${source} offline: no cached snapshot in ${repoDir} (download it once online)`,
    );
  }
  return snapshot;
}
