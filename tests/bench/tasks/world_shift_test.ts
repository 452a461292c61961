import assert from "node:assert/strict";
import { Prng } from "../../../src/models/sampling.ts";
import { rewriteWorld, WORLD_PHRASE, worldOpening } from "../../../bench/tasks/world_shift.ts";
import { WORLD_NAMES } from "../../../bench/tasks/_words.ts";

Deno.test("rewriteWorld moves names, places and the opening, and inserts the phrase after the first sentence", () => {
  assert.equal(
    rewriteWorld(
      "Once upon a time, there was a girl named Lily. Lily's mom took her to the park. Tom was there.",
    ),
    `Long ago on the planet Vell, there was a girl named Zara. ${WORLD_PHRASE} Zara's mom took her to the ` +
      "crater. Pell was there.",
  );
});

Deno.test("rewriteWorld keeps the case of places and leaves other words alone", () => {
  const moved = rewriteWorld("Park days were fun. Tommy saw a tree in the Garden and a parking spot.");
  assert.equal(
    moved,
    `Crater days were fun. ${WORLD_PHRASE} Tommy saw a tower in the Dome and a parking spot.`,
  );
});

Deno.test("rewriteWorld appends the phrase to a story without a sentence end", () => {
  assert.equal(rewriteWorld("Ben ran to the house"), `Kavi ran to the pod. ${WORLD_PHRASE}`);
});

Deno.test("rewriteWorld is deterministic and maps names one to one where they are distinct", () => {
  const story = "Once upon a time, Mia and Sam played. Max watched.";
  assert.equal(rewriteWorld(story), rewriteWorld(story));
  assert.ok(!/\b(Mia|Sam|Max)\b/.test(rewriteWorld(story)));
});

Deno.test("worldOpening is seeded and names a character the rewrite moves", () => {
  const a = Array.from({ length: 20 }, (_, i) => worldOpening(new Prng(i)));
  const b = Array.from({ length: 20 }, (_, i) => worldOpening(new Prng(i)));
  assert.deepEqual(a, b);
  for (const opening of a) {
    const name = /named (\w+)\./.exec(opening)![1];
    assert.ok(name in WORLD_NAMES, `${name} should be a mapped name`);
    assert.ok(opening.startsWith("Once upon a time, there was a "));
  }
  assert.ok(new Set(a).size > 10, "openings vary with the seed");
});
