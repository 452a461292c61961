import assert from "node:assert/strict";
import type { LlamaConfig } from "../../src/models/config.ts";
import { llamaConfigToHf, parseHfConfig } from "../../src/io/hf_config.ts";
import { TINY_CONFIG } from "./_helpers.ts";

const FIXTURES = new URL("../fixtures/io/", import.meta.url);

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(Deno.readTextFileSync(new URL(name, FIXTURES)));
}

Deno.test("Llama 3.2: GQA, head_dim, llama3 RoPE scaling, tied embeddings, EOS list from generation_config", () => {
  const config = parseHfConfig(fixture("llama3.2-1b-config.json"), {
    generationConfig: fixture("llama3.2-1b-instruct-generation_config.json"),
  });
  const expected: LlamaConfig = {
    architecture: "llama",
    vocabSize: 128256,
    hiddenSize: 2048,
    intermediateSize: 8192,
    numHiddenLayers: 16,
    numAttentionHeads: 32,
    numKeyValueHeads: 8,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3",
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    },
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true,
    attentionBias: false,
    bosTokenId: 128000,
    eosTokenIds: [128001, 128008, 128009],
  };
  assert.deepEqual(config, expected);
  // Without the generation config, EOS comes from config.json.
  assert.deepEqual(parseHfConfig(fixture("llama3.2-1b-config.json")).eosTokenIds, [128001]);
});

Deno.test("Qwen2: q/k/v biases, default head_dim, disabled sliding window ignored", () => {
  const config = parseHfConfig(fixture("qwen2-0.5b-instruct-config.json"));
  assert.equal(config.architecture, "qwen2");
  assert.equal(config.attentionBias, true);
  assert.equal(config.headDim, 64);
  assert.equal(config.numKeyValueHeads, 2);
  assert.equal(config.ropeTheta, 1000000);
  assert.equal(config.maxPositionEmbeddings, 32768);
  assert.equal(config.tieWordEmbeddings, true);
  assert.throws(
    () => parseHfConfig({ ...fixture("qwen2-0.5b-instruct-config.json"), use_sliding_window: true }),
    /field "use_sliding_window" is true: sliding-window attention is not supported/,
  );
});

Deno.test("Mistral v0.1: a 4096 sliding window caps the context so full attention stays exact", () => {
  const config = parseHfConfig(fixture("mistral-7b-v0.1-config.json"));
  assert.equal(config.architecture, "mistral");
  assert.equal(config.maxPositionEmbeddings, 4096);
  assert.equal(config.attentionBias, false);
  assert.equal(
    parseHfConfig({ ...fixture("mistral-7b-v0.1-config.json"), sliding_window: null }).maxPositionEmbeddings,
    32768,
  );
});

Deno.test("defaults: kv heads = heads, rope theta 10000, linear scaling, rope_parameters (transformers 5)", () => {
  const base = {
    model_type: "llama",
    vocab_size: 10,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
  };
  const c = parseHfConfig(base);
  assert.deepEqual(
    [c.numKeyValueHeads, c.headDim, c.ropeTheta, c.rmsNormEps, c.maxPositionEmbeddings, c.tieWordEmbeddings],
    [2, 4, 10000, 1e-6, 2048, false],
  );
  assert.equal(c.bosTokenId, undefined);
  assert.deepEqual(c.eosTokenIds, []);
  assert.deepEqual(parseHfConfig({ ...base, rope_scaling: { type: "linear", factor: 2 } }).ropeScaling, {
    type: "linear",
    factor: 2,
  });
  assert.equal(parseHfConfig({ ...base, rope_scaling: { rope_type: "default" } }).ropeScaling, undefined);
  const v5 = parseHfConfig({ ...base, rope_parameters: { rope_type: "linear", factor: 4, rope_theta: 123 } });
  assert.deepEqual([v5.ropeTheta, v5.ropeScaling], [123, { type: "linear", factor: 4 }]);
});

Deno.test("unsupported architectures and options fail naming the field and value", () => {
  const base = fixture("llama3.2-1b-config.json");
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { architectures: ["GPT2LMHeadModel"] },
      /field "architectures" is \["GPT2LMHeadModel"\]: supported: LlamaForCausalLM/,
    ],
    [{ architectures: undefined, model_type: "phi3" }, /field "model_type" is "phi3"/],
    [
      { rope_scaling: { rope_type: "yarn", factor: 4 } },
      /field "rope_scaling\.rope_type" is "yarn": supported RoPE scaling types/,
    ],
    [{ rope_scaling: { type: "dynamic", factor: 2 } }, /field "rope_scaling\.type" is "dynamic"/],
    [
      { rope_scaling: { rope_type: "llama3", factor: 8 } },
      /field "rope_scaling\.low_freq_factor" is undefined/,
    ],
    [{ hidden_act: "gelu" }, /field "hidden_act" is "gelu": only "silu"/],
    [
      { attention_bias: true },
      /field "attention_bias" is true: attention biases are not supported for LlamaForCausalLM/,
    ],
    [{ mlp_bias: true }, /field "mlp_bias" is true/],
    [
      { quantization_config: { quant_method: "gptq" } },
      /field "quantization_config\.quant_method" is "gptq": only "matmul_nbits" .*\(GPTQ, AWQ, bitsandbytes\) are not/,
    ],
    [
      { quantization_config: { quant_method: "matmul_nbits", bits: 3, group_size: 32, sym: true } },
      /field "quantization_config\.bits" is 3: expected 4 or 8/,
    ],
    [
      { quantization_config: { quant_method: "matmul_nbits", bits: 4, group_size: 24, sym: true } },
      /field "quantization_config\.group_size" is 24: expected a power of two ≥ 16/,
    ],
    [
      { num_key_value_heads: 5 },
      /field "num_key_value_heads" is 5: it must divide num_attention_heads \(32\)/,
    ],
    [{ hidden_size: "2048" }, /field "hidden_size" is "2048": expected a positive integer/],
    [{ vocab_size: undefined }, /field "vocab_size" is undefined: the field is required/],
    [{ eos_token_id: 999999 }, /field "eos_token_id" is 999999: expected a token id in \[0, 128256\)/],
    [{ tie_word_embeddings: "yes" }, /field "tie_word_embeddings" is "yes"/],
    [{ partial_rotary_factor: 0.5 }, /field "partial_rotary_factor" is 0.5/],
  ];
  for (const [patch, pattern] of cases) {
    assert.throws(() => parseHfConfig({ ...base, ...patch }, { file: "m/config.json" }), (e: Error) => {
      assert.match(e.message, /^Cannot load m\/config\.json: /);
      assert.match(e.message, pattern);
      return true;
    });
  }
  assert.throws(() => parseHfConfig([], { file: "c.json" }), /Cannot load c\.json: it is not a JSON object/);
});

Deno.test("llamaConfigToHf writes a config.json that parses back to the same config", () => {
  const configs: LlamaConfig[] = [
    TINY_CONFIG,
    parseHfConfig(fixture("llama3.2-1b-config.json")),
    parseHfConfig(fixture("qwen2-0.5b-instruct-config.json")),
    { ...TINY_CONFIG, ropeScaling: { type: "linear", factor: 2 }, eosTokenIds: [2, 3] },
    { ...TINY_CONFIG, quantization: { bits: 4, blockSize: 32, symmetric: false } },
  ];
  for (const c of configs) assert.deepEqual(parseHfConfig(JSON.parse(JSON.stringify(llamaConfigToHf(c)))), c);
  const hf = llamaConfigToHf(TINY_CONFIG);
  assert.deepEqual(Object.keys(hf), [...Object.keys(hf)].sort(), "keys are sorted");
  assert.deepEqual(hf.architectures, ["LlamaForCausalLM"]);
});
