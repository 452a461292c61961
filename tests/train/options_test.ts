import assert from "node:assert/strict";
import {
  checkOptionValue,
  optionSpec,
  optionValueFromText,
  TRAIN_DEFAULTS,
  TRAIN_OPTION_SPECS,
  withTrainDefaults,
} from "../../src/train/options.ts";

Deno.test("defaults fill what is not set; selectSteps follows steps; undefined does not override", () => {
  const o = withTrainDefaults({ out: "x", steps: 40, rank: undefined, lr: 0.01 });
  assert.equal(o.selectSteps, 4);
  assert.equal(o.rank, TRAIN_DEFAULTS.rank);
  assert.equal(o.lr, 0.01);
  assert.equal(withTrainDefaults({ out: "x", steps: 5 }).selectSteps, 2, "at least 2: B = 0 at step 1");
  assert.equal(withTrainDefaults({ out: "x", selectSteps: 7 }).selectSteps, 7);
  // the module list is a copy
  withTrainDefaults({ out: "x" }).targetModules.pop();
  assert.equal(TRAIN_DEFAULTS.targetModules.length, 7);
});

Deno.test("every option's default passes its own check; names are unique in each front end", () => {
  for (const spec of TRAIN_OPTION_SPECS) {
    if (spec.default === undefined || spec.default === null) continue;
    const checked = checkOptionValue(spec, spec.default);
    assert.ok("value" in checked, `${spec.field}: default ${JSON.stringify(spec.default)} fails its check`);
  }
  for (const key of ["flag", "job", "field"] as const) {
    const names = TRAIN_OPTION_SPECS.map((s) => s[key]).filter((n) => n !== null);
    assert.equal(new Set(names).size, names.length, `duplicate ${key}`);
  }
  assert.equal(TRAIN_DEFAULTS.lrGates, 5);
  assert.equal(TRAIN_DEFAULTS.budget, null);
});

Deno.test("checkOptionValue and optionValueFromText read flags and JSON alike", () => {
  const select = optionSpec("selectSteps");
  assert.deepEqual(checkOptionValue(select, optionValueFromText(select, "all")), { value: "all" });
  assert.deepEqual(checkOptionValue(select, optionValueFromText(select, "12")), { value: 12 });
  assert.match(
    (checkOptionValue(select, optionValueFromText(select, "")) as { expected: string }).expected,
    /"all" or an integer in 1\.\.1000000/,
  );
  const lrGates = optionSpec("lrGates");
  assert.ok("expected" in checkOptionValue(lrGates, 2e4), "the CLI and jobs share the cap");
  const modules = optionSpec("targetModules");
  assert.deepEqual(checkOptionValue(modules, "q_proj,v_proj,q_proj"), { value: ["q_proj", "v_proj"] });
  assert.match((checkOptionValue(modules, "q_proj,qkv") as { expected: string }).expected, /unknown qkv/);
});
