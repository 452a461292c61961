// The transformers.js export of the peers bench (bench/_transformers_export.ts): the port renaming, and
// stories260K's exported folder loaded by transformers.js offline (network denied) in a child process,
// giving our generator's greedy tokens.

import assert from "node:assert/strict";
import { exportForTransformersJs, renameGraphPorts } from "../../bench/_transformers_export.ts";
import { convertLlama2c } from "../../src/io/convert.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { LlamaGenerator } from "../../src/models/generate.ts";
import { decodeModel } from "../../src/onnx/proto.ts";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { requireStories260k, stories260kDir } from "../_util/fixtures.ts";

const BENCH = new URL("../../bench/peers_bench.ts", import.meta.url).pathname;

Deno.test("renameGraphPorts renames inputs and outputs and the node ports using them", () => {
  const b = new GraphBuilder("g");
  const x = b.input("past.0.key", "float32", [2]);
  b.output(b.neg(x), "present.0.key");
  const model = renameGraphPorts(b.toModel(), new Map([["past.0.key", "past_key_values.0.key"]]));
  assert.deepEqual(model.graph.inputs.map((v) => v.name), ["past_key_values.0.key"]);
  assert.deepEqual(model.graph.nodes[0].inputs, ["past_key_values.0.key"]);
  assert.deepEqual(model.graph.outputs.map((v) => v.name), ["present.0.key"]);
  assert.throws(
    () => renameGraphPorts(b.toModel(), new Map([["nope", "x"]])),
    /Cannot rename "nope": it is not a graph input or output/,
  );
});

Deno.test({
  name: "transformers.js loads the stories260K export offline and gives our greedy tokens",
  ignore: !requireStories260k("transformers_export_test"),
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "tjs_export_" });
    try {
      const dir = stories260kDir();
      await convertLlama2c({
        model: `${dir}/stories260K.bin`,
        tokenizer: `${dir}/tok512.bin`,
        out: `${tmp}/model`,
      });
      await exportForTransformersJs(`${tmp}/model`, `${tmp}/tjs`);
      await assert.rejects(
        exportForTransformersJs(`${tmp}/model`, `${tmp}/tjs`),
        /Cannot export to .*: it exists/,
      );
      const names = [...Deno.readDirSync(`${tmp}/tjs`)].map((e) => e.name).sort();
      assert.deepEqual(names, [
        "config.json",
        "generation_config.json",
        "onnx",
        "tokenizer.json",
        "tokenizer_config.json",
      ]);
      const graph = decodeModel(await Deno.readFile(`${tmp}/tjs/onnx/model.onnx`)).graph;
      const inputs = graph.inputs.map((v) => v.name);
      assert.deepEqual(inputs.slice(0, 3), ["input_ids", "position_ids", "attention_mask"]);
      assert.ok(inputs.includes("past_key_values.4.value") && !inputs.some((n) => n.startsWith("past.")));
      assert.ok(graph.outputs.some((v) => v.name === "present.4.value"));

      const tokens = 24;
      const child = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--deny-net",
          BENCH,
          "--child",
          "transformers.js",
          "--path",
          `${tmp}/tjs`,
          "--threads",
          "1",
          "--tokens",
          String(tokens),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(child.stderr);
      assert.ok(child.success, stderr);
      const run = JSON.parse(new TextDecoder().decode(child.stdout).trim().split("\n").at(-1)!);
      assert.equal(run.engine, "transformers.js");
      assert.equal(run.decodeTokens, tokens - 1);

      const generator = await LlamaGenerator.create(await loadModelFolder(`${tmp}/model`), { ep: "wasm" });
      try {
        const [ours] = await generator.generate(["Once upon a time"], { maxTokens: tokens, temperature: 0 });
        assert.equal(run.promptTokens, ours.promptTokenIds.length);
        assert.deepEqual(run.tokenIds, ours.tokenIds);
        assert.equal(run.text, ours.text);
      } finally {
        await generator.release();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
