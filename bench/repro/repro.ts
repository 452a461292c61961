/**
 * `deno task repro`: reproduces the WeightLoRA paper's comparison (arXiv 2506.02724) on stories260K —
 * LoRA on all 35 sites, random sites (K; the family id is still randlora), WeightLoRA(K) for K ∈ {3, 5, 9, 17} and WeightLoRA+ (M = 2), same rank
 * and step budget, each method at its own best learning rate from a sweep on the first seed, then three
 * seeds — on three generated tasks (see `bench/tasks/generate.ts`). Writes the results as JSON, a Markdown
 * report (tables and the reading of the paper's three claims) and an SVG plot of eval loss against
 * trainable parameters.
 *
 *     deno task repro                          # the full comparison (about half an hour on 2 cores)
 *     deno task repro --preset smoke --work /tmp/repro-smoke     # what CI runs: 1 task, 1 seed, 6 steps
 *     deno task repro --preset curve           # the step-budget curve (60, 150, 300 steps): see curve.ts
 *
 * Every run is its own process (one wasm thread each, `--jobs` at a time) and leaves `result.json` in its
 * folder under `<work>/runs/`; a rerun of the same command skips finished runs and resumes an interrupted
 * one from its checkpoint, so the comparison can be stopped (Ctrl-C, a kill, `--max-runs`) and continued.
 * The same folder also takes more runs of the same settings (another learning rate, seed, K or task): only
 * the missing runs are made.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { listAdapterSites } from "../../src/models/sites.ts";
import { generateTasks, TASK_NAMES, type TaskManifest, TASKS } from "../tasks/generate.ts";
import { ensureStories260k } from "../tasks/stories260k.ts";
import {
  chooseLr,
  FULL_CONFIG,
  type MethodFamily,
  methodSpecs,
  type ReproConfig,
  runSettingsDiffer,
  type RunSpec,
  seedRuns,
  SMOKE_CONFIG,
  sweepRuns,
  validateConfig,
} from "./plan.ts";
import type { BaseSpec, RunJob, RunResult } from "./run_one.ts";
import { aggregate, type MethodRow, readClaims, reportMarkdown } from "./summary.ts";
import { lossVsParamsSvg } from "./plot.ts";
import {
  claimWorkFolder,
  machine,
  pool,
  readResult,
  recordInvocation,
  REPO_ROOT,
  resultsJson,
  Runner,
  writeAtomic,
} from "./runner.ts";
import { curveMain } from "./curve.ts";
import { curveMergeMain } from "./curve_merge.ts";

const ROOT = REPO_ROOT;
const RUN_ONE = decodeURIComponent(new URL("./run_one.ts", import.meta.url).pathname);

const HELP = `Usage: deno task repro [options]

Reproduces the WeightLoRA comparison on stories260K (../shared/models/stories260K/) and writes JSON, a
Markdown report and an SVG plot. Rerunning the same command continues an interrupted comparison.

  --preset P          full | smoke (1 task, 1 seed, 2 learning rates, 6 steps) | curve (the step-budget
                      curve: see \`deno task repro --preset curve --help\`) | curve-merge (reruns of the
                      curve read with it: see \`deno task repro --preset curve-merge --help\`). Default: full.
  --work DIR          Runs, tasks and the converted model. Default: out/repro (smoke: out/repro-smoke).
  --jobs N            Runs at a time, each in its own process on one wasm thread. Default: 2.
  --max-runs N        Stop after starting N runs in this invocation (rerun to continue).
  --tasks LIST        Subset of ${TASK_NAMES.join(",")}.
  --families LIST     Subset of lora,randlora,weightlora,weightlora-plus.
  --ks LIST           K values of random sites and WeightLoRA. Full: 3,5,9,17.
  --lrs LIST          Learning rates of the sweep. Full: 3e-4,1e-3,3e-3,1e-2,3e-2,1e-1.
  --seeds LIST        Seeds; the first one is the sweep's. Full: 0,1,2.
  --steps N           Optimizer steps per run. Full: 60.
  --ep E              wasm | webgpu. Default: wasm.
  --json F            Results JSON. Default: bench/results/repro.json (smoke: WORK/repro.json).
  --markdown F        Markdown report. Default: bench/results/repro.md (smoke: WORK/repro.md).
  --plot F            SVG plot. Default: docs/repro_loss_vs_params.svg (smoke: WORK/repro.svg).
  -h, --help          Show this help.`;

/** How the comparison is scheduled and where it writes (nothing here changes a result). */
interface Schedule {
  work: string;
  jobs: number;
  maxRuns: number;
  json: string;
  markdown: string;
  plot: string;
  command: string;
}

function list<T>(text: string | undefined, parse: (item: string) => T, flag: string): T[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error(`Invalid --${flag} "${text}": the list is empty`);
  return items.map(parse);
}

function positive(flag: string, integer: boolean) {
  return (item: string): number => {
    const n = Number(item);
    if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)) || (!integer && n === 0)) {
      throw new Error(
        `Invalid --${flag} value "${item}": expected a ${
          integer ? "non-negative integer" : "positive number"
        }`,
      );
    }
    return n;
  };
}

function oneOf<T extends string>(flag: string, allowed: readonly T[]) {
  return (item: string): T => {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new Error(`Invalid --${flag} value "${item}": choose from ${allowed.join(", ")}`);
    }
    return item as T;
  };
}

function parse(args: string[]): { config: ReproConfig; schedule: Schedule } | undefined {
  const { values: v } = parseArgs({
    args,
    strict: true,
    options: {
      preset: { type: "string", default: "full" },
      work: { type: "string" },
      jobs: { type: "string", default: "2" },
      "max-runs": { type: "string" },
      tasks: { type: "string" },
      families: { type: "string" },
      ks: { type: "string" },
      lrs: { type: "string" },
      seeds: { type: "string" },
      steps: { type: "string" },
      ep: { type: "string" },
      json: { type: "string" },
      markdown: { type: "string" },
      plot: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    return undefined;
  }
  const preset = oneOf("preset", ["full", "smoke"] as const)(v.preset!);
  const base = preset === "full" ? FULL_CONFIG : SMOKE_CONFIG;
  const families: MethodFamily[] = ["lora", "randlora", "weightlora", "weightlora-plus"];
  const config: ReproConfig = {
    ...structuredClone(base),
    tasks: list(v.tasks, oneOf("tasks", TASK_NAMES), "tasks") ?? base.tasks,
    families: list(v.families, oneOf("families", families), "families") ?? base.families,
    ks: list(v.ks, positive("ks", true), "ks") ?? base.ks,
    lrs: list(v.lrs, positive("lrs", false), "lrs") ?? base.lrs,
    seeds: list(v.seeds, positive("seeds", true), "seeds") ?? base.seeds,
    steps: v.steps === undefined ? base.steps : positive("steps", true)(v.steps),
    ep: v.ep === undefined ? base.ep : oneOf("ep", ["wasm", "webgpu"] as const)(v.ep),
  };
  const work = v.work ?? (preset === "full" ? "out/repro" : "out/repro-smoke");
  const jobs = positive("jobs", true)(v.jobs!);
  if (jobs < 1) throw new Error(`Invalid --jobs ${jobs}: at least one run must run at a time`);
  const inRepo = (path: string) => `${ROOT}/${path}`;
  return {
    config,
    schedule: {
      work,
      jobs,
      maxRuns: v["max-runs"] === undefined ? Infinity : positive("max-runs", true)(v["max-runs"]),
      json: v.json ?? (preset === "full" ? inRepo("bench/results/repro.json") : `${work}/repro.json`),
      markdown: v.markdown ?? (preset === "full" ? inRepo("bench/results/repro.md") : `${work}/repro.md`),
      plot: v.plot ?? (preset === "full" ? inRepo("docs/repro_loss_vs_params.svg") : `${work}/repro.svg`),
      command: ["deno task repro", ...args].join(" "),
    },
  };
}

function describe(result: RunResult): string {
  if (result.status === "diverged") return "diverged";
  const acc = result.accuracy === null ? "" : `, exact match ${(100 * result.accuracy).toFixed(1)}%`;
  return `dev ${result.devLoss!.toFixed(4)}, eval ${result.evalLoss!.toFixed(4)}${acc}, ${
    result.wallS.toFixed(1)
  } s`;
}

/** The preset named on the command line (`--preset P` or `--preset=P`), without checking other flags. */
function presetOf(args: string[]): string | undefined {
  const { values } = parseArgs({ args, strict: false, options: { preset: { type: "string" } } });
  return typeof values.preset === "string" ? values.preset : undefined;
}

async function main(): Promise<void> {
  if (["curve", "curve-smoke"].includes(presetOf(Deno.args) ?? "")) return await curveMain(Deno.args);
  if (presetOf(Deno.args) === "curve-merge") return await curveMergeMain(Deno.args);
  const parsed = parse(Deno.args);
  if (!parsed) return;
  const { config, schedule } = parsed;
  const started = performance.now();
  const loadStart = Deno.loadavg();
  await claimWorkFolder(schedule.work, config, runSettingsDiffer);

  const modelDir = await ensureStories260k(`${schedule.work}/model`);
  const model = await loadModelFolder(modelDir, { id: "stories260K" });
  validateConfig(config, listAdapterSites(model.config).length);
  console.error(`repro: preparing tasks ${config.tasks.join(", ")} in ${schedule.work}/tasks`);
  const manifest: TaskManifest = await generateTasks(model, {
    out: `${schedule.work}/tasks`,
    tasks: config.tasks,
    sizes: config.sizes,
    seqLen: config.seqLen,
    storyTokens: config.storyTokens,
    seed: config.dataSeed,
  });

  const paths = { model: modelDir, tasks: `${schedule.work}/tasks` };
  const runner = new Runner<RunSpec | BaseSpec, RunResult>({
    script: RUN_ONE,
    work: schedule.work,
    maxRuns: schedule.maxRuns,
    job: (spec, dir): RunJob => ({ spec, config, paths: { ...paths, run: dir } }),
  });
  const onSignal = () => {
    console.error("repro: stopping; running runs are killed and resume from their checkpoints next time");
    runner.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, onSignal);

  const methods = methodSpecs(config);
  const baseSpecs: BaseSpec[] = config.tasks.map((task) => ({ key: `${task}/base`, task, base: true }));
  const sweeps = sweepRuns(config);
  const total = baseSpecs.length + sweeps.length +
    sweeps.length / config.lrs.length * (config.seeds.length - 1);
  const results: RunResult[] = [];
  const pendingSweep = new Map<string, number>();
  for (const s of sweeps) {
    pendingSweep.set(`${s.task}/${s.method.id}`, (pendingSweep.get(`${s.task}/${s.method.id}`) ?? 0) + 1);
  }
  const alreadyDone = [...baseSpecs, ...sweeps].filter((s) => readResult<RunResult>(runner.runDir(s))).length;
  console.error(
    `repro: ${total} runs (${methods.length} methods × ${config.tasks.length} tasks × ${config.lrs.length} ` +
      `learning rates, then ${
        config.seeds.length - 1
      } more seeds, plus the base model), ${schedule.jobs} at a time`,
  );
  let incomplete = false;
  const queue: (RunSpec | BaseSpec)[] = [...baseSpecs, ...sweeps];
  await pool(queue, schedule.jobs, async (spec) => {
    let result: RunResult | undefined;
    try {
      result = await runner.run(spec);
    } catch (e) {
      runner.stop();
      throw e;
    }
    if (!result) {
      incomplete = true;
      return;
    }
    results.push(result);
    console.error(`repro: [${results.length}/${total}] ${spec.key}: ${describe(result)}`);
    if ("base" in spec || spec.stage !== "sweep") return;
    const group = `${spec.task}/${spec.method.id}`;
    const left = pendingSweep.get(group)! - 1;
    pendingSweep.set(group, left);
    if (left > 0) return;
    const points = results
      .filter((r) => r.task === spec.task && r.methodId === spec.method.id && r.seed === config.seeds[0])
      .map((r) => ({ lr: r.lr!, devLoss: r.devLoss }));
    const lr = chooseLr(points);
    queue.push(...seedRuns(config, spec.task, spec.method, lr));
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(signal, onSignal);
  const history = await recordInvocation(schedule.work, {
    wallS: (performance.now() - started) / 1000,
    runsStarted: runner.started,
    loadStart,
  });
  if (runner.stopping) {
    console.error(`repro: stopped after ${runner.finished} runs; run the same command again to continue`);
    Deno.exit(130);
  }
  if (incomplete) {
    console.error(
      `repro: stopped after starting ${runner.started} runs (--max-runs); ${results.length} of ${total} done ` +
        `(${alreadyDone} were done before); run the same command again to continue`,
    );
    return;
  }

  const rows: MethodRow[] = aggregate(config, results);
  const claims = readClaims(rows);
  const info = machine();
  const computeS = results.reduce((s, r) => s + r.wallS, 0);
  const json = {
    date: new Date().toISOString(),
    command: schedule.command,
    machine: info,
    schedule: { jobs: schedule.jobs, wasmThreadsPerRun: 1, work: schedule.work },
    wallS: history.reduce((s, h) => s + h.wallS, 0),
    computeS,
    invocations: history,
    config,
    tasks: Object.fromEntries(config.tasks.map((t) => [t, { ...TASKS[t], files: manifest.files[t] }])),
    rows,
    claims,
    runs: results.sort((a, b) => a.key.localeCompare(b.key)).map(compactRun),
  };
  await writeAtomic(schedule.json, resultsJson(json));
  const header = [
    "# WeightLoRA reproduction on stories260K",
    "",
    `Command: \`${schedule.command}\` — ${json.date}`,
    "",
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB; ${info.os}; Deno ${info.deno}, ` +
    `onnxruntime-web ${info.onnxruntimeWeb} (${config.ep}, one thread per run, ${schedule.jobs} runs at a time). ` +
    `Wall time ${
      (json.wallS / 60).toFixed(1)
    } min over ${history.length} invocation(s); ${results.length} runs.`,
    "",
    `Settings: rank ${config.rank}, alpha ${config.alpha}, ${config.steps} steps of ${config.batchSize} rows, AdamW, ` +
    `${config.lrSchedule} decay, gradient clipping 1; WeightLoRA selects over ${config.selectSteps} steps ` +
    `(gate lr ${config.lrGates}); WeightLoRA+ doubles ranks every ${config.growEvery} steps, ${config.growRounds} times; ` +
    `seeds ${config.seeds.join(", ")}; learning rate per method from ${
      config.lrs.join(", ")
    } by dev loss on seed ` +
    `${
      config.seeds[0]
    }. Tasks: ${config.sizes.train} train / ${config.sizes.dev} dev / ${config.sizes.eval} eval rows.`,
    "",
    "",
  ].join("\n");
  await writeAtomic(schedule.markdown, header + reportMarkdown(config, rows) + "\n");
  await writeAtomic(
    schedule.plot,
    lossVsParamsSvg(rows, {
      titles: Object.fromEntries(config.tasks.map((t) => [t, `${t}: ${TASKS[t].title.split(" (")[0]}`])),
    }),
  );
  console.log(reportMarkdown(config, rows));
  console.error(`repro: wrote ${schedule.json}, ${schedule.markdown} and ${schedule.plot}`);
}

/** A run for the results JSON: sizes as given, sites only when a method kept some, ranks only when grown. */
function compactRun(run: RunResult): Record<string, unknown> {
  const { ranks, selectedSites, ...rest } = run;
  const grown = Object.values(ranks).some((r) => r !== Object.values(ranks)[0]) ||
    (run.methodId === "weightlora-plus" && selectedSites.length > 0);
  return {
    ...rest,
    ...(run.methodId === "lora" || run.methodId === "base" ? {} : { selectedSites }),
    ...(grown ? { ranks } : {}),
  };
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`repro: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
