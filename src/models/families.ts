/**
 * Every model family the toolkit ships, registered: import this module (the generator, the serving variants
 * and the trainer do) before calling {@linkcode modelFamily}. A new family is a folder beside `llama/` whose
 * `mod.ts` registers its record, and one import line here.
 *
 * @module
 */

import "./llama/mod.ts";

export { modelFamilies, modelFamily } from "./family.ts";
