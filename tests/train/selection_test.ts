// WeightLoRA's selection on the real stories260K model: exactly K survivors on a short run, the authors'
// schedule (`selectSteps: "all"`) with gate warmup and normalisation, the parameter budget, and adapter
// snapshots along the run.

import assert from "node:assert/strict";
import { loadPeftAdapter } from "../../src/lora/peft.ts";
import { parseJsonl } from "../../src/train/data.ts";
import { train, type TrainOptions, type TrainSummary } from "../../src/train/trainer.ts";
import { withTrainDefaults } from "../../src/train/options.ts";
import { selectWithinBudget } from "../../src/lora/budget.ts";
import { dogRows, stories260k } from "./_stories.ts";

function options(out: string, overrides: Partial<TrainOptions>): TrainOptions {
  return withTrainDefaults({
    rank: 4,
    alpha: 8,
    seqLen: 24,
    batchSize: 8,
    lr: 3e-3,
    saveEvery: 0,
    seed: 1,
    ep: "wasm",
    out,
    ...overrides,
  });
}

async function summaryOf(out: string): Promise<TrainSummary> {
  return JSON.parse(await Deno.readTextFile(`${out}/weightlora.json`));
}

Deno.test("WeightLoRA selection keeps exactly what was asked for", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const data = parseJsonl(dogRows(16), "dogs.jsonl", { tokenizer: model.tokenizer, seqLen: 24 });
  const dirs: string[] = [];
  const run = async (overrides: Partial<TrainOptions>, snapshotSteps?: number[]) => {
    const out = await Deno.makeTempDir();
    dirs.push(out);
    const summary = await train({ model, train: data, eval: data }, options(out, overrides), {
      snapshotSteps,
    });
    assert.deepEqual(await summaryOf(out), JSON.parse(JSON.stringify(summary)));
    return { out, summary };
  };

  await t.step(
    "a 5-step run with K = 3 exports exactly 3 sites (the default schedule selects at step 2)",
    async () => {
      const { out, summary } = await run({ k: 3, steps: 5 });
      assert.equal(summary.select_steps, 2);
      assert.equal(summary.k_requested, 3);
      assert.equal(summary.k_kept, 3);
      assert.equal(summary.selected_sites.length, 3);
      assert.deepEqual(summary.phases.map((p) => p.activeSites), [35, 3]);
      // what the selection saw: every site's gate before the projection; the kept ones are its top 3
      const scores = summary.gates.selection_scores;
      assert.equal(Object.keys(scores).length, 35);
      const top = Object.entries(scores).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([name]) => name).sort();
      assert.deepEqual(top, [...summary.selected_sites].sort());
      assert.equal((await loadPeftAdapter(out, model.config)).sites.size, 3);
    },
  );

  await t.step("the authors' schedule trains and projects the gates every step, then exports K", async () => {
    const { out, summary } = await run(
      { k: 4, steps: 8, selectSteps: "all", gateWarmup: 2, gateNorm: "params" },
      [2, 5],
    );
    assert.equal(summary.select_steps, "all");
    assert.equal(summary.k_kept, 4);
    assert.equal(summary.phases.length, 1, "no freeze: one phase with every site in the graph");
    assert.equal(summary.phases[0].activeSites, 35);
    const gates = summary.gates.final;
    assert.deepEqual(
      Object.keys(gates).filter((name) => gates[name] !== 0),
      summary.selected_sites,
    );
    assert.equal((await loadPeftAdapter(out, model.config)).sites.size, 4);
    // snapshots: before the first projection (gates held at 1 by the warmup) every site; after, K
    const early = JSON.parse(await Deno.readTextFile(`${out}/snapshots/step-2/snapshot.json`));
    assert.equal(early.selected_sites.length, 35);
    assert.equal(typeof early.eval_loss, "number");
    const later = JSON.parse(await Deno.readTextFile(`${out}/snapshots/step-5/snapshot.json`));
    assert.equal(later.selected_sites.length, 4);
    assert.equal((await loadPeftAdapter(`${out}/snapshots/step-5`, model.config)).sites.size, 4);
  });

  await t.step(
    "the authors' schedule bounds the kept gates (≥ 0, totalling at most K); --gate-bound none does not",
    async () => {
      // a gate rate 40 times the default: unbounded, the kept gates grow far past K
      const { summary } = await run({ k: 3, steps: 12, selectSteps: "all", lrGates: 200 });
      assert.ok(Number.isFinite(summary.final_eval_loss), `eval loss ${summary.final_eval_loss}`);
      const kept = summary.selected_sites.map((name) => summary.gates.final[name]);
      assert.equal(kept.length, 3);
      assert.ok(kept.every((g) => g >= 0), `gates ${kept.join(", ")}`);
      assert.ok(kept.reduce((s, g) => s + g, 0) <= 3 + 1e-4, `gates ${kept.join(", ")}`);
      const free = await run({ k: 3, steps: 12, selectSteps: "all", lrGates: 200, gateBound: "none" });
      const total = free.summary.selected_sites.reduce((s, name) => s + free.summary.gates.final[name], 0);
      assert.ok(total > 3, `unbounded gates total ${total}`);
    },
  );

  await t.step(
    "the authors' schedule with the gate step capped (the default) churns its kept set far less",
    async () => {
      // A/B at lr 0.1 grow fast, and the gate gradient grows with them: at gate lr 5 uncapped, kept gates
      // overshoot through 0, drop out of the kept set and come back the next step
      const hot = { k: 3, steps: 30, selectSteps: "all" as const, lr: 0.1, lrSchedule: "constant" as const };
      const free = await run({ ...hot, gateMaxStep: 0 });
      const capped = await run(hot);
      // a lower gate learning rate only moves the threshold: uncapped at gate lr 1 the set still churns
      const slow = await run({ ...hot, gateMaxStep: 0, lrGates: 1 });
      assert.equal(capped.summary.kept_changes !== null, true);
      const changes = free.summary.kept_changes!;
      assert.ok(changes >= 5, `uncapped: ${changes} kept-set changes`);
      assert.ok(
        capped.summary.kept_changes! * 4 <= changes,
        `capped: ${capped.summary.kept_changes} kept-set changes, uncapped ${changes}`,
      );
      assert.ok(
        slow.summary.kept_changes! >= 5,
        `uncapped at gate lr 1: ${slow.summary.kept_changes} changes`,
      );
      // each change is in the log: who entered, who left, and their gates before and after the step
      const log = (await Deno.readTextFile(`${free.out}/train_log.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      const changed = log.filter((r) => r.kept_in);
      assert.equal(changed.length, changes);
      for (const r of changed) {
        assert.equal(r.kept_in.length, r.kept_out.length, `step ${r.step}: K stays ${hot.k}`);
        assert.deepEqual(Object.keys(r.kept_gates).sort(), [...r.kept_in, ...r.kept_out].sort());
      }
      // freeze and drop trains no gate after its selection: the cap does not apply, the count is there
      const freeze = await run({ k: 3, steps: 6 });
      assert.equal(typeof freeze.summary.kept_changes, "number");
    },
  );

  await t.step("a checkpoint resumes whatever the gate-step cap where the cap does not act", async () => {
    const resume = async (out: string, overrides: Partial<TrainOptions>) =>
      await train({ model, train: data, resume: `${out}/checkpoint` }, options(out, overrides));
    // freeze and drop: the cap is not used, so a checkpoint made with another cap (or before it) resumes
    const freeze = await run({ k: 3, steps: 4, saveEvery: 2 });
    assert.equal((await resume(freeze.out, { k: 3, steps: 4, gateMaxStep: 0 })).k_kept, 3);
    // the authors' schedule: another cap would change the run, so the checkpoint is refused
    const all = await run({ k: 3, steps: 4, saveEvery: 2, selectSteps: "all" });
    await assert.rejects(
      () => resume(all.out, { k: 3, steps: 4, selectSteps: "all", gateMaxStep: 0 }),
      /Cannot resume from .*: it was made with other options/,
    );
  });

  await t.step(
    "a parameter budget keeps adapters within it, best gate movement per parameter first",
    async () => {
      const budget = 3000; // stories260K at rank 4: 384 (k/v), 512 (q/o), 944 (gate/up/down) per site
      const { summary } = await run({ steps: 6, budget });
      assert.equal(summary.k_requested, null);
      assert.equal(summary.budget, budget);
      assert.equal(summary.budget_score, "gradient");
      assert.ok(summary.adapter_parameters <= budget, `${summary.adapter_parameters} > ${budget}`);
      assert.ok(summary.adapter_parameters > budget - 944, "the budget is filled up to the largest site");
      assert.equal(summary.k_kept, summary.selected_sites.length);
      // the kept set is the greedy choice by accumulated gate movement per parameter (frozen after selection)
      const names = Object.keys(summary.gates.selection_scores);
      const size = (name: string) => /mlp/.test(name) ? 944 : /[kv]_proj$/.test(name) ? 384 : 512;
      const movement = Float32Array.from(names, (n) => summary.gate_evidence[n].movement);
      const want = selectWithinBudget(movement, names.map(size), budget).map((i) => names[i]);
      assert.deepEqual([...summary.selected_sites].sort(), want.sort());
      // the first score, the gate's value, keeps a set within the same budget
      const byGate = await run({ steps: 6, budget, budgetScore: "gate" });
      assert.equal(byGate.summary.budget_score, "gate");
      assert.ok(byGate.summary.adapter_parameters <= budget);
    },
  );

  for (const dir of dirs) await Deno.remove(dir, { recursive: true });
});
