import assert from "node:assert/strict";
import {
  generateTasks,
  makeTask,
  readTaskManifest,
  rowTokens,
  type TaskModel,
} from "../../../bench/tasks/generate.ts";

/** A word-level stand-in tokenizer: one token per whitespace-separated word. */
const words = { encode: (text: string) => text.split(/\s+/).filter(Boolean).map((_, i) => i + 3) };
const model = { id: "fake", tokenizer: words } as unknown as TaskModel;
const sizes = { train: 12, dev: 4, eval: 6 };

Deno.test("rowTokens counts BOS, and EOS after a completion", () => {
  assert.equal(rowTokens(words, { text: "a b c" }), 4);
  assert.equal(rowTokens(words, { prompt: "a b", completion: "c" }), 5);
});

Deno.test("makeTask qa splits deterministic rows into eval, dev and train", async () => {
  const a = await makeTask("qa", model, { sizes, seqLen: 96, storyTokens: 96, seed: 9 });
  const b = await makeTask("qa", model, { sizes, seqLen: 96, storyTokens: 96, seed: 9 });
  assert.deepEqual(a, b);
  assert.deepEqual([a.train.length, a.dev.length, a.eval.length], [12, 4, 6]);
  const c = await makeTask("qa", model, { sizes, seqLen: 96, storyTokens: 96, seed: 10 });
  assert.notDeepEqual(a.eval, c.eval);
});

Deno.test("makeTask qa fails when a row cannot fit the sequence length", async () => {
  await assert.rejects(
    () => makeTask("qa", model, { sizes, seqLen: 8, storyTokens: 8, seed: 9 }),
    /Cannot make task "qa": row 0 has \d+ tokens, more than the sequence length 8/,
  );
});

Deno.test("generateTasks writes the splits and a manifest, and reuses a folder with the same settings", async () => {
  const out = await Deno.makeTempDir({ prefix: "tasks_test_" });
  try {
    const options = { out, tasks: ["qa" as const], sizes, seqLen: 96, storyTokens: 96, seed: 2 };
    const manifest = await generateTasks(model, options);
    assert.equal(manifest.files.qa.train.rows, 12);
    assert.match(manifest.files.qa.eval.sha256, /^[0-9a-f]{64}$/);
    const lines = (await Deno.readTextFile(`${out}/qa/dev.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 4);
    assert.deepEqual(Object.keys(JSON.parse(lines[0])), ["prompt", "completion"]);
    const before = (await Deno.stat(`${out}/qa/train.jsonl`)).mtime;
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await generateTasks(model, options), manifest);
    assert.deepEqual((await Deno.stat(`${out}/qa/train.jsonl`)).mtime, before);
    assert.deepEqual(await readTaskManifest(out), manifest);
    const other = await generateTasks(model, { ...options, seed: 3 });
    assert.notEqual(other.files.qa.train.sha256, manifest.files.qa.train.sha256);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
