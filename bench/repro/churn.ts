/**
 * The churn of WeightLoRA's kept set under the authors' schedule (`--select-steps all`): short runs with the
 * curve's settings (`curve_plan.ts`: rank 4, alpha 8, batch 8, constant learning rate), one per variant and
 * seed, reading each step's kept-set change from `train_log.jsonl` (`kept_in`, `kept_out`, `kept_gates`) and
 * the training loss around it. Writes one small JSON (default `bench/results/churn_study.json`).
 *
 *     deno run -A bench/repro/churn.ts --variants base,margin=0.1,lr-gates=1,max-step=0.05 --steps 300
 *
 * A variant is `base` (the bounded authors' schedule as the curve first ran it: gate lr 5, uncapped steps) or
 * settings on top of it joined by `+`: `lr-gates=X` (`--lr-gates`), `max-step=S` (`--gate-max-step`), and
 * `margin=M` (a removed candidate, {@linkcode VariantOptions}: its runs are read back, not trained). A run's folder is kept: rerunning the same command trains only what is
 * missing and reads the rest from the logs again.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { loadPeftAdapter } from "../../src/lora/peft.ts";
import { train, type TrainOptions, type TrainSummary } from "../../src/train/trainer.ts";
import type { StepRecord } from "../../src/train/trainer.ts";
import { generateTasks, TASK_NAMES, type TaskName } from "../tasks/generate.ts";
import { ensureStories260k } from "../tasks/stories260k.ts";
import { allCurveMethods, CURVE_CONFIG } from "./curve_plan.ts";
import { curveTrainOptions } from "./curve_run.ts";
import { loadTaskData, measure, readLog } from "./run_one.ts";
import { machine, REPO_ROOT, resultsJson, writeAtomic } from "./runner.ts";

/** One kept-set change and the training loss around it. */
export interface ChurnEvent {
  /** The step whose projection changed the kept set (its loss was computed before the change). */
  step: number;
  /** Sites that entered. */
  entered: string[];
  /** Sites that left. */
  left: string[];
  /** Those sites' gates before the step and after its SGD step (before the projection). */
  gates: Record<string, [number, number]>;
  /** Mean training loss of the `window` steps up to and including `step`. */
  lossBefore: number;
  /** Mean training loss of the `window` steps after `step` (the first ones with the new set). */
  lossAfter: number;
  /** Largest training loss of those steps. */
  maxAfter: number;
}

/** One run's churn. */
export interface ChurnRun {
  variant: string;
  seed: number;
  /** Projections that changed the kept set (after the first projection). */
  keptChanges: number;
  events: ChurnEvent[];
  /** Steps whose loss exceeded twice the median of the 10 before, and whether the set changed in the 3 before. */
  spikes: { step: number; loss: number; median: number; afterChange: boolean }[];
  /** Eval loss of the final adapter (the eval split). */
  evalLoss: number;
  /** The final kept set. */
  finalSites: string[];
  /** Wall time of training and measuring, s. */
  wallS: number;
}

/**
 * A variant's trainer settings. `swapMargin` was the hysteresis of the first candidate fix (`--swap-margin`: a
 * gated-off site replaced a kept one only when its gate beat the weakest kept gate by a margin); it did not
 * reduce the churn and was removed after the study (commit b5df3e9 has it), so its runs are only read back.
 */
export type VariantOptions = Partial<TrainOptions> & { swapMargin?: number };

/** A variant's figures over its seeds. */
export interface ChurnVariant {
  /** Its trainer settings on top of the base. */
  options: VariantOptions;
  /** Kept-set changes per run. */
  meanChanges: number;
  /** Kept-set changes of each seed. */
  changes: number[];
  /** The first step any seed changed its kept set (null: none did). */
  firstChange: number | null;
  /** Sites that left the kept set, and those whose gate had gone below 0 in that one step. */
  left: number;
  leftBelowZero: number;
  /** The largest fall of a leaving gate in one step. */
  largestFall: number;
  /** Loss spikes, and those within 3 steps after a change. */
  spikes: number;
  spikesAfterChange: number;
  /** Mean eval loss of the final adapters. */
  meanEvalLoss: number;
}

/** The JSON this script writes. */
export interface ChurnStudy {
  date: string;
  command: string;
  machine: ReturnType<typeof machine>;
  settings: {
    task: TaskName;
    k: number;
    steps: number;
    lr: number;
    lrGates: number;
    rank: number;
    batchSize: number;
  };
  /** Training and measuring time of the runs, s (when they were trained, under that load). */
  computeS: number;
  byVariant: Record<string, ChurnVariant>;
  runs: ChurnRun[];
}

function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
}

/**
 * Reads the kept-set changes and loss spikes from a run's log.
 *
 * @param log The run's step records.
 * @param window Steps averaged before and after a change.
 * @returns Events and spikes.
 */
export function churnOfLog(
  log: readonly StepRecord[],
  window = 5,
): Pick<ChurnRun, "events" | "spikes" | "keptChanges"> {
  const byStep = new Map(log.map((r) => [r.step, r]));
  const losses = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => byStep.get(from + i)?.loss).filter((x): x is number =>
      x !== undefined
    );
  const events: ChurnEvent[] = log.filter((r) => r.kept_in || r.kept_out).map((r) => {
    const after = losses(r.step + 1, r.step + window);
    return {
      step: r.step,
      entered: r.kept_in ?? [],
      left: r.kept_out ?? [],
      gates: r.kept_gates ?? {},
      lossBefore: mean(losses(r.step - window + 1, r.step)),
      lossAfter: mean(after),
      maxAfter: after.length ? Math.max(...after) : NaN,
    };
  });
  const changeSteps = new Set(events.map((e) => e.step));
  const spikes: ChurnRun["spikes"] = [];
  for (const r of log) {
    const before = losses(r.step - 10, r.step - 1).sort((a, b) => a - b);
    if (before.length < 10) continue;
    const median = (before[4] + before[5]) / 2;
    if (r.loss > 2 * median) {
      const afterChange = [1, 2, 3].some((d) => changeSteps.has(r.step - d));
      spikes.push({ step: r.step, loss: r.loss, median, afterChange });
    }
  }
  return { keptChanges: events.length, events, spikes };
}

/**
 * A variant's trainer settings on top of the base.
 *
 * @param variant `base`, or `margin=M`, `lr-gates=X`, `max-step=S` joined by `+`.
 * @returns The settings.
 * @throws {Error} On an unknown setting or a value that is not a number.
 */
export function variantOptions(variant: string): VariantOptions {
  if (variant === "base") return {};
  const out: VariantOptions = {};
  for (const part of variant.split("+")) {
    const [key, value] = part.split("=");
    const x = Number(value);
    if (value === undefined || !Number.isFinite(x)) {
      throw new Error(`Invalid variant "${variant}": "${part}" needs a number`);
    }
    if (key === "margin") out.swapMargin = x;
    else if (key === "lr-gates") out.lrGates = x;
    else if (key === "max-step") out.gateMaxStep = x;
    else {throw new Error(
        `Invalid variant "${variant}": unknown setting "${key}" (margin, lr-gates, max-step)`,
      );}
  }
  return out;
}

/**
 * Sums a variant's runs.
 *
 * @param variant Its name.
 * @param runs Its runs (one per seed).
 * @returns The figures.
 */
export function summariseVariant(variant: string, runs: readonly ChurnRun[]): ChurnVariant {
  const leaving = runs.flatMap((r) => r.events.flatMap((e) => e.left.map((name) => e.gates[name])))
    .filter((g): g is [number, number] => g !== undefined);
  const firsts = runs.flatMap((r) => r.events.length ? [r.events[0].step] : []);
  return {
    options: variantOptions(variant),
    meanChanges: mean(runs.map((r) => r.keptChanges)),
    changes: runs.map((r) => r.keptChanges),
    firstChange: firsts.length ? Math.min(...firsts) : null,
    left: leaving.length,
    leftBelowZero: leaving.filter(([, after]) => after < 0).length,
    largestFall: leaving.reduce((m, [before, after]) => Math.max(m, before - after), 0),
    spikes: runs.reduce((s, r) => s + r.spikes.length, 0),
    spikesAfterChange: runs.reduce((s, r) => s + r.spikes.filter((x) => x.afterChange).length, 0),
    meanEvalLoss: mean(runs.map((r) => r.evalLoss)),
  };
}

function variantWords(variant: string, lrGates: number): string {
  const o = variantOptions(variant);
  const parts = [`gate lr ${o.lrGates ?? lrGates}`];
  parts.push(o.gateMaxStep ? `step capped at ${o.gateMaxStep}` : "uncapped");
  if (o.swapMargin) parts.push(`swap margin ${o.swapMargin}`);
  return parts.join(", ");
}

/**
 * The studies as one Markdown table: per task and variant, the kept-set changes, how the leaving gates fell,
 * the loss spikes and the eval loss.
 *
 * @param studies Churn studies (one per task).
 * @returns The table and a line on the settings.
 */
export function churnStudyMarkdown(studies: readonly ChurnStudy[]): string {
  const head = [
    "| task | variant | kept-set changes per run (seeds) | first change | leaving gates below 0 after one " +
    "step | largest one-step fall | loss spikes (after a change) | eval loss |",
    "| --- | --- | --- | ---: | --- | ---: | --- | ---: |",
  ];
  const lines = studies.flatMap((s) =>
    Object.entries(s.byVariant).map(([name, v]) =>
      `| ${s.settings.task} | ${variantWords(name, s.settings.lrGates)} | ${v.meanChanges.toFixed(1)} (${
        v.changes.join(", ")
      }) | ${v.firstChange ?? "—"} | ${v.left ? `${v.leftBelowZero} of ${v.left}` : "—"} | ${
        v.left ? v.largestFall.toFixed(2) : "—"
      } | ${v.spikes} (${v.spikesAfterChange}) | ${v.meanEvalLoss.toFixed(4)} |`
    )
  );
  const settings = studies.map((s) =>
    `${s.settings.task}: K = ${s.settings.k}, ${s.settings.steps} steps, lr ${s.settings.lr}, seeds ${
      [...new Set(s.runs.map((r) => r.seed))].join(", ")
    }`
  );
  return [
    ...head,
    ...lines,
    "",
    `Short runs of the authors' schedule with bounded gates (${
      settings.join("; ")
    }; \`bench/repro/churn.ts\`, ` +
    "`bench/results/churn_study*.json`). A loss spike is a step whose training loss is over twice the median " +
    "of the 10 before it.",
  ].join("\n");
}

/** Reads a run's log and summary from its folder (undefined when it has not finished). */
async function finished(dir: string): Promise<{ log: StepRecord[]; summary: TrainSummary } | undefined> {
  try {
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/weightlora.json`)) as TrainSummary;
    return { log: await readLog(`${dir}/train_log.jsonl`), summary };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      work: { type: "string", default: "out/churn" },
      task: { type: "string", default: "world" },
      k: { type: "string", default: "5" },
      variants: { type: "string", default: "base" },
      seeds: { type: "string", default: "0,1,2" },
      steps: { type: "string", default: "300" },
      lr: { type: "string", default: "0.01" },
      json: { type: "string", default: `${REPO_ROOT}/bench/results/churn_study.json` },
    },
  });
  const task = v.task as TaskName;
  if (!TASK_NAMES.includes(task)) throw new Error(`Invalid --task "${task}": choose from ${TASK_NAMES}`);
  const k = Number(v.k), steps = Number(v.steps), lr = Number(v.lr);
  const seeds = v.seeds!.split(",").map(Number);
  const variants = v.variants!.split(",");
  variants.forEach(variantOptions);
  const config = { ...CURVE_CONFIG, tasks: [task], ks: [k], budgets: [steps], seeds };
  const method = allCurveMethods(config).find((m) => m.id === `wl-all-k${k}`)!;
  const modelDir = await ensureStories260k(`${v.work}/model`);
  const model = await loadModelFolder(modelDir, { id: "stories260K" });
  await generateTasks(model, {
    out: `${v.work}/tasks`,
    tasks: [task],
    sizes: config.sizes,
    seqLen: config.seqLen,
    storyTokens: config.storyTokens,
    seed: config.dataSeed,
  });
  const data = await loadTaskData(`${v.work}/tasks`, task, {
    tokenizer: model.tokenizer,
    seqLen: config.seqLen,
  });
  const runs: ChurnRun[] = [];
  for (const seed of seeds) {
    for (const variant of variants) {
      const dir = `${v.work}/runs/${task}-k${k}/${variant}/seed${seed}`;
      // what training and measuring cost is cached; the rest is read from the log every time
      let cached: Pick<ChurnRun, "evalLoss" | "wallS"> | undefined;
      try {
        cached = JSON.parse(await Deno.readTextFile(`${dir}/churn.json`));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      let done = cached && await finished(dir);
      if (!done || !cached) {
        const t0 = performance.now();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        const { swapMargin, ...settings } = variantOptions(variant);
        if (swapMargin) {
          throw new Error(
            `Cannot train variant "${variant}" in ${dir}: --swap-margin was removed after the study (commit b5df3e9)`,
          );
        }
        const options: TrainOptions = {
          ...curveTrainOptions(
            { key: dir, task, method, lr, seed, stage: "seeds" },
            config,
            data.seqLen,
            dir,
          ),
          // the base is the bounded authors' schedule as the curve first ran it
          lrGates: config.lrGates,
          gateMaxStep: 0,
          ...settings,
        };
        await train({
          model: { id: model.id, config: model.config, weights: model.weights },
          train: data.train,
        }, options);
        const m = await measure(model, data, task, config, await loadPeftAdapter(dir, model.config));
        cached = { evalLoss: m.evalLoss, wallS: (performance.now() - t0) / 1000 };
        await writeAtomic(`${dir}/churn.json`, JSON.stringify(cached) + "\n");
        done = (await finished(dir))!;
      }
      const run: ChurnRun = {
        variant,
        seed,
        ...churnOfLog(done.log),
        evalLoss: cached.evalLoss,
        finalSites: done.summary.selected_sites,
        wallS: cached.wallS,
      };
      if (run.keptChanges !== done.summary.kept_changes) {
        throw new Error(
          `Run ${dir}: the log has ${run.keptChanges} changes, the summary ${done.summary.kept_changes}`,
        );
      }
      runs.push(run);
      console.error(
        `churn: ${variant} seed ${seed}: ${run.keptChanges} changes at ${
          run.events.map((e) => e.step).join(",")
        }; spikes ${run.spikes.map((s) => `${s.step}${s.afterChange ? "*" : ""}`).join(",")}; eval ${
          run.evalLoss.toFixed(4)
        }`,
      );
    }
  }
  const study: ChurnStudy = {
    date: new Date().toISOString(),
    command: ["deno run -A bench/repro/churn.ts", ...Deno.args].join(" "),
    machine: machine(),
    settings: { task, k, steps, lr, lrGates: config.lrGates, rank: config.rank, batchSize: config.batchSize },
    computeS: runs.reduce((t, r) => t + r.wallS, 0),
    byVariant: Object.fromEntries(
      variants.map((name) => [name, summariseVariant(name, runs.filter((r) => r.variant === name))]),
    ),
    runs,
  };
  // one run per line, figures to 4 decimals: the file stays small
  const round = (_: string, x: unknown) =>
    typeof x === "number" && !Number.isInteger(x) ? Number(x.toFixed(4)) : x;
  await writeAtomic(v.json!, resultsJson(JSON.parse(JSON.stringify(study, round))));
  console.error(`churn: wrote ${v.json}`);
}
