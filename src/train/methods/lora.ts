/**
 * LoRA on every candidate site: the baseline every other method is measured against. No gates.
 *
 * @module
 */

import type { TrainingMethod } from "./method.ts";

/** LoRA on all candidate sites. */
export const LORA: TrainingMethod = {
  name: "lora",
  validate() {},
  start: (_options, candidates) => ({ phase: "train", k: candidates, growRound: 0 }),
  initialSites: (sites) => sites,
  gatesTrainable: () => false,
  gateUpdate: () => undefined,
  afterStep: (c) => Promise.resolve(c.state),
  kRequested: () => null,
};
