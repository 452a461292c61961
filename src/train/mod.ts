/**
 * Fine-tuning: JSONL data sets and static-shape batches, the WeightLoRA / WeightLoRA+ / LoRA / RandLoRA
 * trainer with checkpoints and exact resume, learning-rate schedules, and loss evaluation.
 *
 * @example
 * ```ts ignore
 * import { loadJsonl, train, withTrainDefaults } from "./mod.ts";
 * import { loadModelFolder } from "../io/mod.ts";
 * const model = await loadModelFolder("models/stories260K");
 * const data = await loadJsonl("examples/demo.jsonl", { tokenizer: model.tokenizer, seqLen: 64 });
 * const summary = await train({ model, train: data }, withTrainDefaults({ out: "runs/demo", k: 5, rank: 4 }));
 * console.log(summary.selected_sites);
 * ```
 *
 * @module
 */

export * from "./data.ts";
export * from "./batches.ts";
export * from "./schedule.ts";
export * from "./options.ts";
export * from "./adapter_trainer.ts";
export * from "./trainer.ts";
export * from "./evaluate.ts";
