/**
 * Two wasm threads, trained on: does the training step hang? Each run is a fresh process
 * (`WEIGHTLORA_WASM_THREADS=2`) that trains LoRA r 4 on all sites of stories260K (real weights, AdamW) for a
 * few steps (`trainStep` + `applyGradients`) and one `evalLoss`, on the batch shapes that hung
 * (8 × 32, 4 × 64, 2 × 128, 8 × 256). A process that prints no line for `--stall` seconds is counted as hung
 * and killed.
 *
 * `fixed` runs as the trainer does (onnxruntime's shared heap created at its full size,
 * `src/runtime/_wasm_heap.ts`); `growing` undoes that in the child (its `WebAssembly.Memory` puts the heap back
 * at 16 MiB), which is how every session ran before: the heap grows while the pool works, a pool thread dies
 * and `session.run` waits for it forever. Rounds alternate the two.
 *
 * Writes `bench/results/wasm_threads.{json,md}`.
 *
 *     deno run -A bench/wasm_threads_bench.ts --write [--rounds 20] [--growing-rounds 5] [--steps 3]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseLlama2cCheckpoint } from "../src/io/llama2c.ts";
import { initAdapter } from "../src/lora/adapter.ts";
import { listAdapterSites } from "../src/models/sites.ts";
import { AdapterTrainer } from "../src/train/adapter_trainer.ts";
import { makeBatch } from "../src/train/batches.ts";
import { ort } from "../src/runtime/ort.ts";
import { STORIES260K_DIR } from "./_models.ts";
import { markdownTable } from "./_table.ts";

const RESULTS = new URL("results/", import.meta.url);
const SHAPES: [number, number][] = [[8, 32], [4, 64], [2, 128], [8, 256]];
type Mode = "fixed" | "growing";

/** One child process's outcome. */
interface RunOutcome {
  mode: Mode;
  batch: number;
  seq: number;
  /** `ok`, `hung` (silent past the stall time), or `failed` (exit code ≠ 0). */
  status: "ok" | "hung" | "failed";
  /** Median step ms (train step + AdamW), when ok. */
  stepMs?: number;
  /** Threads onnxruntime ran with, when ok. */
  threads?: number;
  /** The last line the child printed. */
  last: string;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The child: trains `steps` steps at `batch × seq`, then evaluates once; prints progress and a JSON line. */
async function child(mode: Mode, batch: number, seq: number, steps: number): Promise<void> {
  if (mode === "growing") {
    // undo the full-size heap: onnxruntime's heap starts at 16 MiB and grows, as before the fix
    const native = WebAssembly.Memory;
    (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = class extends native {
      constructor(descriptor: WebAssembly.MemoryDescriptor) {
        super(
          descriptor.shared && descriptor.maximum === 65536 ? { ...descriptor, initial: 256 } : descriptor,
        );
      }
    };
  }
  const { config, weights } = parseLlama2cCheckpoint(
    await Deno.readFile(`${STORIES260K_DIR}stories260K.bin`),
  );
  const sites = initAdapter(listAdapterSites(config), { rank: 4, alpha: 8, rslora: false, seed: 1 });
  for (const s of sites) s.b = s.b.map((_, i) => ((i % 7) - 3) * 1e-3); // B ≠ 0: every gradient flows
  const trainer = await AdapterTrainer.create({
    model: { config, weights },
    sites,
    trainableGates: false,
    batchSize: batch,
    seqLen: seq,
    optimizer: { kind: "adamw", weightDecay: 0, maxGradNorm: 1 },
    ep: "wasm",
    gradientAccumulation: false,
  });
  const rows = Array.from({ length: batch }, (_, r) => {
    const ids = Array.from({ length: seq }, (_, t) => 3 + ((r * 131 + t * 17) % (config.vocabSize - 3)));
    return { inputIds: ids, labels: ids };
  });
  const data = makeBatch(rows, { batchSize: batch, seqLen: seq });
  console.log("ready");
  const stepMs: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await trainer.trainStep([data]);
    await trainer.applyGradients(1e-3);
    stepMs.push(performance.now() - t0);
    console.log(`step ${i}`);
  }
  const loss = await trainer.evalLoss([data]);
  await trainer.release();
  console.log(JSON.stringify({ threads: ort.env.wasm.numThreads, stepMs: median(stepMs), loss }));
}

/** Runs one child, killing it when it prints nothing for `stallSeconds`. */
async function runChild(mode: Mode, [batch, seq]: [number, number], steps: number, stallSeconds: number) {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      mode,
      String(batch),
      String(seq),
      String(steps),
    ],
    env: { WEIGHTLORA_WASM_THREADS: "2", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let last = "";
  let hung = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      hung = true;
      process.kill("SIGKILL");
    }, stallSeconds * 1000);
  };
  arm();
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of process.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) if (line.trim()) last = line.trim();
    arm();
  }
  const status = await process.status;
  clearTimeout(timer);
  const outcome: RunOutcome = {
    mode,
    batch,
    seq,
    status: hung ? "hung" : status.success ? "ok" : "failed",
    last,
  };
  if (outcome.status === "ok") {
    const result = JSON.parse(last);
    outcome.stepMs = result.stepMs;
    outcome.threads = result.threads;
  }
  return outcome;
}

async function atomicWrite(url: URL, text: string): Promise<void> {
  const tmp = `${url.pathname}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, url.pathname);
}

function report(outcomes: readonly RunOutcome[], meta: Record<string, unknown>): string {
  const rows = [];
  for (const [batch, seq] of SHAPES) {
    for (const mode of ["fixed", "growing"] as Mode[]) {
      const runs = outcomes.filter((o) => o.mode === mode && o.batch === batch && o.seq === seq);
      if (runs.length === 0) continue;
      const ok = runs.filter((o) => o.status === "ok");
      rows.push([
        `${batch} × ${seq}`,
        mode === "fixed" ? "full-size heap (trainer)" : "growing heap (before)",
        String(runs.length),
        String(ok.length),
        String(runs.filter((o) => o.status === "hung").length),
        String(runs.filter((o) => o.status === "failed").length),
        ok.length ? median(ok.map((o) => o.stepMs!)).toFixed(0) : "—",
      ]);
    }
  }
  return `${meta.date}. stories260K, LoRA r 4 on all 35 sites, AdamW, \`WEIGHTLORA_WASM_THREADS=2\`; each run a ` +
    `fresh process training ${meta.steps} steps and one evalLoss; hung = no output for ${meta.stallSeconds} s. ` +
    `Load average ${meta.loadStart} at the start, ${meta.loadEnd} at the end.\n\n` +
    markdownTable(["batch × seq", "heap", "runs", "finished", "hung", "failed", "step ms (median)"], rows) +
    "\n";
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      child: { type: "string" },
      rounds: { type: "string", default: "20" },
      "growing-rounds": { type: "string", default: "5" },
      steps: { type: "string", default: "3" },
      stall: { type: "string", default: "30" },
      write: { type: "boolean", default: false },
    },
  });
  if (values.child) {
    const [batch, seq, steps] = positionals.map(Number);
    return await child(values.child as Mode, batch, seq, steps);
  }
  const rounds = Number(values.rounds);
  const growingRounds = Number(values["growing-rounds"]);
  const steps = Number(values.steps);
  const stallSeconds = Number(values.stall);
  const meta = { date: new Date().toISOString(), steps, stallSeconds, loadStart: loadAverage(), loadEnd: "" };
  const outcomes: RunOutcome[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const shape of SHAPES) {
      const modes: Mode[] = round < growingRounds
        ? (round % 2 ? ["growing", "fixed"] : ["fixed", "growing"])
        : [
          "fixed",
        ];
      for (const mode of modes) {
        const outcome = await runChild(mode, shape, steps, stallSeconds);
        outcomes.push(outcome);
        console.log(
          `round ${round + 1} ${shape.join("×")} ${mode}: ${outcome.status} ${
            outcome.stepMs?.toFixed(0) ?? ""
          }`,
        );
      }
    }
  }
  meta.loadEnd = loadAverage();
  const md = report(outcomes, meta);
  console.log("\n" + md);
  if (values.write) {
    await atomicWrite(
      new URL("wasm_threads.json", RESULTS),
      JSON.stringify({ ...meta, outcomes }, null, 2) + "\n",
    );
    await atomicWrite(new URL("wasm_threads.md", RESULTS), md);
  }
}

if (import.meta.main) await main();
