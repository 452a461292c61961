/**
 * Random sites: plain LoRA on K sites drawn at random from the seed — the WeightLoRA paper's "random
 * selection" baseline (not the published RandLoRA method, which trains full-rank updates from random bases;
 * `randlora` is still accepted as the method's old name).
 *
 * @module
 */

import { purposePrng } from "../../lora/adapter.ts";
import { TOP_K } from "./weightlora.ts";
import type { TrainingMethod } from "./method.ts";

/** LoRA on K random sites. */
export const RANDOM_SITES: TrainingMethod = {
  name: "random-sites",
  validate(options, sites) {
    TOP_K.validate(options, sites);
  },
  start: (options) => ({ phase: "train", k: options.k, growRound: 0 }),
  initialSites(sites, options) {
    // K random sites by seed (a seeded partial Fisher–Yates), gates frozen at 1
    const prng = purposePrng(options.seed, "randlora", 0); // the old name: the same seed keeps its sites
    const order = sites.map((_, i) => i);
    for (let i = 0; i < options.k; i++) {
      const j = i + (prng.nextUint32() % (order.length - i));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const chosen = new Set(order.slice(0, options.k));
    return sites.map((s, i) =>
      chosen.has(i) ? s : { ...s, active: false, gate: 0, a: new Float32Array(), b: new Float32Array() }
    );
  },
  gatesTrainable: () => false,
  gateUpdate: () => undefined,
  afterStep: (c) => Promise.resolve(c.state),
  kRequested: (options) => options.k,
};
