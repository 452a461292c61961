import assert from "node:assert/strict";
import { splitSentences, trimToSentences } from "../../../bench/tasks/base_stories.ts";

Deno.test("splitSentences keeps end marks and closing quotes, and a trailing fragment", () => {
  assert.deepEqual(splitSentences('Tom ran.  "Stop!" she said.\nIt was fun?! Then he'), [
    "Tom ran.",
    '"Stop!"',
    "she said.",
    "It was fun?!",
    "Then he",
  ]);
  assert.deepEqual(splitSentences(""), []);
});

Deno.test("trimToSentences keeps whole sentences within budget, never a fragment, always the first", () => {
  const story = "A cat sat. It ran away. It came back home. Then it";
  assert.equal(trimToSentences(story, () => true), "A cat sat. It ran away. It came back home.");
  assert.equal(trimToSentences(story, (s) => s.length <= 25), "A cat sat. It ran away.");
  assert.equal(trimToSentences(story, () => false), "A cat sat.");
});
