/**
 * `deno task compile:serve`, `deno task compile:train`: one-file binaries of the server and the trainer
 * (`deno compile`), which run without a Deno install.
 *
 *     deno task compile:serve            # dist/weightlora-serve
 *     deno task compile:train            # dist/weightlora-train
 *     deno run -A src/cli/compile.ts serve --out DIR
 *
 * Each binary has the permissions of its `deno task` baked in (read from `deno.json`, so they never
 * drift apart) and embeds what the program loads at run time besides its module graph: the Worker
 * modules, the console's assets, and of onnxruntime-web only the files it uses (its node build, the
 * WebGPU bundle, their two wasm binaries: 41 of the package's 138 MB).
 *
 * `deno compile` writes the program into a copy of `denort`, the Deno runtime without the CLI, which it
 * downloads once per version and target and keeps in `$DENO_DIR/dl/release/v<version>/`. Offline, point
 * `DENORT_BIN` at a `denort` binary of the same version, or put its zip there; this command checks for one
 * before compiling and says so when there is none.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runCli } from "./_args.ts";

/** What one binary is built from. */
export interface CompileTarget {
  /** The binary's name under the output folder. */
  binary: string;
  /** The `deno.json` task whose permission flags the binary gets. */
  task: string;
  /** The entry module, relative to the repository root. */
  entry: string;
  /** Modules and folders loaded at run time outside the static module graph (`--include`). */
  include: string[];
}

/** The binaries this command builds. */
export const COMPILE_TARGETS: Readonly<Record<"serve" | "train", CompileTarget>> = {
  serve: {
    binary: "weightlora-serve",
    task: "serve",
    entry: "src/cli/serve.ts",
    include: [
      "workers/inference_worker.ts",
      "workers/adapter_validation_worker.ts",
      "workers/train_worker.ts",
      "src/console/assets",
    ],
  },
  train: {
    binary: "weightlora-train",
    task: "train",
    entry: "src/cli/train.ts",
    include: [],
  },
};

/** The onnxruntime-web 1.30 files a program of this toolkit loads; the rest of the package is left out. */
export const ORT_FILES_USED: ReadonlySet<string> = new Set([
  "ort.node.min.mjs",
  "ort.webgpu.bundle.min.mjs",
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
]);

/** The platform triple `deno compile` targets here (`denort-<triple>.zip`). */
export function hostTarget(): string {
  const os = Deno.build.os === "darwin"
    ? "apple-darwin"
    : Deno.build.os === "windows"
    ? "pc-windows-msvc"
    : "unknown-linux-gnu";
  return `${Deno.build.arch}-${os}`;
}

/**
 * Where `deno compile` will take `denort` from, or why it cannot without a download.
 *
 * @param denoDir Deno's cache folder (`deno info --json`'s `denoDir`).
 * @param env Reads an environment variable.
 * @returns `{ source }` naming the binary or zip, or `{ missing }` with what to do.
 */
export function findDenort(
  denoDir: string,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): { source: string } | { missing: string } {
  const bin = env("DENORT_BIN");
  if (bin) {
    try {
      if (Deno.statSync(bin).isFile) return { source: `DENORT_BIN=${bin}` };
    } catch { /* reported below */ }
    return { missing: `DENORT_BIN is ${bin}, which is not a file` };
  }
  const version = Deno.version.deno;
  const zip = `${denoDir}/dl/release/v${version}/denort-${hostTarget()}.zip`;
  try {
    if (Deno.statSync(zip).isFile) return { source: zip };
  } catch { /* missing */ }
  return {
    missing:
      `deno compile needs denort ${version} for ${hostTarget()}, which it downloads from dl.deno.land ` +
      `on first use; offline, set DENORT_BIN to a denort ${version} binary or put ` +
      `denort-${hostTarget()}.zip into ${denoDir}/dl/release/v${version}/`,
  };
}

/**
 * The permission and unstable flags of a `deno.json` task (`deno run FLAGS… script`).
 *
 * @param denoJson The parsed `deno.json`.
 * @param task The task name.
 * @returns The flags between `deno run` and the script.
 * @throws {Error} When the task is missing or is not a `deno run` of a script.
 */
export function taskFlags(denoJson: { tasks?: Record<string, string> }, task: string): string[] {
  const line = denoJson.tasks?.[task];
  const words = line?.trim().split(/\s+/) ?? [];
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(
      `Cannot read the permissions of task "${task}" in deno.json: expected "deno run …", got ${
        JSON.stringify(line)
      }`,
    );
  }
  const flags: string[] = [];
  for (const word of words.slice(2)) {
    if (!word.startsWith("-")) break;
    flags.push(word);
  }
  return flags;
}

/**
 * Package folders (under the npm cache's `registry.npmjs.org/`) left out besides onnxruntime-web's unused
 * files: `deno compile` 2.9.6 overflows its stack on bintrees 1.0.2's `test/` folder (bintrees comes with
 * prom-client, through tdigest), and the program never reads it.
 */
export const NPM_FOLDERS_LEFT_OUT: readonly string[] = ["bintrees/1.0.2/test"];

/** Options of {@linkcode compileArgs}. */
export interface CompileArgsOptions {
  /** The parsed `deno.json`. */
  denoJson: { tasks?: Record<string, string> };
  /** The output file. */
  output: string;
  /** The npm cache's `registry.npmjs.org` folder (`deno info --json`'s `npmCache` + `/registry.npmjs.org`). */
  npmRegistry?: string;
}

/**
 * The `deno compile` arguments of a target.
 *
 * @param target The target.
 * @param options `deno.json`, output file, the npm cache.
 * @returns The arguments after `deno`.
 */
export function compileArgs(target: CompileTarget, options: CompileArgsOptions): string[] {
  const args = ["compile", "--no-check", "--exclude-unused-npm", ...taskFlags(options.denoJson, target.task)];
  for (const path of target.include) args.push("--include", path);
  const registry = options.npmRegistry;
  if (registry) {
    for (const folder of NPM_FOLDERS_LEFT_OUT) {
      if (isDirectory(`${registry}/${folder}`)) args.push("--exclude", `${registry}/${folder}`);
    }
    const ort = `${registry}/onnxruntime-web/1.30.0`;
    if (isDirectory(`${ort}/dist`)) {
      for (const entry of Deno.readDirSync(ort)) {
        if (entry.name !== "dist" && entry.name !== "package.json") {
          args.push("--exclude", `${ort}/${entry.name}`);
        }
      }
      for (const entry of Deno.readDirSync(`${ort}/dist`)) {
        if (!ORT_FILES_USED.has(entry.name)) args.push("--exclude", `${ort}/dist/${entry.name}`);
      }
    }
  }
  args.push("--output", options.output, target.entry);
  return args;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

async function denoInfo(): Promise<{ denoDir: string; npmCache: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const USAGE = "deno run -A src/cli/compile.ts serve|train [--out DIR]";

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string", default: "dist" } },
    allowPositionals: true,
  });
  const name = positionals[0];
  if (positionals.length !== 1 || !(name in COMPILE_TARGETS)) {
    throw new Error(`Expected one target, serve or train, got ${JSON.stringify(positionals)}: ${USAGE}`);
  }
  const target = COMPILE_TARGETS[name as keyof typeof COMPILE_TARGETS];
  const root = decodeURIComponent(new URL("../../", import.meta.url).pathname);
  const info = await denoInfo();
  const denort = findDenort(info.denoDir);
  if ("missing" in denort) throw new Error(`Cannot compile ${target.binary}: ${denort.missing}`);
  const outDir = values.out!.startsWith("/") ? values.out! : `${Deno.cwd()}/${values.out}`;
  const output = `${outDir.replace(/\/+$/, "")}/${target.binary}`;
  await Deno.mkdir(outDir, { recursive: true });
  const denoJson = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  const args = compileArgs(target, { denoJson, output, npmRegistry: `${info.npmCache}/registry.npmjs.org` });
  console.log(`Compiling ${target.entry} with denort from ${denort.source}`);
  const status = await new Deno.Command(Deno.execPath(), { args, cwd: root }).spawn().status;
  if (!status.success) throw new Error(`deno compile of ${target.entry} failed (exit ${status.code})`);
  const bytes = (await Deno.stat(output)).size;
  console.log(`Wrote ${output}: ${(bytes / 2 ** 20).toFixed(1)} MiB`);
}

if (import.meta.main) await runCli("compile", main);
