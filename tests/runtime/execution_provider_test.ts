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

Deno.test("wasm never asks navigator.gpu for an adapter; auto asks only where a GPU device node exists", async () => {
  const module = new URL("src/runtime/execution_provider.ts", repoRoot).href;
  const script = `let probes = 0;
const request = GPU.prototype.requestAdapter;
GPU.prototype.requestAdapter = function (...args) { probes++; return request.apply(this, args); };
const { hasGpuDeviceNode, resolveExecutionProvider } = await import(${JSON.stringify(module)});
const wasm = await resolveExecutionProvider("wasm");
const afterWasm = probes;
const auto = await resolveExecutionProvider("auto");
console.log(JSON.stringify({ wasm, afterWasm, auto, probes, device: await hasGpuDeviceNode() ?? null }));`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const r = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.equal(r.wasm, "wasm");
  assert.equal(r.afterWasm, 0, "wasm does not probe");
  if (Deno.build.os === "linux") assert.equal(typeof r.device, "boolean");
  if (r.device === false) {
    assert.equal(r.auto, "wasm");
    assert.equal(r.probes, 0, "no GPU device node: auto does not probe");
    assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR/, "and prints no Mesa noise");
  } else {
    assert.equal(r.probes, 1, "a GPU device node (or an unknown OS): auto probes once");
  }
});
