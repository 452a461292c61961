/**
 * What a training step of the authors' schedule (`--select-steps all`: every site's adapter in the graph for the
 * whole run) costs against freeze and drop once it has dropped to K sites, on the curve's world task and
 * settings. Runs alternate (freeze, all, freeze, all, …) in one process, so both see the same load; each run's
 * median step time is taken over the steps after selection. Writes `bench/results/all_step_cost.json`.
 *
 *     deno run -A bench/repro/all_step_cost.ts --rounds 3 --steps 40
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { train, type TrainOptions } from "../../src/train/trainer.ts";
import { generateTasks } from "../tasks/generate.ts";
import { ensureStories260k } from "../tasks/stories260k.ts";
import { allCurveMethods, CURVE_CONFIG } from "./curve_plan.ts";
import { curveTrainOptions } from "./curve_run.ts";
import { loadTaskData, median, readLog } from "./run_one.ts";
import { machine, REPO_ROOT, writeAtomic } from "./runner.ts";

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      work: { type: "string", default: "out/all-step-cost" },
      k: { type: "string", default: "5" },
      rounds: { type: "string", default: "3" },
      steps: { type: "string", default: "40" },
      json: { type: "string", default: `${REPO_ROOT}/bench/results/all_step_cost.json` },
    },
  });
  const k = Number(v.k), rounds = Number(v.rounds), steps = Number(v.steps);
  const config = { ...CURVE_CONFIG, tasks: ["world" as const], ks: [k], budgets: [steps] };
  const methods = allCurveMethods(config);
  const freeze = methods.find((m) => m.id === `wl-k${k}`)!;
  const all = methods.find((m) => m.id === `wl-all-k${k}`)!;
  const model = await loadModelFolder(await ensureStories260k(`${v.work}/model`), { id: "stories260K" });
  await generateTasks(model, {
    out: `${v.work}/tasks`,
    tasks: ["world"],
    sizes: config.sizes,
    seqLen: config.seqLen,
    storyTokens: config.storyTokens,
    seed: config.dataSeed,
  });
  const data = await loadTaskData(`${v.work}/tasks`, "world", {
    tokenizer: model.tokenizer,
    seqLen: config.seqLen,
  });
  const runs: { method: string; round: number; medianStepMs: number; steps: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const method of [freeze, all]) {
      const out = `${v.work}/runs/${method.id}-${round}`;
      await Deno.remove(out, { recursive: true }).catch(() => {});
      const spec = {
        key: out,
        task: "world" as const,
        method,
        lr: 1e-2,
        seed: round,
        stage: "seeds" as const,
      };
      const options: TrainOptions = { ...curveTrainOptions(spec, config, data.seqLen, out), saveEvery: 0 };
      await train({
        model: { id: model.id, config: model.config, weights: model.weights },
        train: data.train,
      }, options);
      const log = await readLog(`${out}/train_log.jsonl`);
      // after the selection (and the rebuild that follows it): the steady phase of each schedule
      const from = config.selectSteps + 2;
      const ms = log.filter((r) => r.step > from).map((r) =>
        1000 * (r.elapsed - log.find((x) => x.step === r.step - 1)!.elapsed)
      );
      runs.push({ method: method.id, round, medianStepMs: median(ms)!, steps: ms.length });
      console.error(`all-step-cost: ${method.id} round ${round}: ${median(ms)!.toFixed(1)} ms/step`);
    }
  }
  const ratios = Array.from({ length: rounds }, (_, r) => {
    const f = runs.find((x) => x.round === r && x.method === freeze.id)!;
    const a = runs.find((x) => x.round === r && x.method === all.id)!;
    return a.medianStepMs / f.medianStepMs;
  });
  const json = {
    date: new Date().toISOString(),
    command: ["deno run -A bench/repro/all_step_cost.ts", ...Deno.args].join(" "),
    machine: machine(),
    settings: {
      task: "world",
      k,
      steps,
      batchSize: config.batchSize,
      seqLen: data.seqLen,
      rank: config.rank,
    },
    methods: { freeze: freeze.id, all: all.id },
    ratios,
    medianRatio: median(ratios)!,
    runs,
  };
  await writeAtomic(v.json!, JSON.stringify(json, null, 2) + "\n");
  console.error(
    `all-step-cost: all / freeze ${median(ratios)!.toFixed(2)}× (rounds ${ratios.map((r) => r.toFixed(2))})`,
  );
}
