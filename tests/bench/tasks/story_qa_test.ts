import assert from "node:assert/strict";
import { Prng } from "../../../src/models/sampling.ts";
import { QA_SLOTS, storyQaExample } from "../../../bench/tasks/story_qa.ts";

Deno.test("storyQaExample puts the answer in the story and ends with the answer cue", () => {
  const prng = new Prng(7);
  for (let i = 0; i < 300; i++) {
    const row = storyQaExample(prng);
    const [story, question, cue] = row.prompt.split("\n");
    assert.equal(cue, "A:");
    assert.ok(question.startsWith("Q: ") && question.endsWith("?"), question);
    assert.ok(new RegExp(`\\b${row.answer}\\b`).test(story), `"${row.answer}" should occur in "${story}"`);
  }
});

Deno.test("storyQaExample asks every slot, and a color question has exactly one answer in the story", () => {
  const prng = new Prng(11);
  const seen = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const row = storyQaExample(prng);
    seen.add(row.slot);
    if (row.slot === "color") {
      const object = /What color was the (\w+)\?/.exec(row.prompt)![1];
      const matches = row.prompt.match(new RegExp(`a (\\w+) ${object}\\.`, "g"))!;
      assert.equal(matches.length, 1);
      assert.equal(matches[0], `a ${row.answer} ${object}.`);
      // the distractor sentence has another color
      const distractor = /The \w+ was (\w+)\./.exec(row.prompt)![1];
      assert.notEqual(distractor, row.answer);
    }
  }
  assert.deepEqual([...seen].sort(), [...QA_SLOTS].sort());
});

Deno.test("storyQaExample depends only on the seed", () => {
  const a = Array.from({ length: 5 }, ((p) => () => storyQaExample(p))(new Prng(3)));
  const b = Array.from({ length: 5 }, ((p) => () => storyQaExample(p))(new Prng(3)));
  assert.deepEqual(a, b);
  assert.notDeepEqual(storyQaExample(new Prng(3)), storyQaExample(new Prng(4)));
});
