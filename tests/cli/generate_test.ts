// The `deno task generate` CLI end to end on stories260K (converted from llama2.c's checkpoint with the io
// converter into a temp folder), plus flag parsing. The CLI lives in src/cli/generate.ts.

import assert from "node:assert/strict";
import { parseGenerateArgs } from "../../src/cli/generate.ts";
import { convertLlama2c } from "../../src/io/convert.ts";
import { encodeSafetensors } from "../../src/io/safetensors.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { LlamaGenerator } from "../../src/models/generate.ts";
import type { TensorData } from "../../src/onnx/types.ts";

const SHARED = new URL("../../../shared/models/stories260K/", import.meta.url);
const REPO = new URL("../../", import.meta.url);

/** The golden passage of SOURCE.md (its indented block after "Golden check"), joined into one line. */
async function goldenPassage(): Promise<string> {
  const source = await Deno.readTextFile(new URL("SOURCE.md", SHARED));
  const after = source.slice(source.indexOf("Golden check"));
  const lines = after.split("\n").filter((l) => l.startsWith("    "));
  return lines.map((l) => l.trim()).join(" ");
}

let converted: Promise<string> | undefined;
/** stories260K as a Hugging Face folder in a temp dir (converted once per test file). */
function stories260K(): Promise<string> {
  converted ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "stories260K_" });
    await convertLlama2c({
      model: new URL("stories260K.bin", SHARED).pathname,
      tokenizer: new URL("tok512.bin", SHARED).pathname,
      out: `${dir}/model`,
    });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return `${dir}/model`;
  })();
  return converted;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", "generate", ...args],
    cwd: REPO.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("deno task generate: greedy from BOS reproduces llama2.c's golden stories260K passage", async () => {
  const golden = await goldenPassage();
  assert.ok(golden.startsWith("Once upon a time") && golden.endsWith("too high."), golden);
  const model = await stories260K();
  const { code, stdout, stderr } = await cli([
    "--model",
    model,
    "--prompt",
    "",
    "--max-tokens",
    "64",
    "--temperature",
    "0",
    "--ep",
    "wasm",
  ]);
  assert.equal(code, 0, stderr);
  assert.ok(stdout.startsWith(golden), `stdout: ${JSON.stringify(stdout)}`);
  assert.match(stderr, /64 tokens \(length\)/);
});

Deno.test("deno task generate --json prints text, token ids and prompt ids", async () => {
  const model = await stories260K();
  const { code, stdout, stderr } = await cli([
    "--model",
    model,
    "--prompt",
    "Once upon a time",
    "--max-tokens",
    "12",
    "--temperature",
    "0.8",
    "--top-p",
    "0.9",
    "--top-k",
    "40",
    "--seed",
    "7",
    "--ep",
    "wasm",
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const json = JSON.parse(stdout);
  assert.deepEqual(Object.keys(json).sort(), ["prompt_token_ids", "text", "timing", "token_ids"]);
  const folder = await loadModelFolder(model);
  assert.deepEqual(json.prompt_token_ids, folder.tokenizer.encode("Once upon a time"));
  assert.equal(json.prompt_token_ids[0], 1);
  assert.equal(json.text, folder.tokenizer.decode(json.token_ids, { skipSpecialTokens: true }));
  assert.ok(json.token_ids.length >= 1 && json.token_ids.length <= 12);
  // the same seed gives the same text
  const again = await cli([
    "--model",
    model,
    "--prompt",
    "Once upon a time",
    "--max-tokens",
    "12",
    "--temperature",
    "0.8",
    "--top-p",
    "0.9",
    "--top-k",
    "40",
    "--seed",
    "7",
    "--ep",
    "wasm",
    "--json",
  ]);
  const strip = (text: string) => {
    const { timing: _, ...rest } = JSON.parse(text);
    return rest;
  };
  assert.deepEqual(strip(again.stdout), strip(stdout));
});

Deno.test("deno task generate --ignore-eos --json: exactly --max-tokens tokens and the decode loop's timing", async () => {
  const model = await stories260K();
  const { code, stdout, stderr } = await cli([
    "--model",
    model,
    "--max-tokens",
    "40",
    "--temperature",
    "0",
    "--ignore-eos",
    "--ep",
    "wasm",
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const json = JSON.parse(stdout);
  assert.equal(json.token_ids.length, 40);
  assert.match(stderr, /40 tokens \(length\)/);
  const t = json.timing;
  assert.deepEqual(Object.keys(t).sort(), [
    "decode_ms",
    "decode_tokens",
    "decode_tokens_per_s",
    "prefill_ms",
  ]);
  // the first token comes from the prefill, the other 39 from decode steps
  assert.equal(t.decode_tokens, 39);
  assert.ok(t.prefill_ms > 0 && t.decode_ms > 0, JSON.stringify(t));
  assert.ok(Math.abs(t.decode_tokens_per_s - 39 / (t.decode_ms / 1000)) < 1e-6, JSON.stringify(t));
  // the same greedy text as without the flag (stories260K emits no EOS in its first 40 tokens)
  const plain = await cli([
    "--model",
    model,
    "--max-tokens",
    "40",
    "--temperature",
    "0",
    "--ep",
    "wasm",
    "--json",
  ]);
  assert.deepEqual(JSON.parse(plain.stdout).token_ids, json.token_ids);
  // exactly N tokens must fit the context (512): the prompt (BOS) plus 512 does not
  const tooLong = await cli([
    "--model",
    model,
    "--max-tokens",
    "512",
    "--ignore-eos",
    "--ep",
    "wasm",
    "--json",
  ]);
  assert.equal(tooLong.code, 1);
  assert.match(
    tooLong.stderr,
    /Cannot generate exactly 512 tokens \(ignoreEos\).*1 tokens plus 512.*context of 512/,
  );
});

Deno.test("streamed pieces concatenate to the decoded text, byte-fallback tokens included", async () => {
  const folder = await loadModelFolder(await stories260K());
  const generator = await LlamaGenerator.create(folder, { ep: "wasm" });
  try {
    // a hot sampler wanders into byte-fallback tokens (ids 3..258) of the 512-token vocabulary
    const ids: number[] = [];
    let text = "";
    for await (
      const piece of generator.stream([""], { temperature: 3, seed: 5, maxTokens: 300, eosTokenIds: [] })
    ) {
      ids.push(piece.tokenId);
      text += piece.text;
    }
    assert.ok(ids.some((id) => id >= 3 && id <= 258), "the run must contain byte-fallback tokens");
    assert.equal(text, folder.tokenizer.decode(ids, { skipSpecialTokens: true }));
  } finally {
    await generator.release();
  }
});

function loraTensors(scaleB: number): TensorData[] {
  const f32 = (name: string, dims: number[], fill: (i: number) => number): TensorData => {
    const values = Float32Array.from({ length: dims[0] * dims[1] }, (_, i) => fill(i));
    return { name, dtype: "float32", dims, data: new Uint8Array(values.buffer) };
  };
  const tensors: TensorData[] = [];
  for (let l = 0; l < 5; l++) {
    const site = `base_model.model.model.layers.${l}.mlp.down_proj`;
    tensors.push(f32(`${site}.lora_A.weight`, [4, 172], (i) => Math.sin(i + l)));
    tensors.push(f32(`${site}.lora_B.weight`, [64, 4], (i) => scaleB * Math.cos(i * 3 + l)));
  }
  return tensors;
}

async function writeAdapter(tensors: TensorData[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "adapter_" });
  await Deno.writeTextFile(
    `${dir}/adapter_config.json`,
    JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["down_proj"] }),
  );
  await Deno.writeFile(`${dir}/adapter_model.safetensors`, encodeSafetensors(tensors));
  return dir;
}

Deno.test("deno task generate --adapter: a zero adapter keeps the text, a real one changes it, a bad one is named", async () => {
  const model = await stories260K();
  const zero = await writeAdapter(loraTensors(0));
  const real = await writeAdapter(loraTensors(0.5));
  const bad = loraTensors(1);
  bad[3] = { ...bad[3], dims: [60, 4], data: bad[3].data.subarray(0, 60 * 4 * 4) };
  const broken = await writeAdapter(bad);
  try {
    const base = ["--model", model, "--max-tokens", "20", "--temperature", "0", "--ep", "wasm"];
    const plain = await cli(base);
    const withZero = await cli([...base, "--adapter", zero]);
    const withReal = await cli([...base, "--adapter", real]);
    assert.equal(withZero.code, 0, withZero.stderr);
    assert.equal(withZero.stdout, plain.stdout);
    assert.match(withZero.stderr, /adapter .* on 5 sites/);
    assert.notEqual(withReal.stdout, plain.stdout);
    const failed = await cli([...base, "--adapter", broken]);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /tensor "base_model\.model\.model\.layers\.1\.mlp\.down_proj\.lora_B\.weight" has shape \[60, 4\], expected \[64, 4\]/,
    );
    assert.equal(failed.stdout, "");
  } finally {
    for (const dir of [zero, real, broken]) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task generate: clear errors for bad flags and a missing model; --help documents every flag", async () => {
  const unknown = await cli(["--model", "x", "--temprature", "0"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown option '--temprature'/);
  const missing = await cli(["--model", "/nonexistent/model", "--temperature", "0"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Cannot use model folder \/nonexistent\/model: it does not exist/);
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--model",
      "--adapter",
      "--prompt",
      "--max-tokens",
      "--temperature",
      "--top-p",
      "--top-k",
      "--seed",
      "--ep",
      "--json",
      "--ignore-eos",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), `--help must document ${flag}`);
  }
  assert.match(help.stdout, /Default: 256/);
});

Deno.test("flag parsing: defaults, values and range errors", () => {
  const parsed = parseGenerateArgs(["--model", "m"]);
  assert.notEqual(parsed, "help");
  if (parsed === "help") return;
  assert.deepEqual(parsed.generation, {
    maxTokens: 256,
    temperature: 1,
    topP: 1,
    topK: 0,
    seed: undefined,
    stop: [],
    ignoreEos: false,
  });
  assert.deepEqual([parsed.prompt, parsed.ep, parsed.json], ["", "auto", false]);
  const full = parseGenerateArgs([
    "--model",
    "m",
    "--prompt",
    "hi",
    "--max-tokens",
    "5",
    "--temperature",
    "0.5",
    "--top-p",
    "0.8",
    "--top-k",
    "3",
    "--seed",
    "9",
    "--stop",
    "a",
    "--stop",
    "b",
    "--ep",
    "webgpu",
    "--json",
    "--ignore-eos",
  ]);
  assert.notEqual(full, "help");
  if (full === "help") return;
  assert.deepEqual(full.generation, {
    maxTokens: 5,
    temperature: 0.5,
    topP: 0.8,
    topK: 3,
    seed: 9,
    stop: ["a", "b"],
    ignoreEos: true,
  });
  assert.deepEqual([full.prompt, full.ep, full.json], ["hi", "webgpu", true]);
  assert.equal(parseGenerateArgs(["-h"]), "help");
  assert.throws(() => parseGenerateArgs([]), /Missing --model/);
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--max-tokens", "0"]),
    /Invalid --max-tokens "0": expected a positive integer/,
  );
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--max-tokens", "2.5"]),
    /Invalid --max-tokens "2\.5"/,
  );
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--temperature=-1"]),
    /Invalid --temperature "-1": expected a number ≥ 0/,
  );
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--temperature", "hot"]),
    /Invalid --temperature "hot"/,
  );
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--top-p", "1.5"]),
    /Invalid --top-p "1\.5": expected a number in \(0, 1\]/,
  );
  assert.throws(() => parseGenerateArgs(["--model", "m", "--top-k=-2"]), /Invalid --top-k "-2"/);
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--seed", "x"]),
    /Invalid --seed "x": expected a non-negative integer/,
  );
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--ep", "cuda"]),
    /Invalid --ep "cuda": expected auto, wasm or webgpu/,
  );
  assert.throws(() => parseGenerateArgs(["--model", "m", "--stop", ""]), /Invalid --stop ""/);
  assert.throws(() => parseGenerateArgs(["--model"]), /argument missing|--model/);
  assert.throws(() => parseGenerateArgs(["--model", "m", "extra"]), /Unexpected argument 'extra'/);
});
