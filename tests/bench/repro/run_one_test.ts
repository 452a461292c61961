import assert from "node:assert/strict";
import { loadModelFolder, type ModelFolder } from "../../../src/io/model_folder.ts";
import { LlamaGenerator } from "../../../src/models/generate.ts";
import { parseJsonl } from "../../../src/train/data.ts";
import { exactMatch, firstWord, loadTaskData } from "../../../bench/repro/run_one.ts";
import { ensureStories260k } from "../../../bench/tasks/stories260k.ts";
import { requireStories260k, stories260kDir } from "../../_util/fixtures.ts";

let converted: Promise<{ model: ModelFolder; dir: string }> | undefined;
function stories260k(): Promise<{ model: ModelFolder; dir: string }> {
  converted ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "run_one_test_" });
    const model = await loadModelFolder(await ensureStories260k(dir, stories260kDir()), {
      id: "stories260K",
    });
    return { model, dir };
  })();
  return converted;
}

Deno.test("firstWord reads the first word after leading space", () => {
  assert.equal(firstWord(" Lily. She"), "Lily");
  assert.equal(firstWord("red"), "red");
  assert.equal(firstWord("  teddy-bear's toy"), "teddy-bear's");
  assert.equal(firstWord(". Lily"), "");
  assert.equal(firstWord(""), "");
});

Deno.test({
  name: "loadTaskData drops the EOS after completions, keeps text rows whole, and sizes the graphs",
  ignore: !requireStories260k("loadTaskData"),
  fn: async () => {
    const { model, dir } = await stories260k();
    const tasks = `${dir}/tasks`;
    const rows = {
      qa: ['{"prompt": "Lily had a cat.\\nQ: Who had a cat?\\nA:", "completion": "Lily"}'],
      world: ['{"text": "Long ago on the planet Vell, Zara ran."}'],
    };
    for (const [task, lines] of Object.entries(rows)) {
      await Deno.mkdir(`${tasks}/${task}`, { recursive: true });
      for (const split of ["train", "dev", "eval"]) {
        await Deno.writeTextFile(`${tasks}/${task}/${split}.jsonl`, lines.join("\n") + "\n");
      }
    }
    const options = { tokenizer: model.tokenizer, seqLen: 96 };
    const qa = await loadTaskData(tasks, "qa", options);
    const withEos = parseJsonl(rows.qa[0], "x", options).examples[0];
    const [example] = qa.train.examples;
    assert.equal(withEos.inputIds.at(-1), model.tokenizer.eosIds[0]);
    assert.deepEqual(example.inputIds, withEos.inputIds.slice(0, -1));
    assert.deepEqual(example.labels, withEos.labels.slice(0, -1));
    assert.equal(qa.train.targets, withEos.labels.filter((l) => l !== -100).length - 1);
    assert.equal(qa.seqLen, example.inputIds.length);
    const world = await loadTaskData(tasks, "world", options);
    assert.deepEqual(world.eval.examples[0], parseJsonl(rows.world[0], "x", options).examples[0]);
    await assert.rejects(
      () => loadTaskData(tasks, "world", { ...options, seqLen: 8 }),
      /Cannot use .*world\/train\.jsonl: 1 rows exceed 8 tokens and 0 have no target/,
    );
  },
});

Deno.test({
  name: "exactMatch scores the greedy first word against the answer",
  ignore: !requireStories260k("exactMatch"),
  fn: async () => {
    const { model } = await stories260k();
    // the published greedy story: "Once upon a time, there was a little girl named Lily. ..."
    const prompt = "Once upon a time, there was a little girl named";
    const text = [
      JSON.stringify({ prompt, completion: "Lily" }),
      JSON.stringify({ prompt, completion: "Tom" }),
      JSON.stringify({ prompt, completion: "Lil" }),
    ].join("\n");
    const data = parseJsonl(text, "x", { tokenizer: model.tokenizer, seqLen: 64 });
    const generator = await LlamaGenerator.create(model, { ep: "wasm" });
    try {
      const decode = (ids: number[]) => model.tokenizer.decode(ids, { skipSpecialTokens: true });
      assert.equal(
        await exactMatch(generator, { ...data, examples: data.examples.slice(0, 1) }, { decode }),
        1,
      );
      assert.equal(await exactMatch(generator, data, { decode }), 1 / 3);
    } finally {
      await generator.release();
    }
  },
});

Deno.test({
  name: "stories260k test folder cleanup",
  ignore: !requireStories260k("cleanup"),
  fn: async () => {
    const { dir } = await stories260k();
    await Deno.remove(dir, { recursive: true });
  },
});
