/**
 * `deno task repro --preset curve`: the step-budget curve of the WeightLoRA comparison on stories260K. Every
 * method trains once per task, rate and seed to the largest budget (constant learning rate) and is measured at
 * every budget from the trainer's snapshots; per budget, each method's rate is chosen by dev loss on the first
 * seed from a small grid around its 60-step choice (`bench/results/repro.json`). Writes
 * `bench/results/repro_curve.{json,md}`, `docs/repro_curve_loss_vs_params.svg` and `docs/repro_curve_sites.svg`.
 *
 *     deno task repro --preset curve                    # about an hour on 2 shared cores
 *     deno task repro --preset curve-smoke --work /tmp/c  # one task, one seed, budgets 8 and 16
 *
 * Runs are child processes (`curve_run.ts`) in `<work>/runs/`; rerunning the same command continues an
 * interrupted comparison. Whole methods come first: a method's other seeds run as soon as its sweep on every
 * task is done, before the next method's sweep.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { listAdapterSites } from "../../src/models/sites.ts";
import { generateTasks, TASK_NAMES, type TaskManifest, TASKS } from "../tasks/generate.ts";
import { ensureStories260k } from "../tasks/stories260k.ts";
import {
  allCurveMethods,
  centresFromRows,
  chooseLrPerBudget,
  CURVE_CONFIG,
  CURVE_SMOKE_CONFIG,
  type CurveConfig,
  curveMethods,
  type CurveRunSpec,
  curveSeedRuns,
  curveSettingsDiffer,
  curveSweepRuns,
  type LrCentres,
  lrGrid,
  validateCurveConfig,
} from "./curve_plan.ts";
import type { CurveJob, CurveRunResult } from "./curve_run.ts";
import {
  aggregateCurve,
  curveReportMarkdown,
  curveReportSections,
  fillMarkedSections,
  isMlpSite,
  otherRatesTable,
  readCurveClaims,
} from "./curve_summary.ts";
import { curveLossSvg, sitesHeatmapSvg } from "./curve_plot.ts";
import type { BaseSpec } from "./run_one.ts";
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

const CURVE_RUN = decodeURIComponent(new URL("./curve_run.ts", import.meta.url).pathname);

const HELP = `Usage: deno task repro --preset curve [options]

The step-budget curve: every method trained to the largest budget and measured at each budget (snapshots),
its learning rate chosen per budget on the dev split. Rerunning the same command continues.

  --preset P          curve | curve-smoke (1 task, 1 seed, K=3, budgets 8 and 16).
  --work DIR          Runs, tasks and the converted model. Default: out/repro-curve (smoke: out/repro-curve-smoke).
  --jobs N            Runs at a time, each in its own process on one wasm thread. Default: 2.
  --max-runs N        Stop after starting N runs in this invocation (rerun to continue).
  --tasks LIST        Subset of ${TASK_NAMES.join(",")}.
  --methods LIST      Method ids (default: ${CURVE_CONFIG.methods.join(",")}).
  --seeds LIST        Seeds; the first one is the learning-rate sweep's. Default: 0,1,2.
  --budgets LIST      Step budgets, increasing; the last is every run's length. Default: 60,150,300.
  --centres FILE      60-step results whose chosen rates centre the grids. Default: bench/results/repro.json.
  --json F            Default: bench/results/repro_curve.json (smoke: WORK/repro_curve.json).
  --markdown F        Default: bench/results/repro_curve.md (smoke: WORK/repro_curve.md).
  --plot F            Default: docs/repro_curve_loss_vs_params.svg (smoke: WORK/loss.svg).
  --sites-plot F      Default: docs/repro_curve_sites.svg (smoke: WORK/sites.svg).
  --doc F             Fill the marked regions (<!-- repro-curve:NAME -->) of this document with the tables.
                      Default: docs/results.md (smoke: none); "none" for none.
  -h, --help          Show this help.`;

interface CurveSchedule {
  work: string;
  jobs: number;
  maxRuns: number;
  centres: string;
  json: string;
  markdown: string;
  plot: string;
  sitesPlot: string;
  doc: string | null;
  command: string;
}

function list(text: string | undefined, flag: string): string[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error(`Invalid --${flag} "${text}": the list is empty`);
  return items;
}

function count(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`Invalid --${flag} value "${text}": expected a non-negative integer`);
  }
  return n;
}

function parseCurve(args: string[]): { config: CurveConfig; schedule: CurveSchedule } | undefined {
  const { values: v } = parseArgs({
    args,
    strict: true,
    options: {
      preset: { type: "string" },
      work: { type: "string" },
      jobs: { type: "string", default: "2" },
      "max-runs": { type: "string" },
      tasks: { type: "string" },
      methods: { type: "string" },
      seeds: { type: "string" },
      budgets: { type: "string" },
      centres: { type: "string" },
      json: { type: "string" },
      markdown: { type: "string" },
      plot: { type: "string" },
      "sites-plot": { type: "string" },
      doc: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    return undefined;
  }
  if (v.preset !== "curve" && v.preset !== "curve-smoke") {
    throw new Error(`Invalid --preset "${v.preset}": this parser takes curve or curve-smoke`);
  }
  const full = v.preset === "curve";
  const base = full ? CURVE_CONFIG : CURVE_SMOKE_CONFIG;
  const tasks = list(v.tasks, "tasks")?.map((t) => {
    if (!(TASK_NAMES as readonly string[]).includes(t)) {
      throw new Error(`Invalid --tasks value "${t}": choose from ${TASK_NAMES.join(", ")}`);
    }
    return t as CurveConfig["tasks"][number];
  });
  const config: CurveConfig = {
    ...structuredClone(base),
    tasks: tasks ?? base.tasks,
    methods: list(v.methods, "methods") ?? base.methods,
    seeds: list(v.seeds, "seeds")?.map((s) => count("seeds", s)) ?? base.seeds,
    budgets: list(v.budgets, "budgets")?.map((s) => count("budgets", s)) ?? base.budgets,
  };
  const work = v.work ?? (full ? "out/repro-curve" : "out/repro-curve-smoke");
  const jobs = count("jobs", v.jobs!);
  if (jobs < 1) throw new Error(`Invalid --jobs ${jobs}: at least one run must run at a time`);
  const inRepo = (path: string) => `${REPO_ROOT}/${path}`;
  return {
    config,
    schedule: {
      work,
      jobs,
      maxRuns: v["max-runs"] === undefined ? Infinity : count("max-runs", v["max-runs"]),
      centres: v.centres ?? inRepo("bench/results/repro.json"),
      json: v.json ?? (full ? inRepo("bench/results/repro_curve.json") : `${work}/repro_curve.json`),
      markdown: v.markdown ?? (full ? inRepo("bench/results/repro_curve.md") : `${work}/repro_curve.md`),
      plot: v.plot ?? (full ? inRepo("docs/repro_curve_loss_vs_params.svg") : `${work}/loss.svg`),
      sitesPlot: v["sites-plot"] ?? (full ? inRepo("docs/repro_curve_sites.svg") : `${work}/sites.svg`),
      doc: v.doc === "none" ? null : v.doc ?? (full ? inRepo("docs/results.md") : null),
      command: ["deno task repro", ...args].join(" "),
    },
  };
}

async function readCentres(path: string): Promise<LrCentres> {
  try {
    const json = JSON.parse(await Deno.readTextFile(path)) as {
      rows?: { task: string; methodId: string; lr: number | null }[];
    };
    return centresFromRows(json.rows ?? []);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { centres: {} };
    throw new Error(`Cannot read the 60-step results ${path}: ${(e as Error).message}`);
  }
}

function describe(result: CurveRunResult): string {
  const parts = result.budgets.map((b) =>
    `${b.step}: eval ${b.evalLoss.toFixed(4)}${
      b.accuracy === null ? "" : ` em ${(100 * b.accuracy).toFixed(0)}%`
    }`
  );
  return `${parts.join(", ")}${result.status === "diverged" ? " (diverged)" : ""}, ${
    result.wallS.toFixed(1)
  } s`;
}

/**
 * Runs the curve comparison from the command line (`--preset curve` or `curve-smoke`).
 *
 * @param args The command line.
 */
export async function curveMain(args: string[]): Promise<void> {
  const parsed = parseCurve(args);
  if (!parsed) return;
  const { config, schedule } = parsed;
  const started = performance.now();
  const loadStart = Deno.loadavg();
  await claimWorkFolder(schedule.work, config, curveSettingsDiffer);

  const modelDir = await ensureStories260k(`${schedule.work}/model`);
  const model = await loadModelFolder(modelDir, { id: "stories260K" });
  const sites = listAdapterSites(model.config);
  validateCurveConfig(config, sites.length);
  const centres = await readCentres(schedule.centres);
  const methods = curveMethods(config);
  const grids = Object.fromEntries(
    config.tasks.map((
      t,
    ) => [t, Object.fromEntries(methods.map((m) => [m.id, lrGrid(config, centres, t, m)]))]),
  );
  console.error(`repro curve: preparing tasks ${config.tasks.join(", ")} in ${schedule.work}/tasks`);
  const manifest: TaskManifest = await generateTasks(model, {
    out: `${schedule.work}/tasks`,
    tasks: config.tasks,
    sizes: config.sizes,
    seqLen: config.seqLen,
    storyTokens: config.storyTokens,
    seed: config.dataSeed,
  });

  const paths = { model: modelDir, tasks: `${schedule.work}/tasks` };
  const runner = new Runner<CurveRunSpec | BaseSpec, CurveRunResult>({
    script: CURVE_RUN,
    work: schedule.work,
    maxRuns: schedule.maxRuns,
    job: (spec, dir): CurveJob => ({ spec, config, paths: { ...paths, run: dir } }),
  });
  const onSignal = () => {
    console.error(
      "repro curve: stopping; running runs are killed and resume from their checkpoints next time",
    );
    runner.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, onSignal);

  const baseSpecs: BaseSpec[] = config.tasks.map((task) => ({ key: `${task}/base`, task, base: true }));
  const sweeps = curveSweepRuns(config, centres);
  const pending = new Map<string, number>();
  for (const s of sweeps) {
    pending.set(`${s.task}/${s.method.id}`, (pending.get(`${s.task}/${s.method.id}`) ?? 0) + 1);
  }
  console.error(
    `repro curve: ${methods.length} methods × ${config.tasks.length} tasks, budgets ${
      config.budgets.join(", ")
    }; ` +
      `${sweeps.length} sweep runs on seed ${config.seeds[0]}, then ${
        config.seeds.length - 1
      } more seeds at each ` +
      `chosen rate; ${schedule.jobs} at a time`,
  );
  const results: CurveRunResult[] = [];
  let incomplete = false;
  const queue: (CurveRunSpec | BaseSpec)[] = [...baseSpecs, ...sweeps];
  await pool(queue, schedule.jobs, async (spec) => {
    let result: CurveRunResult | undefined;
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
    console.error(`repro curve: [${results.length}] ${spec.key}: ${describe(result)}`);
    if ("base" in spec || spec.stage !== "sweep") return;
    const group = `${spec.task}/${spec.method.id}`;
    const left = pending.get(group)! - 1;
    pending.set(group, left);
    if (left > 0) return;
    const points = results
      .filter((r) => r.task === spec.task && r.methodId === spec.method.id && r.seed === config.seeds[0])
      .filter((r) => grids[spec.task][spec.method.id].includes(r.lr!))
      .map((r) => ({ lr: r.lr!, devLoss: Object.fromEntries(r.budgets.map((b) => [b.step, b.devLoss])) }));
    const chosen = chooseLrPerBudget(config.budgets, points);
    queue.unshift(...curveSeedRuns(config, spec.task, spec.method, chosen)); // whole methods first
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(signal, onSignal);
  const history = await recordInvocation(schedule.work, {
    wallS: (performance.now() - started) / 1000,
    runsStarted: runner.started,
    loadStart,
  });
  if (runner.stopping) {
    console.error(
      `repro curve: stopped after ${runner.finished} runs; run the same command again to continue`,
    );
    Deno.exit(130);
  }
  if (incomplete) {
    console.error(
      `repro curve: stopped after starting ${runner.started} runs (--max-runs); ${results.length} done; run the ` +
        `same command again to continue`,
    );
    return;
  }
  const planned = new Set(results.map((r) => r.key));
  const offPlan = offPlanRuns(schedule.work, config).filter((r) => !planned.has(r.key));
  await writeCurveReport({ config, schedule, grids, results, offPlan, history, manifest, sites });
}

/** Finished runs of the configured tasks and methods in the work folder that the plan does not name. */
function offPlanRuns(work: string, config: CurveConfig): CurveRunResult[] {
  const out: CurveRunResult[] = [];
  for (const task of config.tasks) {
    for (const id of config.methods) {
      let entries: Deno.DirEntry[] = [];
      try {
        entries = [...Deno.readDirSync(`${work}/runs/${task}/${id}`)];
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      for (const entry of entries) {
        const result = readResult<CurveRunResult>(`${work}/runs/${task}/${id}/${entry.name}`);
        if (result) out.push(result);
      }
    }
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** The learning-rate rule in words. */
function gridWords(config: CurveConfig): string {
  const lo = -config.gridBelow, hi = config.gridAbove;
  const steps = (n: number) =>
    n === 0 ? "its 60-step choice" : `${Math.abs(n)} ladder step(s) ${n < 0 ? "below" : "above"} it`;
  if (lo === hi) {
    return `one rate per method, ${steps(lo)} (the 60-step choice, \`bench/results/repro.json\`)`;
  }
  return `per budget, by dev loss on seed ${config.seeds[0]}, from the ladder rates between ${
    steps(lo)
  } and ` +
    `${steps(hi)} (the 60-step choice, \`bench/results/repro.json\`)`;
}

async function writeCurveReport(input: {
  config: CurveConfig;
  schedule: CurveSchedule;
  grids: Record<string, Record<string, number[]>>;
  results: CurveRunResult[];
  offPlan: CurveRunResult[];
  history: Awaited<ReturnType<typeof recordInvocation>>;
  manifest: TaskManifest;
  sites: ReturnType<typeof listAdapterSites>;
}): Promise<void> {
  const { config, schedule, grids, results, offPlan, history, manifest, sites } = input;
  const rows = aggregateCurve(config, grids, results);
  const claims = readCurveClaims(rows);
  const info = machine();
  const siteParams = sites.map((s) => ({
    name: s.name,
    label: `L${s.layer} ${s.module.replace("_proj", "")}`,
    parameters: config.rank * (s.inFeatures + s.outFeatures),
  }));
  const randomMlpShare = sites.filter((s) => isMlpSite(s.name)).length / sites.length;
  const json = {
    date: new Date().toISOString(),
    command: schedule.command,
    machine: info,
    schedule: { jobs: schedule.jobs, wasmThreadsPerRun: 1, work: schedule.work },
    wallS: history.reduce((s, h) => s + h.wallS, 0),
    computeS: results.reduce((s, r) => s + r.wallS, 0),
    invocations: history,
    config,
    methods: allCurveMethods(config).filter((m) => config.methods.includes(m.id)),
    grids,
    sites: siteParams,
    tasks: Object.fromEntries(config.tasks.map((t) => [t, { ...TASKS[t], files: manifest.files[t] }])),
    rows: rows.map(({ keptSets: _, ...r }) => r),
    keptSets: rows.filter((r) => r.keptSets.length).map((r) => ({
      task: r.task,
      methodId: r.methodId,
      budget: r.budget,
      sets: r.keptSets,
    })),
    claims,
    offPlanRuns: offPlan,
    runs: results.sort((a, b) => a.key.localeCompare(b.key)),
  };
  await writeAtomic(schedule.json, resultsJson(json));
  const steps = results.filter((r) => r.methodId !== "base").length * config.budgets.at(-1)!;
  const runLines = [
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB; ${info.os}; Deno ${info.deno}, ` +
    `onnxruntime-web ${info.onnxruntimeWeb} (${config.ep}, one thread per run, ${schedule.jobs} runs at a time). ` +
    `Wall time ${
      (json.wallS / 60).toFixed(1)
    } min over ${history.length} invocation(s); ${results.length} runs, ` +
    `${steps.toLocaleString("en-US")} training steps.`,
    "",
    `Settings: rank ${config.rank}, alpha ${config.alpha}, batch ${config.batchSize}, AdamW, constant learning ` +
    `rate (warmup ${config.warmupSteps}), gradient clipping 1; budgets ${
      config.budgets.join(", ")
    } steps from ` +
    `snapshots of one run; freeze-and-drop WeightLoRA selects over ${config.selectSteps} steps (gate lr ` +
    `${config.lrGates}); the warmup variant trains A/B for ${config.gateWarmup} steps with gates at 1 first; ` +
    `WeightLoRA+ doubles ranks and halves K every ${config.growEvery} steps, ${config.growRounds} times; seeds ` +
    `${config.seeds.join(", ")}; learning rate: ${gridWords(config)}. Tasks: ` +
    `${config.sizes.train} train / ${config.sizes.dev} dev / ${config.sizes.eval} eval rows.`,
  ];
  const header = [
    "# WeightLoRA step-budget curve on stories260K",
    "",
    `Command: \`${schedule.command}\` — ${json.date}`,
    "",
    ...runLines,
    "",
    "",
  ].join("\n");
  const other = otherRatesTable(offPlan, config.budgets);
  const report = curveReportMarkdown(config, rows, { randomMlpShare, sites }) +
    (other ? `\n### Other learning rates (runs outside the plan)\n\n${other}\n` : "");
  await writeAtomic(schedule.markdown, header + report + "\n");
  const titles = Object.fromEntries(config.tasks.map((t) => [t, t]));
  await writeAtomic(schedule.plot, curveLossSvg(rows, { budgets: config.budgets, titles }));
  await writeAtomic(
    schedule.sitesPlot,
    sitesHeatmapSvg(rows, { budget: config.budgets.at(-1)!, sites: siteParams }),
  );
  if (schedule.doc) {
    const sections = {
      ...curveReportSections(config, rows, { randomMlpShare, sites }),
      "other-rates": other,
      run: [`Command: \`${schedule.command}\` — ${json.date}`, "", ...runLines].join("\n"),
    };
    const filled = fillMarkedSections(await Deno.readTextFile(schedule.doc), sections);
    if (filled.missing.length) {
      console.error(
        `repro curve: ${schedule.doc} marks sections with no table: ${filled.missing.join(", ")}`,
      );
    }
    await writeAtomic(schedule.doc, filled.text);
  }
  console.log(report);
  console.error(
    `repro curve: wrote ${schedule.json}, ${schedule.markdown}, ${schedule.plot} and ${schedule.sitesPlot}`,
  );
}
