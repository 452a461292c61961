import assert from "node:assert/strict";
import { HyperparameterError, parseMethod, resolveMethod } from "../../src/jobs/hyperparameters.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import { STORIES260K_CONFIG } from "../_util/fixtures.ts";
import { listAdapterSites } from "../../src/models/sites.ts";
import { TRAIN_DEFAULTS } from "../../src/train/options.ts";

const STORIES260K: LlamaConfig = STORIES260K_CONFIG;
const facts = { candidates: listAdapterSites(STORIES260K), rows: 20, longestRow: 30 };

function rejects(fn: () => unknown, param: string, message: RegExp): void {
  assert.throws(fn, (e: HyperparameterError) => {
    assert.ok(e instanceof HyperparameterError);
    assert.equal(e.param, param);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("defaults are the training CLI's", () => {
  const { options, method } = resolveMethod(parseMethod(undefined), facts);
  assert.equal(options.method, "weightlora");
  assert.deepEqual(
    [options.k, options.rank, options.alpha, options.steps, options.batchSize, options.lr, options.lrGates],
    [5, 8, 16, 200, 8, 1e-3, 5],
  );
  assert.equal(options.selectSteps, 20);
  assert.equal(options.seqLen, 30, "shrunk to the longest row");
  assert.equal(options.saveEvery, 100);
  assert.equal(options.dropout, 0);
  const hp = (method.weightlora as { hyperparameters: Record<string, unknown> }).hyperparameters;
  assert.equal(hp.learning_rate, 1e-3);
  assert.equal(hp.n_epochs, null);
  assert.equal(hp.grow_every, undefined, "not a weightlora hyperparameter");
});

Deno.test("snake_case names map to options; auto means the default; n_epochs becomes steps", () => {
  const parsed = parseMethod({
    type: "lora",
    lora: {
      hyperparameters: {
        rank: 4,
        learning_rate: 0.01,
        batch_size: 3,
        n_epochs: 2,
        seed: "auto",
        dropout: 0.1,
      },
    },
  });
  const { options } = resolveMethod(parsed, facts);
  assert.equal(options.rank, 4);
  assert.equal(options.lr, 0.01);
  assert.equal(options.steps, Math.ceil(2 * 20 / 3));
  assert.equal(options.seed, 0);
  assert.equal(options.dropout, 0.1);
  const plus = resolveMethod(
    parseMethod({
      type: "weightlora-plus",
      "weightlora-plus": { hyperparameters: { grow_every: 3, target_modules: "q_proj,v_proj" } },
    }),
    facts,
  );
  assert.deepEqual(plus.options.targetModules, ["q_proj", "v_proj"]);
  assert.equal(plus.options.growEvery, 3);
  assert.equal(parseMethod({ type: "lora" }, 7).options.seed, 7);
});

Deno.test("bad methods and hyperparameters name the parameter", () => {
  rejects(
    () => parseMethod({ type: "supervised" }),
    "method.type",
    /expected one of weightlora, weightlora-plus, lora/,
  );
  rejects(() => parseMethod("lora"), "method", /expected an object/);
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { rnak: 4, foo: 1 } } }),
    "method.lora.hyperparameters.rnak",
    /Unknown hyperparameters "rnak", "foo"/,
  );
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { k: 4 } } }),
    "method.lora.hyperparameters.k",
    /"k" does not apply to method lora/,
  );
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { rank: 0 } } }),
    "method.lora.hyperparameters.rank",
    /Invalid hyperparameter rank 0: expected an integer in 1\.\.4096/,
  );
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { learning_rate: -1 } } }),
    "method.lora.hyperparameters.learning_rate",
    /learning_rate -1: expected a number in \(0, 100\]/,
  );
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { target_modules: ["q_proj", "attn"] } } }),
    "method.lora.hyperparameters.target_modules",
    /\["q_proj","attn"\]/,
  );
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { steps: 3, n_epochs: 1 } } }),
    "method.lora.hyperparameters.n_epochs",
    /not both/,
  );
  rejects(
    () => parseMethod({ type: "lora", weightlora: {} }),
    "method.weightlora",
    /unknown field "weightlora"/,
  );
  rejects(() => parseMethod({ type: "lora" }, 1.5), "seed", /seed 1.5/);
  rejects(
    () =>
      resolveMethod(parseMethod({ type: "weightlora", weightlora: { hyperparameters: { k: 36 } } }), facts),
    "method.weightlora.hyperparameters.k",
    /k 36: K must be an integer in 1\.\.35 \(the number of candidate sites\)/,
  );
  rejects(
    () =>
      resolveMethod(
        parseMethod({ type: "weightlora", weightlora: { hyperparameters: { steps: 4, select_steps: 4 } } }),
        facts,
      ),
    "method.weightlora.hyperparameters.select_steps",
    /select_steps 4 must be below steps 4/,
  );
  rejects(
    () =>
      resolveMethod(
        parseMethod({ type: "weightlora-plus", "weightlora-plus": { hyperparameters: { grow_rounds: 6 } } }),
        facts,
      ),
    "method.weightlora-plus.hyperparameters.grow_rounds",
    /grow_rounds 6/,
  );
});

Deno.test("completion_eos is a hyperparameter of every method, true by default as in the CLI", () => {
  const byDefault = resolveMethod(parseMethod({ type: "lora" }), facts);
  assert.equal(byDefault.options.completionEos, true);
  const hp = (m: Record<string, unknown>, type: string) =>
    (m[type] as { hyperparameters: Record<string, unknown> }).hyperparameters;
  assert.equal(hp(byDefault.method, "lora").completion_eos, true);
  const off = resolveMethod(
    parseMethod({ type: "weightlora", weightlora: { hyperparameters: { completion_eos: false } } }),
    facts,
  );
  assert.equal(off.options.completionEos, false);
  assert.equal(hp(off.method, "weightlora").completion_eos, false);
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { completion_eos: "no" } } }),
    "method.lora.hyperparameters.completion_eos",
    /Invalid hyperparameter completion_eos "no": expected true or false/,
  );
});

Deno.test("random-sites is the random baseline; randlora stays accepted as its alias", () => {
  for (const type of ["random-sites", "randlora"]) {
    const parsed = parseMethod({ type, [type]: { hyperparameters: { k: 3 } } });
    assert.equal(parsed.type, "random-sites");
    const { options, method } = resolveMethod(parsed, facts);
    assert.equal(options.method, "random-sites");
    assert.equal(options.k, 3);
    assert.equal(method.type, "random-sites");
  }
  rejects(() => parseMethod({ type: "randlora-x" }), "method.type", /expected one of .*random-sites/);
});

Deno.test("n_epochs cannot bypass the steps cap", () => {
  const parsed = parseMethod({
    type: "lora",
    lora: { hyperparameters: { n_epochs: 10_000, batch_size: 1 } },
  });
  rejects(
    () => resolveMethod(parsed, { ...facts, rows: 8_800 }),
    "method.lora.hyperparameters.n_epochs",
    /n_epochs 10000: with 8800 rows and 1 rows per step it makes 88000000 steps, over the limit of 1000000/,
  );
  assert.equal(resolveMethod(parsed, { ...facts, rows: 100 }).options.steps, 1_000_000);
});

Deno.test("selection hyperparameters: select_steps all, gate_warmup, gate_norm, budget, budget_score", () => {
  const all = resolveMethod(
    parseMethod({
      type: "weightlora",
      weightlora: {
        hyperparameters: { select_steps: "all", gate_warmup: 3, gate_norm: "params", steps: 10 },
      },
    }),
    facts,
  );
  assert.equal(all.options.selectSteps, "all");
  assert.equal(all.options.gateWarmup, 3);
  assert.equal(all.options.gateNorm, "params");
  const hp = (all.method.weightlora as { hyperparameters: Record<string, unknown> }).hyperparameters;
  assert.equal(hp.select_steps, "all");
  assert.equal(hp.budget, null);
  const budget = resolveMethod(
    parseMethod({ type: "weightlora", weightlora: { hyperparameters: { budget: 5000, rank: 4 } } }),
    facts,
  );
  assert.equal(budget.options.budget, 5000);
  assert.equal(
    budget.options.budgetScore,
    "gradient",
    "the budget is filled by the gates' movement by default",
  );
  const taylor = resolveMethod(
    parseMethod({
      type: "weightlora",
      weightlora: { hyperparameters: { budget: 5000, budget_score: "taylor", rank: 4 } },
    }),
    facts,
  );
  assert.equal(taylor.options.budgetScore, "taylor");
  assert.equal(all.options.gateBound, "simplex", "the authors' schedule bounds its gates by default");
  const free = resolveMethod(
    parseMethod({
      type: "weightlora",
      weightlora: { hyperparameters: { select_steps: "all", gate_bound: "none", steps: 10 } },
    }),
    facts,
  );
  assert.equal(free.options.gateBound, "none");
  assert.equal(all.options.gateMaxStep, TRAIN_DEFAULTS.gateMaxStep, "the gate step is capped by default");
  assert.ok(all.options.gateMaxStep > 0);
  const uncapped = resolveMethod(
    parseMethod({
      type: "weightlora",
      weightlora: { hyperparameters: { select_steps: "all", gate_max_step: 0, steps: 10 } },
    }),
    facts,
  );
  assert.equal(uncapped.options.gateMaxStep, 0);
  assert.equal(
    (uncapped.method.weightlora as { hyperparameters: Record<string, unknown> }).hyperparameters
      .gate_max_step,
    0,
  );
  rejects(
    () =>
      parseMethod({
        type: "weightlora",
        weightlora: { hyperparameters: { select_steps: "all", gate_max_step: -1 } },
      }),
    "method.weightlora.hyperparameters.gate_max_step",
    /gate_max_step -1: expected a number in \[0, 10000\]/,
  );
  rejects(
    () =>
      parseMethod({
        type: "weightlora",
        weightlora: { hyperparameters: { budget: 5000, budget_score: "size" } },
      }),
    "method.weightlora.hyperparameters.budget_score",
    /gradient, taylor, gate/,
  );
  // a short run's default schedule still selects (B = 0 at step 1)
  const short = resolveMethod(
    parseMethod({ type: "weightlora", weightlora: { hyperparameters: { steps: 5 } } }),
    facts,
  );
  assert.equal(short.options.selectSteps, 2);
  rejects(
    () =>
      resolveMethod(
        parseMethod({ type: "weightlora", weightlora: { hyperparameters: { steps: 5, select_steps: 1 } } }),
        facts,
      ),
    "method.weightlora.hyperparameters.select_steps",
    /every gate gradient is 0 at step 1.*select_steps ≥ 2/,
  );
  rejects(
    () =>
      resolveMethod(
        parseMethod({
          type: "weightlora",
          weightlora: { hyperparameters: { steps: 10, select_steps: 4, gate_warmup: 4 } },
        }),
        facts,
      ),
    "method.weightlora.hyperparameters.select_steps",
    /held at 1 for gate_warmup 4 steps.*select_steps ≥ 5/,
  );
  rejects(
    () => parseMethod({ type: "weightlora", weightlora: { hyperparameters: { k: 3, budget: 5000 } } }),
    "method.weightlora.hyperparameters.budget",
    /Give k or budget, not both/,
  );
  rejects(
    () =>
      resolveMethod(
        parseMethod({ type: "weightlora", weightlora: { hyperparameters: { budget: 100, rank: 4 } } }),
        facts,
      ),
    "method.weightlora.hyperparameters.budget",
    /budget 100: the smallest candidate adapter has 384 parameters at rank 4/,
  );
  rejects(
    () => parseMethod({ type: "weightlora", weightlora: { hyperparameters: { select_steps: "some" } } }),
    "method.weightlora.hyperparameters.select_steps",
    /"all" or an integer/,
  );
  rejects(
    () => parseMethod({ type: "lora", lora: { hyperparameters: { gate_norm: "params" } } }),
    "method.lora.hyperparameters.gate_norm",
    /does not apply to method lora/,
  );
  rejects(
    () =>
      resolveMethod(
        parseMethod({
          type: "weightlora-plus",
          "weightlora-plus": { hyperparameters: { steps: 20, grow_every: 10 } },
        }),
        facts,
      ),
    "method.weightlora-plus.hyperparameters.grow_every",
    /end at step 20, not before the run's last step \(steps 20\)/,
  );
});
