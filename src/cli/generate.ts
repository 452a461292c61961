/**
 * `deno task generate`: generates text with a Llama-family model folder (or `hf:OWNER/REPO`), optionally
 * with a PEFT LoRA adapter. Only the generated continuation goes to stdout (streamed as it is generated,
 * or as one JSON object with `--json`); logs go to stderr.
 *
 *     deno task generate --model DIR --prompt "Once upon a time" --max-tokens 64 --temperature 0
 *
 * @module
 */

import { loadModelFolder } from "../io/model_folder.ts";
import { resolveModelSource } from "../io/hub.ts";
import { loadPeftAdapter } from "../lora/peft.ts";
import { type GenerateOptions, type GenerationStats, LlamaGenerator } from "../models/generate.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { numberFlag, UsageError } from "./_args.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

export { UsageError };

/** The flags of `deno task generate`: the parser and `--help` both read them. */
export const GENERATE_COMMAND = defineCommand({
  name: "generate",
  usage: ["--model M [options]"],
  description:
    "Generates a continuation of --prompt and prints only the generated text to stdout (logs and stats go to\n" +
    "stderr, each on its own line).",
  flags: [
    {
      name: "model",
      value: "M",
      required: true,
      doc: "Model: a Hugging Face model folder (config.json, model.safetensors, tokenizer.json), e.g. one " +
        "written by `deno task convert`, or hf:OWNER/REPO[@REVISION] (downloaded into the Hugging Face cache).",
    },
    {
      name: "adapter",
      value: "DIR",
      doc: "A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors), applied as graph " +
        "inputs (no merge).",
    },
    {
      name: "prompt",
      value: "TEXT",
      defaultText: '""',
      doc: 'The prompt; "" generates from the BOS token alone.',
    },
    { name: "max-tokens", value: "N", default: 256, doc: "Most tokens to generate (EOS ends earlier)." },
    {
      name: "ignore-eos",
      type: "boolean",
      doc:
        "Generate exactly --max-tokens tokens: EOS (and BOS) are generated and counted like any token and " +
        "do not stop (for benchmarks). The prompt plus --max-tokens must fit the model's context.",
    },
    { name: "temperature", value: "T", default: 1, doc: "Sampling temperature; 0 is greedy (argmax)." },
    {
      name: "top-p",
      value: "P",
      default: 1,
      doc: "Nucleus sampling: keep the most likely tokens up to mass P, in (0, 1]; 1 is off.",
    },
    { name: "top-k", value: "K", default: 0, doc: "Keep only the K most likely tokens; 0 is off." },
    {
      name: "seed",
      value: "S",
      defaultText: "random",
      doc: "Seed of the sampler's PRNG (a non-negative integer); same seed, same text.",
    },
    { name: "stop", value: "TEXT", multiple: true, doc: "Stop before this text (repeatable)." },
    {
      name: "ep",
      value: "E",
      default: "auto",
      doc: "Execution provider: auto (WebGPU on a hardware adapter, else wasm), wasm or webgpu.",
    },
    {
      name: "json",
      type: "boolean",
      doc: 'Print {"text", "token_ids", "prompt_token_ids", "timing"} as JSON instead of streaming text. ' +
        '"timing" measures the generation alone (no start-up, no model load): "prefill_ms" (the prompt\'s ' +
        'forward pass, sampling the first token), "decode_ms" (the decode loop), "decode_tokens" (tokens the ' +
        "decode loop computed: the generated tokens but the first, which the prefill gives) and " +
        '"decode_tokens_per_s" (null when there was no decode step).',
    },
  ],
  footer: "Environment: WEIGHTLORA_WASM_THREADS sets the number of wasm threads.",
});

const HELP = helpText(GENERATE_COMMAND);

/** Options parsed from the command line. */
export interface GenerateCliOptions {
  /** Model folder or `hf:` source. */
  model: string;
  /** PEFT adapter folder. */
  adapter?: string;
  /** Prompt text. */
  prompt: string;
  /** Execution provider. */
  ep: ExecutionProviderChoice;
  /** Print JSON. */
  json: boolean;
  /** Generation options. */
  generation: GenerateOptions;
}

/**
 * Parses the command line.
 *
 * @param args Arguments without the program name.
 * @returns The options, or `"help"` when help was asked for.
 * @throws {UsageError} On an unknown flag, a missing value, or a value out of range (naming flag and value).
 * @example
 * ```ts
 * import { parseGenerateArgs } from "./generate.ts";
 * const o = parseGenerateArgs(["--model", "m", "--temperature", "0"]);
 * console.assert(o !== "help" && o.generation.temperature === 0 && o.prompt === "");
 * ```
 */
export function parseGenerateArgs(args: string[]): GenerateCliOptions | "help" {
  const values = parseFlags(GENERATE_COMMAND, args);
  if (values.help) return "help";
  const model = values.model as string | undefined;
  if (model === undefined || model === "") {
    throw new UsageError("Missing --model (a model folder or hf:OWNER/REPO)");
  }
  const ep = values.ep ?? "auto";
  if (ep !== "auto" && ep !== "wasm" && ep !== "webgpu") {
    throw new UsageError(`Invalid --ep ${JSON.stringify(ep)}: expected auto, wasm or webgpu`);
  }
  const str = (name: keyof typeof values) => values[name] as string | undefined;
  const generation: GenerateOptions = {
    maxTokens: numberFlag(
      "max-tokens",
      str("max-tokens"),
      (n) => Number.isInteger(n) && n >= 1,
      "a positive integer",
    )!,
    temperature: numberFlag("temperature", str("temperature"), (n) => n >= 0, "a number ≥ 0")!,
    topP: numberFlag("top-p", str("top-p"), (n) => n > 0 && n <= 1, "a number in (0, 1]")!,
    topK: numberFlag("top-k", str("top-k"), (n) => Number.isInteger(n) && n >= 0, "an integer ≥ 0")!,
    seed: numberFlag("seed", str("seed"), (n) => Number.isSafeInteger(n) && n >= 0, "a non-negative integer"),
    stop: (values.stop as string[] | undefined) ?? [],
    ignoreEos: values["ignore-eos"] === true,
  };
  if (generation.stop!.some((s) => s === "")) {
    throw new UsageError('Invalid --stop "": stop strings must be non-empty');
  }
  return {
    model,
    adapter: values.adapter as string | undefined,
    prompt: (values.prompt as string | undefined) ?? "",
    ep,
    json: values.json === true,
    generation,
  };
}

/** Where {@linkcode runGenerate} writes. */
export interface GenerateCliIo {
  /** Generated text (stdout). */
  out: (text: string) => Promise<void>;
  /** Logs (stderr). */
  log: (line: string) => void;
}

/** The `"timing"` member of `--json` output: the generation alone, without start-up or model load. */
export interface GenerateTiming {
  /** The prompt's forward pass and the first sampled token, ms. */
  prefill_ms: number;
  /** The decode loop (every step: sampling, forward pass, text), ms. */
  decode_ms: number;
  /** Tokens computed by the decode loop: all generated tokens of the row but the first. */
  decode_tokens: number;
  /** `decode_tokens / decode_ms`, per second; null without decode steps. */
  decode_tokens_per_s: number | null;
}

/**
 * The `"timing"` of `--json` output from a generator's stats.
 *
 * @param stats The stats of the latest request (batch 1 for the CLI).
 * @returns Timing in the JSON's snake_case names.
 * @example
 * ```ts
 * import { generateTiming } from "./generate.ts";
 * const t = generateTiming({
 *   batch: 1, prefillTokens: 1, prefillMs: 2, decodeSteps: 10, decodeMs: 5, decodeRunMs: 4,
 * });
 * console.assert(t.decode_tokens === 10 && t.decode_tokens_per_s === 2000);
 * ```
 */
export function generateTiming(stats: GenerationStats): GenerateTiming {
  const tokens = stats.decodeSteps * stats.batch;
  return {
    prefill_ms: stats.prefillMs,
    decode_ms: stats.decodeMs,
    decode_tokens: tokens,
    decode_tokens_per_s: tokens > 0 && stats.decodeMs > 0 ? tokens / (stats.decodeMs / 1000) : null,
  };
}

/**
 * Loads the model (and adapter) and generates, streaming text to `io.out` or printing JSON.
 *
 * @param options Parsed options.
 * @param io Output and log sinks.
 * @returns Nothing; output went to `io`.
 * @throws {Error} When the model or adapter cannot be loaded, or generation fails.
 */
export async function runGenerate(options: GenerateCliOptions, io: GenerateCliIo): Promise<void> {
  const loadStart = performance.now();
  const dir = await resolveModelSource(options.model);
  const model = await loadModelFolder(dir);
  const adapter = options.adapter ? await loadPeftAdapter(options.adapter, model.config) : undefined;
  const generator = await LlamaGenerator.create(model, {
    ep: options.ep,
    loraSites: adapter ? [...adapter.sites.keys()] : undefined,
  });
  try {
    const c = model.config;
    io.log(
      `model ${model.id}: ${c.architecture}, ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}` +
        (adapter ? `; adapter ${adapter.source} on ${adapter.sites.size} sites` : "") +
        `; ${generator.ep}; loaded in ${((performance.now() - loadStart) / 1000).toFixed(2)} s`,
    );
    const generation = { ...options.generation, adapter: adapter?.sites };
    const promptIds = generator.promptIds(options.prompt);
    const tokenIds: number[] = [];
    let text = "";
    let finish = "length";
    for await (const piece of generator.stream([promptIds], generation)) {
      if (piece.finishReason !== "eos") tokenIds.push(piece.tokenId);
      if (piece.finishReason) finish = piece.finishReason;
      text += piece.text;
      if (!options.json && piece.text !== "") await io.out(piece.text);
    }
    const s = generator.stats!;
    if (options.json) {
      const timing = generateTiming(s);
      await io.out(JSON.stringify({ text, token_ids: tokenIds, prompt_token_ids: promptIds, timing }) + "\n");
    } else if (text !== "" && !text.endsWith("\n")) {
      // the stats that follow on stderr start on their own line, also when both streams share a file or terminal
      await io.out("\n");
    }
    const decodeRate = s.decodeSteps > 0 ? (s.decodeSteps / (s.decodeMs / 1000)).toFixed(0) : "-";
    io.log(
      `${tokenIds.length} tokens (${finish}); prompt ${promptIds.length} tokens in ${
        s.prefillMs.toFixed(1)
      } ms; ` +
        `decode ${decodeRate} tokens/s`,
    );
  } finally {
    await generator.release();
  }
}

/**
 * Runs the CLI.
 *
 * @param args Arguments without the program name.
 * @returns The exit status: 0 done, 1 failed, 2 bad command line.
 */
export async function main(args: string[]): Promise<number> {
  const encoder = new TextEncoder();
  const log = (line: string) => console.error(`generate: ${line}`);
  let options: GenerateCliOptions | "help";
  try {
    options = parseGenerateArgs(args);
  } catch (e) {
    console.error(`generate: ${(e as Error).message}\nRun with --help for the options.`);
    return 2;
  }
  if (options === "help") {
    console.log(HELP);
    return 0;
  }
  try {
    await runGenerate(options, {
      out: async (text) => {
        const bytes = encoder.encode(text);
        for (let written = 0; written < bytes.length;) {
          written += await Deno.stdout.write(bytes.subarray(written));
        }
      },
      log,
    });
    return 0;
  } catch (e) {
    const error = e as Error;
    if (error instanceof Deno.errors.NotCapable || /Requires (net|write) access/.test(error.message)) {
      log(
        `${error.message}\nhf: sources download into the Hugging Face cache, which needs network and write ` +
          "access: run `deno run --allow-read --allow-env --allow-net --allow-write src/cli/generate.ts …`, " +
          "or download once and pass the local model folder",
      );
    } else log(error.message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
