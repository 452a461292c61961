import assert from "node:assert/strict";
import { Prng } from "../../../src/models/sampling.ts";
import { TOPIC_LABELS, topicOpening, topicRow } from "../../../bench/tasks/story_topic.ts";

Deno.test("topicOpening fills every placeholder for every label", () => {
  const prng = new Prng(5);
  for (const label of TOPIC_LABELS) {
    for (let i = 0; i < 40; i++) {
      const opening = topicOpening(prng, label);
      assert.ok(!/[{}]/.test(opening), opening);
      assert.ok(/[.!?]$/.test(opening), opening);
    }
  }
  assert.deepEqual(TOPIC_LABELS, ["animal", "food", "toy", "weather"]);
});

Deno.test("topicOpening rejects an unknown label", () => {
  assert.throws(() => topicOpening(new Prng(1), "sports"), /Unknown topic "sports": expected one of animal/);
});

Deno.test("topicRow asks for the topic after the story", () => {
  assert.deepEqual(topicRow("  It was a windy day. ", "weather"), {
    prompt: "It was a windy day.\nTopic:",
    completion: "weather",
  });
});
