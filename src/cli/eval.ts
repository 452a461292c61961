/**
 * `deno task eval`: prints `{"loss", "tokens", "perplexity"}` for a model (optionally with a PEFT adapter)
 * on a JSONL data set, with the training loss definition (mean over every counted next-token target).
 *
 *     deno task eval --model DIR --adapter runs/demo --data eval.jsonl
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../io/model_folder.ts";
import { resolveModelSource } from "../io/hub.ts";
import { loadPeftAdapter } from "../lora/peft.ts";
import { loadJsonl } from "../train/data.ts";
import { evaluateLoss } from "../train/evaluate.ts";
import { numberFlag, oneOf, positiveInt, runCli, UsageError } from "./_args.ts";

const HELP = `Usage: deno task eval --model M --data F [options]

Prints one JSON line {"loss": <mean token loss>, "tokens": <count>, "perplexity": <exp(loss)>} to stdout,
using the same loss as training: the mean over every counted next-token target.

Options:
  --model M        Hugging Face model folder or hf:OWNER/REPO[@REV]. Required.
  --data F         JSONL rows ({"prompt","completion"}, {"text"}, {"messages"} or {"input_ids","labels"?}). Required.
  --adapter DIR    A PEFT LoRA adapter folder. Default: none (the base model).
  --no-completion-eos  Do not end {"prompt","completion"} rows with EOS (as the same flag of train).
  --batch-size B   Rows per batch. Default: 8.
  --seq-len L      Tokens per row (longer rows are truncated). Default: 256.
  --ep E           auto, wasm or webgpu. Default: auto.
  -h, --help       Show this help.`;

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      model: { type: "string" },
      data: { type: "string" },
      adapter: { type: "string" },
      "no-completion-eos": { type: "boolean" },
      "batch-size": { type: "string" },
      "seq-len": { type: "string" },
      ep: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  if (!v.model) throw new UsageError("--model is required");
  if (!v.data) throw new UsageError("--data is required");
  const batchSize = positiveInt("batch-size", v["batch-size"], 8);
  const seqLen =
    numberFlag("seq-len", v["seq-len"], (n) => Number.isInteger(n) && n >= 2, "an integer ≥ 2") ?? 256;
  const ep = oneOf("ep", v.ep, ["auto", "wasm", "webgpu"] as const, "auto");
  const model = await loadModelFolder(await resolveModelSource(v.model));
  const maxLen = Math.min(seqLen, model.config.maxPositionEmbeddings);
  const data = await loadJsonl(v.data, {
    tokenizer: model.tokenizer,
    seqLen: maxLen,
    chatTemplate: model.chatTemplate,
    completionEos: !v["no-completion-eos"],
  });
  const longest = Math.max(...data.examples.map((e) => e.inputIds.length));
  const adapter = v.adapter ? await loadPeftAdapter(v.adapter, model.config) : undefined;
  const result = await evaluateLoss(model, data, { batchSize, seqLen: Math.max(2, longest), adapter, ep });
  console.log(JSON.stringify(result));
}

if (import.meta.main) await runCli("eval", main);
