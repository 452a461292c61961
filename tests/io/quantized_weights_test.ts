import assert from "node:assert/strict";
import type { QuantizationConfig } from "../../src/models/config.ts";
import type { TensorData } from "../../src/onnx/types.ts";
import { convertLlama2c } from "../../src/io/convert.ts";
import { f32ToF16, float32Values } from "../../src/io/half.ts";
import { llamaConfigToHf } from "../../src/io/hf_config.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { dequantizeNBits, quantizeNBits } from "../../src/io/quantize.ts";
import { dequantizeModelWeights, quantizeModelWeights } from "../../src/io/quantized_weights.ts";
import { writeSafetensors } from "../../src/io/safetensors.ts";
import {
  randomWeights,
  requireStories260k,
  stories,
  TINY_CONFIG,
  tinyTokenizerJson,
  withTempDir,
  writeJson,
} from "./_helpers.ts";

const INT4: QuantizationConfig = { bits: 4, blockSize: 16, symmetric: false };
const INT8: QuantizationConfig = { bits: 8, blockSize: 16, symmetric: true };

function tinyModel() {
  const weights = new Map(randomWeights(TINY_CONFIG, 3).map((t) => [t.name, t]));
  return { config: TINY_CONFIG, weights };
}

/** Writes a tiny folder with the tensors as given, scales narrowed to F16 as `deno task convert` stores them. */
async function writeFolder(dir: string, config: object, tensors: Iterable<TensorData>): Promise<void> {
  await writeJson(`${dir}/config.json`, config);
  await writeJson(`${dir}/tokenizer.json`, tinyTokenizerJson(TINY_CONFIG.vocabSize));
  const stored = [...tensors].map((t) =>
    t.name.endsWith(".scales") ? { ...t, dtype: "float16" as const, data: f32ToF16(float32Values(t)) } : t
  );
  await writeSafetensors(`${dir}/model.safetensors`, stored, { metadata: { format: "pt" } });
}

Deno.test("quantizeModelWeights replaces each linear weight (lm_head included) by MatMulNBits tensors", () => {
  const model = tinyModel();
  for (const quantization of [INT4, INT8]) {
    const q = quantizeModelWeights(model, quantization);
    assert.deepEqual(q.config, { ...TINY_CONFIG, quantization });
    const names = [...q.weights.keys()];
    assert.ok(names.includes("model.embed_tokens.weight") && names.includes("model.norm.weight"));
    assert.ok(!names.some((n) => /_proj\.weight$|^lm_head\.weight$/.test(n)), "no float linear weights left");
    const down = "model.layers.1.mlp.down_proj";
    // down_proj: [out 16, in 24] → 2 blocks of 16 (the second padded)
    assert.deepEqual(q.weights.get(`${down}.qweight`)!.dims, [16, 2, quantization.bits * 2]);
    assert.deepEqual(q.weights.get(`${down}.scales`)!.dims, [16, 2]);
    assert.equal(q.weights.has(`${down}.qzeros`), !quantization.symmetric);
    assert.ok(q.weights.has("lm_head.qweight"));
    // dequantizing gives the float model back, each value within half a quantization step
    const back = dequantizeModelWeights(q);
    assert.deepEqual(back.config, TINY_CONFIG);
    assert.deepEqual([...back.weights.keys()], [...model.weights.keys()]);
    const original = float32Values(model.weights.get(`${down}.weight`)!);
    const expected = dequantizeNBits(quantizeNBits(original, { rows: 16, cols: 24 }, quantization));
    assert.deepEqual(float32Values(back.weights.get(`${down}.weight`)!), expected);
  }
  assert.throws(() => quantizeModelWeights(quantizeModelWeights(model, INT8), INT8), /already quantized/);
  assert.equal(dequantizeModelWeights(model), model, "a float model is returned as it is");
});

Deno.test("a quantized folder loads with the same tensors (scales widened from F16)", async () => {
  await withTempDir(async (dir) => {
    for (const quantization of [INT4, INT8]) {
      const q = quantizeModelWeights(tinyModel(), quantization);
      await writeFolder(`${dir}`, llamaConfigToHf(q.config), q.weights.values());
      const folder = await loadModelFolder(dir);
      assert.deepEqual(folder.config.quantization, quantization);
      assert.deepEqual(folder.unusedTensors, []);
      assert.deepEqual([...folder.weights.keys()], [...q.weights.keys()]);
      for (const [name, t] of q.weights) {
        const got = folder.weights.get(name)!;
        assert.deepEqual([got.dtype, got.dims], [t.dtype, t.dims], name);
        assert.deepEqual(got.data, t.data, name);
      }
    }
  });
});

Deno.test("a quantized folder with wrong tensors fails naming the tensor", async () => {
  const q = quantizeModelWeights(tinyModel(), INT4);
  const site = "model.layers.0.self_attn.q_proj";
  const withChange = (change: (m: Map<string, TensorData>) => void) => {
    const m = new Map(q.weights);
    change(m);
    return m.values();
  };
  const cases: [object, Iterable<TensorData>, RegExp][] = [
    [
      llamaConfigToHf(q.config),
      withChange((m) => m.set(`${site}.qweight`, { ...m.get(`${site}.qweight`)!, dims: [16, 2, 4] })),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.qweight" has shape \[16,2,4\], expected \[16,1,8\] \(4-bit, block size 16, \[out 16, in 16\]\)/,
    ],
    [
      llamaConfigToHf(q.config),
      withChange((m) => m.delete(`${site}.scales`)),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.scales" is missing \(model\.layers\.0\.self_attn\.q_proj\.qweight is present\)/,
    ],
    [
      llamaConfigToHf(q.config),
      withChange((m) => m.delete(`${site}.qzeros`)),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.qzeros" is missing/,
    ],
    [
      llamaConfigToHf({ ...q.config, quantization: { ...INT4, symmetric: true } }),
      q.weights.values(),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.qzeros" is present but the quantization is symmetric/,
    ],
    [
      llamaConfigToHf({ ...q.config, quantization: { ...INT4, bits: 8 } }),
      q.weights.values(),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.qweight" has shape \[16,1,8\], expected \[16,1,16\] \(8-bit/,
    ],
    [
      llamaConfigToHf(TINY_CONFIG),
      q.weights.values(),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.qweight" in .*model\.safetensors is quantized, but config\.json has no quantization_config/,
    ],
    [
      llamaConfigToHf(q.config),
      withChange((m) => m.set(`${site}.weight`, tinyModel().weights.get(`${site}.weight`)!)),
      /both "model\.layers\.0\.self_attn\.q_proj\.weight" and "model\.layers\.0\.self_attn\.q_proj\.qweight" are in the checkpoint/,
    ],
  ];
  await withTempDir(async (dir) => {
    for (const [i, [config, tensors, pattern]] of cases.entries()) {
      await writeFolder(`${dir}`, config, tensors);
      await assert.rejects(loadModelFolder(dir), (e: Error) => {
        assert.match(e.message, /^Cannot load model folder /, `case ${i}`);
        assert.match(e.message, pattern, `case ${i}`);
        return true;
      });
    }
  });
});

Deno.test({
  name: "deno task convert --quantize writes a smaller stories260K folder that loads",
  ignore: !requireStories260k("convert --quantize"),
  fn: async () => {
    await withTempDir(async (dir) => {
      const s = stories();
      const f32 = await convertLlama2c({ model: s.bin, tokenizer: s.tok, out: `${dir}/f32` });
      for (const [preset, bits] of [["int8", 8], ["int4", 4]] as const) {
        const child = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            new URL("../../src/cli/convert.ts", import.meta.url).pathname,
            ...["--from", "llama2c", "--model", s.bin, "--tokenizer", s.tok, "--out", `${dir}/${preset}`],
            ...["--quantize", preset],
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stdout = new TextDecoder().decode(child.stdout);
        assert.ok(child.success, new TextDecoder().decode(child.stderr));
        assert.match(
          stdout,
          new RegExp(`260,032 parameters, [\\d,]+ weight bytes, ${bits}-bit linear weights`),
        );
        const folder = await loadModelFolder(`${dir}/${preset}`);
        assert.equal(folder.config.quantization?.bits, bits);
        const bytes = (await Deno.stat(`${dir}/${preset}/model.safetensors`)).size;
        const f32Bytes = (await Deno.stat(`${dir}/f32/model.safetensors`)).size;
        assert.ok(bytes < f32Bytes / (bits === 8 ? 2.5 : 3.5), `${preset}: ${bytes} vs ${f32Bytes} bytes`);
      }
      assert.equal(f32.quantization, undefined);
      const bad = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../../src/cli/convert.ts", import.meta.url).pathname,
          ...[
            "--from",
            "llama2c",
            "--model",
            s.bin,
            "--tokenizer",
            s.tok,
            "--out",
            `${dir}/x`,
            "--quantize",
            "int3",
          ],
        ],
        stderr: "piped",
      }).output();
      assert.ok(!bad.success);
      assert.match(new TextDecoder().decode(bad.stderr), /Unknown quantization "int3": use int8 or int4/);
    });
  },
});
