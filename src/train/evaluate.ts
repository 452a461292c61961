/**
 * {@linkcode evaluateLoss}: the mean next-token loss of a model (optionally with a PEFT adapter fed as graph
 * inputs) over a data set, with the same loss definition as training: the mean over every counted target.
 *
 * @module
 */

import { modelFamily } from "../models/families.ts";
import type { LlamaConfig } from "../models/config.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import { loraFeeds, loraInputAdapter } from "../models/lora_inputs.ts";
import type { PeftAdapter } from "../lora/peft.ts";
import { OnnxSession } from "../runtime/session.ts";
import { ort } from "../runtime/ort.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { makeBatch } from "./batches.ts";
import type { Dataset } from "./data.ts";

/** Options for {@linkcode evaluateLoss}. */
export interface EvaluateLossOptions {
  /** Rows per batch. */
  batchSize: number;
  /** Tokens per row (rows are already truncated to at most this). */
  seqLen: number;
  /** Adapter to apply. */
  adapter?: PeftAdapter;
  /** Execution provider. @default {"auto"} */
  ep?: ExecutionProviderChoice;
}

/** The result of {@linkcode evaluateLoss}. */
export interface EvaluationResult {
  /** Mean token loss. */
  loss: number;
  /** Counted target tokens. */
  tokens: number;
  /** exp(loss). */
  perplexity: number;
}

/**
 * Evaluates the mean token loss over a data set.
 *
 * @param model Config and weights.
 * @param data Rows to score.
 * @param options Batch shape, adapter and execution provider.
 * @returns Loss, counted tokens and perplexity.
 */
export async function evaluateLoss(
  model: { config: LlamaConfig; weights: LlamaWeights },
  data: Dataset,
  options: EvaluateLossOptions,
): Promise<EvaluationResult> {
  const sites = [...(options.adapter?.sites.keys() ?? [])];
  const graph = modelFamily(model.config).buildTrainingGraph(model, {
    batchSize: options.batchSize,
    seqLen: options.seqLen,
    adapter: sites.length ? loraInputAdapter(sites) : undefined,
  });
  const session = await OnnxSession.create(graph, { ep: options.ep ?? "auto" });
  try {
    const adapterFeeds = options.adapter ? loraFeeds(sites, options.adapter.sites) : {};
    const dims = [options.batchSize, options.seqLen];
    let sum = 0, tokens = 0;
    for (let i = 0; i < data.examples.length; i += options.batchSize) {
      const batch = makeBatch(data.examples.slice(i, i + options.batchSize), {
        batchSize: options.batchSize,
        seqLen: options.seqLen,
        padId: model.config.eosTokenIds[0] ?? 0,
      });
      if (batch.targets === 0) continue;
      const out = await session.run({
        ...adapterFeeds,
        input_ids: new ort.Tensor("int64", batch.inputIds, dims),
        labels: new ort.Tensor("int64", batch.labels, dims),
        attention_mask: new ort.Tensor("int64", batch.attentionMask, dims),
      }, ["loss"]);
      sum += batch.targets * ((await out.loss.getData()) as Float32Array)[0];
      tokens += batch.targets;
    }
    const loss = sum / tokens;
    return { loss, tokens, perplexity: Math.exp(loss) };
  } finally {
    await session.release();
  }
}
