import assert from "node:assert/strict";
import { convertGguf, convertLlama2c } from "../../src/io/convert.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { main } from "../../src/cli/convert.ts";
import { llama2cEncode, readLlama2cVocab } from "./_llama2c_reference.ts";
import { requireStories260k, stories, withTempDir } from "./_helpers.ts";

const HAVE = requireStories260k("convert_test");
const FILES = [
  "config.json",
  "generation_config.json",
  "model.safetensors",
  "tokenizer.json",
  "tokenizer_config.json",
];

function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test({
  name: "llama2.c and GGUF routes write complete, byte-identical Hugging Face folders that load",
  ignore: !HAVE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const s = stories();
      const a = await convertLlama2c({ model: s.bin, tokenizer: s.tok, out: `${dir}/from-llama2c` });
      const b = await convertGguf({ model: s.gguf, out: `${dir}/from-gguf` });
      assert.deepEqual(a, {
        out: `${dir}/from-llama2c`,
        tensors: 47,
        parameters: 260032,
        weightBytes: 1040128,
      });
      assert.deepEqual({ ...b, out: "" }, { ...a, out: "" });
      assert.deepEqual(listDir(dir), ["from-gguf", "from-llama2c"], "no temporary folders are left");
      assert.deepEqual(listDir(`${dir}/from-llama2c`), FILES);
      for (const f of FILES) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/from-gguf/${f}`),
          await Deno.readFile(`${dir}/from-llama2c/${f}`),
          f,
        );
      }
      const config = JSON.parse(await Deno.readTextFile(`${dir}/from-gguf/config.json`));
      assert.deepEqual(
        [config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads],
        [64, 172, 5, 8],
      );
      assert.deepEqual(
        [
          config.num_key_value_heads,
          config.vocab_size,
          config.max_position_embeddings,
          config.tie_word_embeddings,
        ],
        [4, 512, 512, true],
      );
      assert.deepEqual([config.rms_norm_eps, config.rope_theta, config.bos_token_id, config.eos_token_id], [
        1e-5,
        10000,
        1,
        2,
      ]);
      const generation = JSON.parse(await Deno.readTextFile(`${dir}/from-gguf/generation_config.json`));
      assert.deepEqual([generation.bos_token_id, generation.eos_token_id], [1, 2]);

      const model = await loadModelFolder(`${dir}/from-gguf`);
      assert.equal(model.id, "from-gguf");
      assert.equal(model.weights.size, 47);
      assert.deepEqual(model.unusedTensors, []);
      const reference = readLlama2cVocab(await Deno.readFile(s.tok), 512);
      const text = "Once upon a time, Lily met a big dog.\nThe end.";
      assert.deepEqual(
        model.tokenizer.encode(text),
        llama2cEncode(reference, text, { bos: true, eos: false }),
      );
    });
  },
});

Deno.test({
  name: "conversion refuses a non-empty folder, replaces it with force, and fills an existing empty one",
  ignore: !HAVE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const s = stories();
      const out = `${dir}/out`;
      await Deno.mkdir(out);
      await convertGguf({ model: s.gguf, out });
      assert.deepEqual(listDir(out), FILES);
      await Deno.writeTextFile(`${out}/extra.txt`, "keep me?");
      await assert.rejects(
        convertLlama2c({ model: s.bin, tokenizer: s.tok, out }),
        /Cannot write model folder .*\/out: the folder is not empty \(pass --force/,
      );
      assert.ok(listDir(out).includes("extra.txt"), "a refused conversion leaves the folder alone");
      await convertLlama2c({ model: s.bin, tokenizer: s.tok, out, force: true });
      assert.deepEqual(listDir(out), FILES, "force replaces the whole folder");
      assert.deepEqual(listDir(dir), ["out"]);
      await Deno.writeTextFile(`${dir}/file`, "");
      await assert.rejects(convertGguf({ model: s.gguf, out: `${dir}/file` }), /a file of that name exists/);
    });
  },
});

Deno.test({
  name: "a failing conversion leaves no output folder and no temporary files",
  ignore: !HAVE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const s = stories();
      const bin = await Deno.readFile(s.bin);
      await Deno.writeFile(`${dir}/cut.bin`, bin.subarray(0, 1000));
      await assert.rejects(
        convertLlama2c({ model: `${dir}/cut.bin`, tokenizer: s.tok, out: `${dir}/out` }),
        /Cannot read llama2\.c checkpoint .*cut\.bin: it has 1000 bytes but its header .* needs 1056540/,
      );
      await Deno.writeFile(`${dir}/tok.bin`, (await Deno.readFile(s.tok)).subarray(0, 4000));
      await assert.rejects(
        convertLlama2c({ model: s.bin, tokenizer: `${dir}/tok.bin`, out: `${dir}/out` }),
        /Cannot read llama2\.c tokenizer .*tok\.bin/,
      );
      await assert.rejects(
        convertLlama2c({ model: `${dir}/none.bin`, tokenizer: s.tok, out: `${dir}/out` }),
        /Cannot read llama2\.c checkpoint .*none\.bin: the file does not exist/,
      );
      const gguf = await Deno.readFile(s.gguf);
      await Deno.writeFile(`${dir}/cut.gguf`, gguf.subarray(0, gguf.byteLength - 100));
      await assert.rejects(
        convertGguf({ model: `${dir}/cut.gguf`, out: `${dir}/out` }),
        /Cannot read GGUF file .*cut\.gguf: tensor "output\.weight"/,
      );
      assert.deepEqual(listDir(dir), ["cut.bin", "cut.gguf", "tok.bin"]);
    });
  },
});

Deno.test({
  name: "the convert CLI parses its flags and reports bad ones with the usage",
  ignore: !HAVE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const s = stories();
      const out = `${dir}/m`;
      const summary = await main(["--from", "llama2c", "--model", s.bin, "--tokenizer", s.tok, "--out", out]);
      assert.equal(summary?.tensors, 47);
      await assert.rejects(
        main(["--from", "gguf", "--model", s.gguf, "--out", out]),
        /the folder is not empty/,
      );
      await main(["--from", "gguf", "--model", s.gguf, "--out", out, "--force"]);
      assert.deepEqual(listDir(out), FILES);
      await assert.rejects(
        main(["--from", "onnx", "--model", "x", "--out", out]),
        /--from is "onnx", expected llama2c or gguf\nUsage:/,
      );
      await assert.rejects(
        main(["--from", "llama2c", "--model", s.bin, "--out", out]),
        /Missing --tokenizer for --from llama2c/,
      );
      await assert.rejects(main(["--from", "gguf", "--out", out]), /Missing --model/);
      await assert.rejects(
        main(["--from", "gguf", "--model", s.gguf, "--out", out, "--tokenizer", s.tok]),
        /--tokenizer is not used with --from gguf/,
      );
      await assert.rejects(main(["--from", "gguf", "--bogus"]), /Unknown option '--bogus'[\s\S]*Usage:/);
    });
  },
});

Deno.test({
  name: "deno task convert runs end to end as a subprocess",
  ignore: !HAVE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const root = new URL("../../", import.meta.url);
      const run = (args: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: ["task", "-q", "convert", ...args],
          cwd: root,
          stdout: "piped",
          stderr: "piped",
        })
          .output();
      const ok = await run(["--from", "gguf", "--model", stories().gguf, "--out", `${dir}/m`]);
      assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
      assert.match(new TextDecoder().decode(ok.stdout), /Wrote .*\/m: 47 tensors, 260,032 parameters/);
      const bad = await run(["--from", "gguf", "--model", `${dir}/missing.gguf`, "--out", `${dir}/n`]);
      assert.equal(bad.code, 1);
      assert.match(
        new TextDecoder().decode(bad.stderr),
        /Cannot read GGUF file .*missing\.gguf: the file does not exist/,
      );
      assert.deepEqual(listDir(dir), ["m"]);
    });
  },
});
