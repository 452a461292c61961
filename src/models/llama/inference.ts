/**
 * The inference graphs of a Llama-family model with a KV cache: **prefill** (no past) and **decode**
 * (with past keys/values). Batch, sequence and past lengths are symbolic, so one session per kind serves
 * every request. A decode step never needs a zero-length past (zero-sized tensors fail on WebGPU): run the
 * prefill graph first, then decode with its `present.*` outputs as `past.*` inputs.
 *
 * Inputs: `input_ids` int64 `[batch, seq]`, `position_ids` int64 `[batch, seq]`, `attention_mask` int64
 * `[batch, past + seq]` (1 = attend, 0 = padding), and for decode `past.N.key` / `past.N.value` float32
 * `[batch, kvHeads, past, headDim]`; with LoRA sites also `<site>.lora_A`, `<site>.lora_B`,
 * `<site>.lora_scale` (see {@linkcode loraInputAdapter}). Outputs: `logits` float32 `[batch, seq, vocab]`
 * (or `[batch, 1, vocab]` with `logits: "last"`) and `present.N.key` / `present.N.value`.
 *
 * @module
 */

import { GraphBuilder } from "../../onnx/builder.ts";
import type { Model } from "../../onnx/types.ts";
import type { LlamaConfig } from "../config.ts";
import { type KvPair, llamaForward, type LlamaWeights } from "./forward.ts";
import { loraInputAdapter } from "../lora_inputs.ts";
import type { AdapterHook } from "../sites.ts";

/** Which inference graph to build. */
export type LlamaGraphKind = "prefill" | "decode";

/** Options for {@linkcode buildLlamaInferenceGraph}. */
export interface LlamaInferenceGraphOptions {
  /** `prefill` (no past inputs) or `decode` (past inputs). */
  kind: LlamaGraphKind;
  /**
   * Logits for every position (`all`) or only the last (`last`, all that sampling needs).
   * @default {"last"}
   */
  logits?: "all" | "last";
  /** Sites (PEFT module paths) that take LoRA tensors as graph inputs. */
  loraSites?: readonly string[];
  /** A custom adapter hook (exclusive with `loraSites`). */
  adapter?: AdapterHook;
}

/** The graph names of one layer's cache tensors. */
export interface KvCacheNames {
  /** Input `past.N.key`. */
  pastKey: string;
  /** Input `past.N.value`. */
  pastValue: string;
  /** Output `present.N.key`. */
  key: string;
  /** Output `present.N.value`. */
  value: string;
}

/**
 * Checks the options every inference graph builder shares: the graph kind, and at most one way to attach
 * adapters.
 *
 * @param options The builder's options.
 * @throws {TypeError} On an unknown kind, or both an adapter hook and LoRA sites.
 */
export function checkInferenceGraphOptions(
  options: { kind: string; adapter?: unknown; loraSites?: readonly string[] },
): void {
  if (options.kind !== "prefill" && options.kind !== "decode") {
    throw new TypeError(`Unknown inference graph kind "${options.kind}": use prefill or decode`);
  }
  if (options.adapter && options.loraSites) {
    throw new TypeError("Cannot build the inference graph with both an adapter hook and LoRA sites");
  }
}

/**
 * The names of the past/present cache tensors of layer `layer`.
 *
 * @param layer Decoder block index.
 * @returns Input and output names.
 */
export function kvCacheNames(layer: number): KvCacheNames {
  return {
    pastKey: `past.${layer}.key`,
    pastValue: `past.${layer}.value`,
    key: `present.${layer}.key`,
    value: `present.${layer}.value`,
  };
}

/**
 * Builds a prefill or decode graph.
 *
 * @param model Model shape and Hugging Face-named float32 weights.
 * @param options Graph kind, logits positions, LoRA sites.
 * @returns The ONNX model (opset 18); its metadata records the kind and the config.
 * @throws {Error} When a weight is missing or misshapen, or a LoRA site is not in the model.
 * @example
 * ```ts ignore
 * const prefill = buildLlamaInferenceGraph({ config, weights }, { kind: "prefill" });
 * const decode = buildLlamaInferenceGraph({ config, weights }, { kind: "decode" });
 * ```
 */
export function buildLlamaInferenceGraph(
  model: { config: LlamaConfig; weights: LlamaWeights },
  options: LlamaInferenceGraphOptions,
): Model {
  const { config } = model;
  checkInferenceGraphOptions(options);
  const b = new GraphBuilder(`${config.architecture}_${options.kind}`);
  const inputIds = b.input("input_ids", "int64", ["batch", "seq"]);
  const positionIds = b.input("position_ids", "int64", ["batch", "seq"]);
  const attentionMask = b.input("attention_mask", "int64", ["batch", "total"]);
  let past: KvPair[] | undefined;
  if (options.kind === "decode") {
    past = [];
    for (let l = 0; l < config.numHiddenLayers; l++) {
      const names = kvCacheNames(l);
      const shape = ["batch", config.numKeyValueHeads, "past", config.headDim];
      past.push({
        key: b.input(names.pastKey, "float32", shape),
        value: b.input(names.pastValue, "float32", shape),
      });
    }
  }
  const lora = options.loraSites ? loraInputAdapter(options.loraSites) : undefined;
  const { logits, present } = llamaForward(b, model, { inputIds, positionIds, attentionMask, past }, {
    adapter: lora ?? options.adapter,
    logits: options.logits ?? "last",
    names: {
      logits: "logits",
      present: (l) => ({ key: kvCacheNames(l).key, value: kvCacheNames(l).value }),
    },
  });
  const unused = lora?.unused() ?? [];
  if (unused.length > 0) {
    throw new RangeError(
      `Cannot build the inference graph: LoRA site "${unused[0]}" is not a linear layer of this model`,
    );
  }
  b.output(logits);
  for (const pair of present) {
    b.output(pair.key);
    b.output(pair.value);
  }
  return b.toModel({
    metadata: { "weightlora.graph": options.kind, "weightlora.config": JSON.stringify(config) },
  });
}
