// The gate heatmap's data: frames from a finished job's summary or a running job's checkpoint, survivors,
// and the parameters saved against LoRA on every candidate site.

import assert from "node:assert/strict";
import { jobGates, siteAt } from "../../src/console/gates.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import { STORIES260K_CONFIG } from "../_util/fixtures.ts";

const CONFIG: LlamaConfig = STORIES260K_CONFIG;

const q = (l: number) => `model.layers.${l}.self_attn.q_proj`;
const v = (l: number) => `model.layers.${l}.self_attn.v_proj`;

Deno.test("jobGates: a finished job's frames, survivors and savings", () => {
  const after = Object.fromEntries([0, 1, 2, 3, 4].flatMap((l) => [[q(l), 0.1 * l], [v(l), -0.2 * l]]));
  const gates = jobGates({
    options: { targetModules: ["q_proj", "v_proj"], rank: 2, optimizer: "adamw" },
    result: {
      gates: { after_selection: after, final: { [v(4)]: -0.8, [q(3)]: 0.3 } },
      selected_sites: [v(4), q(3)],
      ranks: { [v(4)]: 2, [q(3)]: 2 },
    },
  }, { config: CONFIG })!;
  assert.equal(gates.source, "result");
  assert.deepEqual(gates.modules, ["q_proj", "v_proj"]);
  assert.equal(gates.layers, 5);
  assert.deepEqual(gates.frames.map((f) => f.label), ["after_selection", "final"]);
  assert.equal(gates.candidates.length, 10);
  assert.deepEqual(gates.survivors, [v(4), q(3)]);
  // q: 64 → 64, v: 64 → 32 (4 KV heads × 8)
  assert.equal(gates.allSitesParameters, 5 * 2 * (64 + 64) + 5 * 2 * (64 + 32));
  assert.equal(gates.keptParameters, 2 * (64 + 32) + 2 * (64 + 64));
  assert.equal(gates.optimizerBytesPerParameter, 8);
  assert.equal(siteAt(gates, { layer: 3, module: "q_proj" }), q(3));
  assert.equal(siteAt(gates, { layer: 3, module: "k_proj" }), undefined);
});

Deno.test("jobGates: a running job's checkpoint, and nothing before it", () => {
  const job = { options: { targetModules: ["q_proj"], rank: 4, optimizer: "sgd" }, result: null };
  assert.equal(jobGates(job, { config: CONFIG }), undefined);
  const state = {
    step: 4,
    sites: [0, 1, 2, 3, 4].map((l) => ({ name: q(l), rank: 4, gate: l / 4, active: l >= 3 })),
    summary: { gates: {} },
  };
  const gates = jobGates(job, {
    config: CONFIG,
    checkpoint: {
      step: 4,
      trainerState: new TextEncoder().encode(JSON.stringify(state)),
      trainingState: new Uint8Array(),
    },
  })!;
  assert.equal(gates.source, "checkpoint");
  assert.deepEqual(gates.frames.map((f) => f.label), ["step 4"]);
  assert.equal(gates.frames[0].gates[q(2)], 0.5);
  assert.deepEqual(gates.survivors, [q(3), q(4)]);
  assert.equal(gates.keptParameters, 2 * 4 * 128);
  assert.equal(gates.optimizerBytesPerParameter, 0, "SGD keeps no moments");
  const broken = jobGates(job, {
    config: CONFIG,
    checkpoint: { step: 1, trainerState: new TextEncoder().encode("{"), trainingState: new Uint8Array() },
  });
  assert.equal(broken, undefined);
});
