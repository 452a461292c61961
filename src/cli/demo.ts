/**
 * `deno task demo`: the main job in one command — get a small model, fine-tune a WeightLoRA adapter on the
 * example data set, and generate with and without it.
 *
 * The model is `--model` when given; otherwise stories260K (a 260K-parameter Llama trained on TinyStories):
 * from `../shared/models/stories260K/` beside the project when present, else downloaded from the Hugging
 * Face repository `karpathy/tinyllamas`, and converted once into `.cache/stories260K-hf`.
 *
 *     deno task demo
 *
 * @module
 */

import { convertLlama2c } from "../io/convert.ts";
import { downloadHubFiles, resolveModelSource } from "../io/hub.ts";
import { loadModelFolder, type ModelFolder } from "../io/model_folder.ts";
import { loadPeftAdapter, type PeftAdapter } from "../lora/peft.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { LlamaGenerator } from "../models/generate.ts";
import { loadJsonl } from "../train/data.ts";
import { train } from "../train/trainer.ts";
import { withTrainDefaults } from "../train/options.ts";
import { oneOf, positiveInt, runCli } from "./_args.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task demo`: the parser and `--help` both read them. */
export const DEMO_COMMAND = defineCommand({
  name: "demo",
  usage: ["[options]"],
  description:
    `Fine-tunes a WeightLoRA adapter (K = 5 of 35 sites, rank 4) on examples/demo.jsonl, then generates from
"Once upon a time, there was a dog named" with the base model and with the adapter.`,
  flags: [
    {
      name: "model",
      value: "M",
      defaultText: "stories260K",
      doc:
        "Model folder or hf:OWNER/REPO; stories260K is taken from ../shared/models/stories260K if present, " +
        "else downloaded from hf:karpathy/tinyllamas, and converted into .cache/stories260K-hf.",
    },
    { name: "data", value: "F", defaultText: "examples/demo.jsonl", doc: "Training data (JSONL)." },
    {
      name: "out",
      value: "DIR",
      defaultText: "runs/demo",
      doc:
        "Output folder (adapter, weightlora.json, train_log.jsonl); the defaults are in the project folder.",
    },
    { name: "steps", value: "N", default: 80, doc: "Training steps." },
    { name: "ep", value: "E", default: "auto", doc: "Execution provider: auto, wasm or webgpu." },
  ],
});

const ROOT = new URL("../../", import.meta.url);
const PROMPT = "Once upon a time, there was a dog named";

function path(url: URL): string {
  return decodeURIComponent(url.pathname);
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The stories260K model as a Hugging Face folder, converted once. */
async function stories260k(): Promise<string> {
  const folder = path(new URL(".cache/stories260K-hf", ROOT));
  if (await exists(`${folder}/config.json`)) return folder;
  const local = path(new URL("../shared/models/stories260K", ROOT));
  let files = { model: `${local}/stories260K.bin`, tokenizer: `${local}/tok512.bin` };
  if (await exists(files.model)) console.error(`demo: using stories260K from ${local}`);
  else {
    console.error("demo: downloading stories260K from hf:karpathy/tinyllamas");
    const paths = await downloadHubFiles("hf:karpathy/tinyllamas", [
      "stories260K/stories260K.bin",
      "stories260K/tok512.bin",
    ]);
    files = { model: paths["stories260K/stories260K.bin"], tokenizer: paths["stories260K/tok512.bin"] };
  }
  await Deno.mkdir(path(new URL(".cache", ROOT)), { recursive: true });
  await convertLlama2c({ ...files, out: folder });
  console.error(`demo: converted it to ${folder}`);
  return folder;
}

/** Greedy continuation of the demo prompt, with or without the adapter's sites as graph inputs. */
async function complete(
  model: ModelFolder,
  ep: ExecutionProviderChoice,
  adapter?: PeftAdapter,
): Promise<string> {
  const generator = await LlamaGenerator.create(model, {
    ep,
    loraSites: adapter ? [...adapter.sites.keys()] : [],
  });
  try {
    const [result] = await generator.generate([PROMPT], {
      maxTokens: 48,
      temperature: 0,
      adapter: adapter?.sites,
    });
    return result.text;
  } finally {
    await generator.release();
  }
}

async function main(): Promise<void> {
  const v = parseFlags(DEMO_COMMAND, Deno.args);
  if (v.help) {
    console.log(helpText(DEMO_COMMAND));
    return;
  }
  const ep = oneOf("ep", v.ep, ["auto", "wasm", "webgpu"] as const, "auto");
  const steps = positiveInt("steps", v.steps, 80);
  const out = v.out ?? path(new URL("runs/demo", ROOT));
  const dir = v.model ? await resolveModelSource(v.model) : await stories260k();
  const model = await loadModelFolder(dir, { id: v.model ?? "stories260K" });
  const data = await loadJsonl(v.data ?? path(new URL("examples/demo.jsonl", ROOT)), {
    tokenizer: model.tokenizer,
    seqLen: Math.min(128, model.config.maxPositionEmbeddings),
    chatTemplate: model.chatTemplate,
    // stories260K never learned EOS (llama2.c separates stories with BOS): do not train on it
    completionEos: v.model !== undefined,
  });
  const seqLen = Math.max(...data.examples.map((e) => e.inputIds.length));
  console.error(
    `demo: ${data.examples.length} training rows (${data.targets} target tokens), ${steps} steps`,
  );
  const summary = await train(
    { model, train: data },
    withTrainDefaults({
      k: 5,
      rank: 4,
      alpha: 8,
      steps,
      seqLen,
      lr: 3e-3,
      selectSteps: Math.max(1, Math.floor(steps / 8)),
      saveEvery: 0,
      ep,
      out,
    }),
    {
      onStep: (r, total) => {
        if (r.step % 10 === 0 || r.step === total) {
          console.error(
            `demo: step ${r.step}/${total} loss ${r.loss.toFixed(3)} (${r.phase}, ${r.active} adapters)`,
          );
        }
      },
      onNote: (m) => console.error(`demo: ${m}`),
    },
  );
  console.error(
    `demo: wrote the adapter to ${out} (${summary.selected_sites.length} sites: ${
      summary.selected_sites.join(", ")
    })`,
  );

  const adapter = await loadPeftAdapter(out, model.config);
  console.log(`Prompt: ${PROMPT}`);
  console.log(`Base model:   ...${await complete(model, ep)}`);
  console.log(`With adapter: ...${await complete(model, ep, adapter)}`);
}

if (import.meta.main) await runCli("demo", main);
