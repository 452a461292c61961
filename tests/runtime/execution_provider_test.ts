import assert from "node:assert/strict";
import { hasWebGpu, probeWebGpu, resolveExecutionProvider } from "../../src/runtime/execution_provider.ts";
import type { ExecutionProviderChoice } from "../../src/runtime/execution_provider.ts";
import { requireWebGpu } from "../_util/fixtures.ts";

const repoRoot = new URL("../../", import.meta.url);

/** Runs a snippet in a fresh Deno process where `navigator.gpu.requestAdapter()` yields null. */
async function withoutAdapter(code: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const module = new URL("src/runtime/execution_provider.ts", repoRoot).href;
  const script = `GPU.prototype.requestAdapter = () => Promise.resolve(null);
const { hasWebGpu, resolveExecutionProvider } = await import(${JSON.stringify(module)});
${code}`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: output.code, stdout: text.decode(output.stdout), stderr: text.decode(output.stderr) };
}

Deno.test("resolveExecutionProvider: wasm always resolves to wasm", async () => {
  assert.equal(await resolveExecutionProvider("wasm"), "wasm");
});

Deno.test("resolveExecutionProvider: auto picks webgpu exactly when a hardware adapter exists", async () => {
  const probe = await probeWebGpu();
  assert.equal(probe.available, await hasWebGpu());
  const expected = probe.available && !probe.software ? "webgpu" : "wasm";
  assert.equal(await resolveExecutionProvider("auto"), expected);
});

Deno.test("probeWebGpu: lavapipe is reported as a software adapter, which auto passes over", async (t) => {
  const probe = await probeWebGpu();
  if (!probe.description.includes("llvmpipe")) {
    t.step({ name: "no lavapipe adapter here", ignore: true, fn: () => {} });
    return;
  }
  assert.equal(probe.software, true);
  assert.equal(await resolveExecutionProvider("auto"), "wasm");
  assert.equal(await resolveExecutionProvider("webgpu"), "webgpu");
});

Deno.test({
  name: "resolveExecutionProvider: webgpu resolves to webgpu when an adapter exists",
  ignore: !(await requireWebGpu("resolveExecutionProvider: webgpu")),
  fn: async () => {
    assert.equal(await resolveExecutionProvider("webgpu"), "webgpu");
  },
});

Deno.test("resolveExecutionProvider: an unknown provider is a TypeError naming it", async () => {
  await assert.rejects(
    () => resolveExecutionProvider("cuda" as ExecutionProviderChoice),
    (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.equal(error.message, 'Unknown execution provider "cuda": use auto, wasm or webgpu');
      return true;
    },
  );
});

Deno.test("resolveExecutionProvider: without an adapter, auto falls back to wasm and webgpu fails clearly", async () => {
  const result = await withoutAdapter(`
console.log(JSON.stringify({ gpu: await hasWebGpu(), auto: await resolveExecutionProvider("auto") }));
try {
  await resolveExecutionProvider("webgpu");
  console.log("no error");
} catch (error) {
  console.log(error.message);
}`);
  assert.equal(result.code, 0, result.stderr);
  const [summary, message] = result.stdout.trim().split("\n");
  assert.deepEqual(JSON.parse(summary), { gpu: false, auto: "wasm" });
  assert.equal(
    message,
    'Cannot use execution provider "webgpu": navigator.gpu yields no adapter ' +
      "(on Linux without a GPU install Debian's mesa-vulkan-drivers for lavapipe)",
  );
});

/** Runs a probe-counting snippet in a fresh process with the given permissions, without a display session. */
async function countProbes(
  permissions: string[],
): Promise<{ result: Record<string, unknown>; stderr: string }> {
  const module = new URL("src/runtime/execution_provider.ts", repoRoot).href;
  const script = `let probes = 0;
const request = GPU.prototype.requestAdapter;
GPU.prototype.requestAdapter = function (...args) { probes++; return request.apply(this, args); };
const { gpuHint, resolveExecutionProvider } = await import(${JSON.stringify(module)});
const wasm = await resolveExecutionProvider("wasm");
const afterWasm = probes;
const hint = await gpuHint();
const auto = await resolveExecutionProvider("auto");
console.log(JSON.stringify({ wasm, afterWasm, hint, auto, probes }));`;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/probe.js`, script);
    const env = Deno.env.toObject();
    delete env.XDG_RUNTIME_DIR;
    delete env.WAYLAND_DISPLAY;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", ...permissions, `${dir}/probe.js`],
      cwd: repoRoot,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    return { result: JSON.parse(new TextDecoder().decode(output.stdout)), stderr };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("wasm never asks navigator.gpu for an adapter; auto asks only where a GPU may exist, quietly", async () => {
  // with --allow-all the GPU device nodes decide; with read and env access, the installed Vulkan drivers
  for (const permissions of [["--allow-all"], ["--allow-read", "--allow-env"]]) {
    const { result: r, stderr } = await countProbes(permissions);
    const label = permissions.join(" ");
    assert.equal(r.wasm, "wasm");
    assert.equal(r.afterWasm, 0, `${label}: wasm does not probe`);
    if (r.hint === "none") {
      assert.equal(r.auto, "wasm");
      assert.equal(r.probes, 0, `${label}: no GPU can exist, so auto does not probe`);
    } else assert.equal(r.probes, 1, `${label}: a GPU may exist, so auto probes once`);
    assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR/, `${label}: no Mesa noise`);
  }
});
