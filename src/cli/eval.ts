/**
 * `deno task eval`: prints `{"loss", "tokens", "perplexity"}` for a model (optionally with a PEFT adapter)
 * on a JSONL data set, with the training loss definition (mean over every counted next-token target).
 *
 *     deno task eval --model DIR --adapter runs/demo --data eval.jsonl
 *
 * @module
 */

import { loadModelFolder } from "../io/model_folder.ts";
import { resolveModelSource } from "../io/hub.ts";
import { loadPeftAdapter } from "../lora/peft.ts";
import { loadJsonl } from "../train/data.ts";
import { evaluateLoss } from "../train/evaluate.ts";
import { readChatTemplateFile } from "../io/chat_template.ts";
import { numberFlag, oneOf, positiveInt, runCli } from "./_args.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task eval`: the parser and `--help` both read them. */
export const EVAL_COMMAND = defineCommand({
  name: "eval",
  usage: ["--model M --data F [options]"],
  description:
    `Prints one JSON line {"loss": <mean token loss>, "tokens": <count>, "perplexity": <exp(loss)>} to
stdout, using the same loss as training: the mean over every counted next-token target.`,
  flags: [
    { name: "model", value: "M", required: true, doc: "Hugging Face model folder or hf:OWNER/REPO[@REV]." },
    {
      name: "data",
      value: "F",
      required: true,
      doc: 'JSONL rows ({"prompt","completion"}, {"text"}, {"messages"} or {"input_ids","labels"?}).',
    },
    {
      name: "adapter",
      value: "DIR",
      defaultText: "none (the base model)",
      doc: "A PEFT LoRA adapter folder.",
    },
    {
      name: "no-completion-eos",
      type: "boolean",
      doc: 'Do not end {"prompt","completion"} rows with EOS (as the same flag of train).',
    },
    {
      name: "chat-template",
      value: "FILE",
      defaultText: "the model's, else the plain User:/Assistant: transcript",
      doc: 'A Jinja chat template for {"messages"} rows.',
    },
    { name: "batch-size", value: "B", default: 8, doc: "Rows per batch." },
    { name: "seq-len", value: "L", default: 256, doc: "Tokens per row (longer rows are truncated)." },
    { name: "ep", value: "E", default: "auto", doc: "Execution provider: auto, wasm or webgpu." },
  ],
});

async function main(): Promise<void> {
  const v = parseFlags(EVAL_COMMAND, Deno.args);
  if (v.help) {
    console.log(helpText(EVAL_COMMAND));
    return;
  }
  const batchSize = positiveInt("batch-size", v["batch-size"], 8);
  const seqLen = numberFlag("seq-len", v["seq-len"], (n) => Number.isInteger(n) && n >= 2, "an integer ≥ 2")!;
  const ep = oneOf("ep", v.ep, ["auto", "wasm", "webgpu"] as const, "auto");
  const model = await loadModelFolder(await resolveModelSource(v.model!));
  const maxLen = Math.min(seqLen, model.config.maxPositionEmbeddings);
  const data = await loadJsonl(v.data!, {
    tokenizer: model.tokenizer,
    seqLen: maxLen,
    chatTemplate: v["chat-template"] ? await readChatTemplateFile(v["chat-template"]) : model.chatTemplate,
    completionEos: !v["no-completion-eos"],
  });
  const longest = Math.max(...data.examples.map((e) => e.inputIds.length));
  const adapter = v.adapter ? await loadPeftAdapter(v.adapter, model.config) : undefined;
  const result = await evaluateLoss(model, data, { batchSize, seqLen: Math.max(2, longest), adapter, ep });
  console.log(JSON.stringify(result));
}

if (import.meta.main) await runCli("eval", main);
