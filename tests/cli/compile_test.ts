// One-file binaries (`deno task compile:serve`): the compile arguments carry the task's permissions and
// what the program loads at run time, and the serve binary, built once, serves a request with no Deno on
// PATH and an empty DENO_DIR. `deno compile` needs `denort` (downloaded from dl.deno.land, which is not
// reachable here): without DENORT_BIN or a cached denort zip, the build uses the full `deno` binary as the
// base instead, which checks what gets embedded but cannot run the program (it starts the Deno CLI).

import assert from "node:assert/strict";
import {
  COMPILE_TARGETS,
  compileArgs,
  findDenort,
  NPM_FOLDERS_LEFT_OUT,
  ORT_FILES_USED,
  taskFlags,
} from "../../src/cli/compile.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { call } from "../http/_server.ts";
import { stories260kHf } from "../serve/_fixtures.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const DENO_JSON = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));

async function denoInfo(): Promise<{ denoDir: string; npmCache: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("compile arguments: the task's permissions, the Worker modules and assets, only the onnxruntime files used", async () => {
  const flags = taskFlags(DENO_JSON, "serve");
  assert.ok(flags.includes("--unstable-raw-imports"));
  assert.ok(flags.some((f) => f.startsWith("--allow-env=WEIGHTLORA_WASM_THREADS")), flags.join(" "));
  assert.ok(
    !flags.includes("-A") && !flags.includes("--allow-all") &&
      !flags.some((f) => f.startsWith("--allow-run")),
  );
  const registry = `${(await denoInfo()).npmCache}/registry.npmjs.org`;
  const args = compileArgs(COMPILE_TARGETS.serve, {
    denoJson: DENO_JSON,
    output: "dist/x",
    npmRegistry: registry,
  });
  assert.deepEqual(args.slice(0, 3 + flags.length), [
    "compile",
    "--no-check",
    "--exclude-unused-npm",
    ...flags,
  ]);
  for (const worker of ["inference_worker.ts", "adapter_validation_worker.ts", "train_worker.ts"]) {
    assert.ok(args.includes(`workers/${worker}`), `includes ${worker}`);
  }
  assert.ok(args.includes("src/console/assets"));
  assert.deepEqual(args.slice(-3), ["--output", "dist/x", "src/cli/serve.ts"]);
  const excluded = args.filter((_, i) => args[i - 1] === "--exclude");
  const ortDist = `${registry}/onnxruntime-web/1.30.0/dist`;
  for (const used of ORT_FILES_USED) {
    if (used.endsWith(".wasm")) assert.ok(Deno.statSync(`${ortDist}/${used}`).isFile, `${used} exists`);
    assert.ok(!excluded.includes(`${ortDist}/${used}`), `${used} is kept`);
  }
  assert.ok(excluded.includes(`${ortDist}/ort-wasm-simd-threaded.jsep.wasm`));
  assert.ok(excluded.includes(`${registry}/${NPM_FOLDERS_LEFT_OUT[0]}`));
  assert.throws(() => taskFlags({ tasks: { x: "echo hi" } }, "x"), /Cannot read the permissions of task "x"/);
});

Deno.test("findDenort names DENORT_BIN or the cached zip, and says what to do without either", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "denort_" });
  try {
    const none = findDenort(denoDir, () => undefined);
    assert.ok("missing" in none);
    assert.match(none.missing, /downloads from dl\.deno\.land on first use; offline, set DENORT_BIN/);
    const zipDir = `${denoDir}/dl/release/v${Deno.version.deno}`;
    assert.ok(none.missing.includes(zipDir), none.missing);
    await Deno.mkdir(zipDir, { recursive: true });
    const zip = `${zipDir}/denort-${Deno.build.arch}-unknown-linux-gnu.zip`;
    await Deno.writeFile(zip, new Uint8Array(1));
    assert.deepEqual(findDenort(denoDir, () => undefined), { source: zip });
    assert.deepEqual(findDenort(denoDir, () => zip), { source: `DENORT_BIN=${zip}` });
    assert.ok("missing" in findDenort(denoDir, () => `${denoDir}/absent`));
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

/** Builds the serve binary into `dir` (with `DENORT_BIN` when given); returns the compile output. */
async function buildServe(dir: string, denortBin?: string): Promise<string> {
  const env: Record<string, string> = { NO_COLOR: "1", ...(denortBin ? { DENORT_BIN: denortBin } : {}) };
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      "src/cli/compile.ts",
      "serve",
      "--out",
      dir,
    ],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  return text;
}

Deno.test({
  name:
    "the serve binary is built once: it serves a completion without Deno (with denort), or embeds what it needs",
  ignore: !requireStories260k("compile serve"),
  fn: async (t) => {
    const info = await denoInfo();
    const denort = findDenort(info.denoDir);
    const dir = await Deno.makeTempDir({ prefix: "compile_test_" });
    try {
      if ("missing" in denort) {
        console.warn(`No denort, so the binary cannot run here: ${denort.missing}`);
        // the full deno binary as the base: the same payload, so what is embedded can be checked
        const text = await buildServe(dir, Deno.execPath());
        assert.match(
          text,
          /onnxruntime-web\/1\.30\.0\/\* \((3\d|4\d)\.\d+MB\)/,
          "only the used onnxruntime files",
        );
        assert.match(text, /workers\/\* \(/);
        assert.match(text, /assets\/\* \(/);
        assert.match(text, /Wrote .*weightlora-serve: \d+\.\d MiB/);
        await t.step({ name: "run the binary without Deno (needs denort)", ignore: true, fn: () => {} });
        return;
      }
      await buildServe(dir);
      const model = await stories260kHf();
      const store = await Deno.makeTempDir({ dir, prefix: "store_" });
      const empty = await Deno.makeTempDir({ dir, prefix: "deno_dir_" });
      const child = new Deno.Command(`${dir}/weightlora-serve`, {
        args: [
          "--model",
          model,
          "--store",
          store,
          "--read-only",
          "--ep",
          "wasm",
          "--port",
          "0",
          "--host",
          "127.0.0.1",
        ],
        cwd: dir,
        clearEnv: true,
        env: { PATH: empty, DENO_DIR: empty, HOME: empty },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const lines: string[] = [];
      let url: string | undefined;
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const deadline = Date.now() + 60_000;
      while (!url && Date.now() < deadline) {
        const { done, value } = await reader.read();
        if (done) break;
        lines.push(value);
        url = /Listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(lines.join(""))?.[1];
      }
      try {
        assert.ok(url, `the binary listens:\n${lines.join("")}`);
        const reply = await call(`${url}/v1/completions`, {
          json: { model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0 },
        });
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        assert.match(reply.body.choices[0].text, /^, there was a little girl/);
      } finally {
        child.kill("SIGTERM");
        await child.status;
        reader.releaseLock();
        await child.stdout.cancel().catch(() => {});
        await child.stderr.cancel().catch(() => {});
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
