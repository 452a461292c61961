import assert from "node:assert/strict";
import { TRAIN_DEFAULTS, withTrainDefaults } from "../../src/train/options.ts";

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
