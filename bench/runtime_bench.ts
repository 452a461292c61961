/**
 * Runtime benchmark: the wasm and WebGPU execution providers measured side by side in one run
 * (alternating A/B rounds, medians reported), since these shared machines vary up to 2× from minute to
 * minute.
 *
 * - fp32 MatMul 512² and 1024²: wasm; WebGPU with host inputs and outputs; WebGPU device-resident
 *   (`x ← x·W` chained on the GPU, one upload and one download per chain).
 * - `session.run` overhead of a chain of 40 Adds on a [4] tensor (graph optimisation off, so 40 kernels).
 * - wasm with 1 vs 2 threads (`WEIGHTLORA_WASM_THREADS`, one child process per setting, alternating
 *   1, 2, 1, 2, 1, 2).
 *
 * Prints Markdown tables and writes `bench/results/runtime.json`.
 *
 * Usage: `deno run -A bench/runtime_bench.ts [--rounds=N]` (default 5 rounds).
 *
 * @module
 */

import { GraphBuilder } from "../src/onnx/builder.ts";
import type { Model } from "../src/onnx/types.ts";
import { hasWebGpu } from "../src/runtime/execution_provider.ts";
import { ort } from "../src/runtime/ort.ts";
import { OnnxSession, type OrtTensor } from "../src/runtime/session.ts";
import { disposeTensors, hostTensor, toHost } from "../src/runtime/tensor.ts";
import { type Cell, figure, markdownTable } from "./_table.ts";

const CHILD_FLAG = "--threads-child";
const CHAIN = 4;
const ADDS = 40;
const THREAD_SETTINGS = [1, 2];

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Deterministic values in [-0.5, 0.5). */
function pseudoRandom(length: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * scale;
  });
}

/** `y = x · W` with W an [n, n] initializer scaled to keep chained products bounded. */
function matmulModel(n: number): Model {
  const b = new GraphBuilder(`matmul_${n}`);
  const x = b.input("x", "float32", [n, n]);
  const w = b.initializer("w", pseudoRandom(n * n, 7, 2 * Math.sqrt(3 / n)), [n, n]);
  b.output(b.matmul(x, w), "y");
  return b.toModel();
}

/** `y = x + 1 + 1 + …` with {@linkcode ADDS} Adds on a [4] tensor. */
function addChainModel(): Model {
  const b = new GraphBuilder("add_chain");
  let v = b.input("x", "float32", [4]);
  for (let i = 0; i < ADDS; i++) v = b.add(v, 1);
  b.output(b.identity(v), "y");
  return b.toModel();
}

async function elapsed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Runs `session` `times` times feeding each output back; one upload, one download. Returns ms. */
async function chainOnDevice(session: OnnxSession, start: OrtTensor, times: number): Promise<number> {
  return await elapsed(async () => {
    let state = start;
    for (let i = 0; i < times; i++) {
      const { y } = await session.run({ x: state });
      if (state !== start) disposeTensors([state]);
      state = y;
    }
    await toHost(state);
    disposeTensors([state]);
  });
}

interface MatmulResult {
  n: number;
  gflop: number;
  wasmMs: number;
  webgpuHostMs: number | null;
  webgpuDeviceMs: number | null;
  maxAbsDiff: number | null;
}

async function benchMatmul(n: number, rounds: number, gpu: boolean): Promise<MatmulResult> {
  const model = matmulModel(n);
  const x = hostTensor(pseudoRandom(n * n, n), [n, n]);
  const wasm = await OnnxSession.create(model, { ep: "wasm" });
  const host = gpu ? await OnnxSession.create(model, { ep: "webgpu" }) : undefined;
  const device = gpu ? await OnnxSession.create(model, { ep: "webgpu", keepOnDevice: true }) : undefined;
  // Warm-up, and the two providers must agree.
  const reference = (await toHost((await wasm.run({ x })).y)) as Float32Array;
  let maxAbsDiff: number | null = null;
  if (host && device) {
    const other = (await toHost((await host.run({ x })).y)) as Float32Array;
    maxAbsDiff = reference.reduce((m, v, i) => Math.max(m, Math.abs(v - other[i])), 0);
    await chainOnDevice(device, x, 1);
  }
  const samples = { wasm: [] as number[], host: [] as number[], device: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    samples.wasm.push(await elapsed(() => wasm.run({ x })));
    if (host && device) {
      samples.host.push(await elapsed(() => host.run({ x })));
      samples.device.push((await chainOnDevice(device, x, CHAIN)) / CHAIN);
    }
  }
  await wasm.release();
  await host?.release();
  await device?.release();
  return {
    n,
    gflop: (2 * n ** 3) / 1e9,
    wasmMs: median(samples.wasm),
    webgpuHostMs: host ? median(samples.host) : null,
    webgpuDeviceMs: device ? median(samples.device) : null,
    maxAbsDiff,
  };
}

interface OverheadResult {
  ops: number;
  wasmUs: number;
  webgpuHostUs: number | null;
  webgpuDeviceUs: number | null;
}

async function benchOverhead(rounds: number, gpu: boolean): Promise<OverheadResult> {
  const model = addChainModel();
  const options = { graphOptimizationLevel: "disabled" as const };
  const x = hostTensor(Float32Array.from([1, 2, 3, 4]), [4]);
  const wasm = await OnnxSession.create(model, { ...options, ep: "wasm" });
  const host = gpu ? await OnnxSession.create(model, { ...options, ep: "webgpu" }) : undefined;
  const device = gpu
    ? await OnnxSession.create(model, { ...options, ep: "webgpu", keepOnDevice: true })
    : undefined;
  const batch = 20;
  const runs = async (session: OnnxSession) => {
    for (let i = 0; i < batch; i++) await session.run({ x });
  };
  await runs(wasm);
  if (host && device) {
    await runs(host);
    await chainOnDevice(device, x, batch);
  }
  const samples = { wasm: [] as number[], host: [] as number[], device: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    samples.wasm.push((await elapsed(() => runs(wasm))) / batch);
    if (host && device) {
      samples.host.push((await elapsed(() => runs(host))) / batch);
      samples.device.push((await chainOnDevice(device, x, batch)) / batch);
    }
  }
  const check = (await toHost((await wasm.run({ x })).y))[0];
  if (check !== 1 + ADDS) throw new Error(`The Add chain computed ${check}, expected ${1 + ADDS}`);
  await wasm.release();
  await host?.release();
  await device?.release();
  return {
    ops: ADDS,
    wasmUs: median(samples.wasm) * 1000,
    webgpuHostUs: host ? median(samples.host) * 1000 : null,
    webgpuDeviceUs: device ? median(samples.device) * 1000 : null,
  };
}

/** In a child process: the median ms of a 1024² MatMul on wasm with this process's thread setting. */
async function threadsChild(rounds: number): Promise<void> {
  const n = 1024;
  const session = await OnnxSession.create(matmulModel(n), { ep: "wasm" });
  const x = hostTensor(pseudoRandom(n * n, n), [n, n]);
  await session.run({ x });
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) samples.push(await elapsed(() => session.run({ x })));
  await session.release();
  console.log(JSON.stringify({ threads: ort.env.wasm.numThreads, ms: median(samples) }));
}

interface ThreadsResult {
  threads: number;
  ms: number;
  gflops: number;
}

async function benchThreads(rounds: number): Promise<ThreadsResult[]> {
  const samples = new Map<number, number[]>(THREAD_SETTINGS.map((t) => [t, []]));
  for (let r = 0; r < 3; r++) {
    for (const threads of THREAD_SETTINGS) {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, CHILD_FLAG, `--rounds=${rounds}`],
        env: { WEIGHTLORA_WASM_THREADS: String(threads) },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout).trim();
      if (!output.success) {
        throw new Error(
          `The wasm threads child (${threads} threads) failed: ${new TextDecoder().decode(output.stderr)}`,
        );
      }
      const result = JSON.parse(stdout.split("\n").at(-1)!) as { threads: number; ms: number };
      if (result.threads !== threads) {
        throw new Error(`The wasm threads child asked for ${threads} threads but ran ${result.threads}`);
      }
      samples.get(threads)!.push(result.ms);
    }
  }
  return THREAD_SETTINGS.map((threads) => {
    const ms = median(samples.get(threads)!);
    return { threads, ms, gflops: (2 * 1024 ** 3) / (ms * 1e6) };
  });
}

async function adapterName(): Promise<string | null> {
  const gpu = (globalThis.navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter();
  if (!adapter) return null;
  const info = adapter.info;
  return info.description || `${info.vendor} ${info.architecture}`.trim() || "unknown adapter";
}

function loadAverage(): number[] {
  return Deno.loadavg().map((v) => Math.round(v * 100) / 100);
}

function optional(value: number | null): number | string {
  return value === null ? "—" : value;
}

async function main(): Promise<void> {
  const roundsArg = Deno.args.find((a) => a.startsWith("--rounds="));
  const rounds = roundsArg ? Number(roundsArg.slice("--rounds=".length)) : 5;
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`--rounds must be a positive integer, got "${roundsArg}"`);
  }
  if (Deno.args.includes(CHILD_FLAG)) return await threadsChild(rounds);

  const gpu = await hasWebGpu();
  const adapter = await adapterName();
  const environment = {
    measuredAt: new Date().toISOString(),
    deno: Deno.version.deno,
    onnxruntimeWeb: ort.env.versions.web ?? null,
    cpus: navigator.hardwareConcurrency,
    webgpuAdapter: adapter,
    rounds,
    loadAverageBefore: loadAverage(),
    loadAverageAfter: [] as number[],
  };
  console.log(`# Runtime benchmark (${environment.measuredAt})\n`);
  console.log(
    `Deno ${environment.deno}, onnxruntime-web ${environment.onnxruntimeWeb}, ${environment.cpus} CPUs, ` +
      `WebGPU adapter: ${adapter ?? "none"}; ${rounds} alternating rounds, medians; ` +
      `load average ${environment.loadAverageBefore.join(", ")}.\n`,
  );

  const matmul: MatmulResult[] = [];
  for (const n of [512, 1024]) matmul.push(await benchMatmul(n, rounds, gpu));
  console.log("## fp32 MatMul (wasm: 1 thread)\n");
  const matmulRows: Cell[][] = [];
  for (const m of matmul) {
    const variants: [string, number | null][] = [
      ["wasm", m.wasmMs],
      ["webgpu, host I/O", m.webgpuHostMs],
      [`webgpu, device-resident (chain of ${CHAIN})`, m.webgpuDeviceMs],
    ];
    for (const [provider, ms] of variants) {
      matmulRows.push([
        `${m.n}²`,
        provider,
        optional(ms),
        ms === null ? "—" : m.gflop / (ms / 1e3),
        ms === null ? "—" : ms / m.wasmMs,
      ]);
    }
  }
  console.log(markdownTable(["MatMul", "provider", "ms", "GFLOP/s", "time / wasm time"], matmulRows));
  const diffs = matmul.map((m) => `${m.n}²: ${m.maxAbsDiff === null ? "—" : m.maxAbsDiff.toExponential(1)}`);
  console.log(`\nLargest |wasm − webgpu| difference: ${diffs.join(", ")}.`);

  const overhead = await benchOverhead(rounds, gpu);
  console.log(`\n## session.run overhead: ${ADDS} Adds on a [4] tensor\n`);
  const perOp = (us: number | null) => (us === null ? "—" : us / ADDS);
  console.log(markdownTable(
    ["provider", "µs per run", "µs per op"],
    [
      ["wasm", overhead.wasmUs, overhead.wasmUs / ADDS],
      ["webgpu, host I/O", optional(overhead.webgpuHostUs), perOp(overhead.webgpuHostUs)],
      ["webgpu, fed back on device", optional(overhead.webgpuDeviceUs), perOp(overhead.webgpuDeviceUs)],
    ],
  ));

  const threads = await benchThreads(rounds);
  console.log("\n## wasm threads: 1024² MatMul, one process per setting\n");
  console.log(markdownTable(
    ["threads", "ms", "GFLOP/s", "speed-up"],
    threads.map((t) => [t.threads, t.ms, t.gflops, threads[0].ms / t.ms]),
  ));

  environment.loadAverageAfter = loadAverage();
  console.log(`\nLoad average after: ${environment.loadAverageAfter.join(", ")}.`);
  const results = { environment, matmul, overhead, threads };
  const dir = new URL("./results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const file = new URL("runtime.json", dir);
  await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nWrote ${file.pathname} (${figure(matmul[1].wasmMs)} ms for wasm 1024²).`);
}

if (import.meta.main) await main();
