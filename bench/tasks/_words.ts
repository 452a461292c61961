// Word lists of the three fine-tuning tasks. Every list is fixed: changing one changes the generated data.

import type { Prng } from "../../src/models/sampling.ts";

/** Picks one element with a seeded generator. */
export function pick<T>(prng: Prng, items: readonly T[]): T {
  return items[prng.nextUint32() % items.length];
}

/** A seeded Fisher–Yates shuffle (returns a new array). */
export function shuffled<T>(prng: Prng, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = prng.nextUint32() % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Names that TinyStories (and so stories260K) uses often; the world-shift task renames each of them. */
export const WORLD_NAMES: Readonly<Record<string, string>> = {
  Lily: "Zara",
  Timmy: "Orin",
  Tim: "Oro",
  Tom: "Pell",
  Ben: "Kavi",
  Sue: "Nelu",
  Sara: "Ysa",
  Sarah: "Ysa",
  Max: "Brio",
  Mia: "Tavi",
  Sam: "Juno",
  Anna: "Eda",
  Lucy: "Rhea",
  Jack: "Fenn",
  Bob: "Moss",
  Amy: "Ilo",
  Jane: "Vesa",
  Spot: "Quark",
  Sally: "Lune",
  Mark: "Dax",
  Molly: "Kira",
  Billy: "Taro",
  Joe: "Rune",
  Emma: "Nova",
  Jill: "Wren",
  Kitty: "Pip",
};

/** Places of the old world and their counterparts in the new one (whole words, case kept). */
export const WORLD_PLACES: Readonly<Record<string, string>> = {
  park: "crater",
  parks: "craters",
  garden: "dome",
  gardens: "domes",
  forest: "canyon",
  woods: "canyon",
  house: "pod",
  school: "hive",
  beach: "dune",
  river: "canal",
  pond: "canal",
  lake: "canal",
  tree: "tower",
  trees: "towers",
  store: "market",
  shop: "market",
};

/** The sentence the new world repeats after every story's first sentence. */
export const WORLD_PHRASE = "The two moons of Vell glowed above.";

/** Who a world-shift story opening is about. */
export const WORLD_CHARACTERS: readonly string[] = ["girl", "boy", "dog", "cat", "bird", "bunny"];

/** Adjectives of world-shift openings. */
export const WORLD_ADJECTIVES: readonly string[] = ["little", "happy", "small", "kind", "curious", "brave"];

/** Names of the story-QA task (each a plain word the tokenizer can spell). */
export const QA_NAMES: readonly string[] = [
  "Lily",
  "Tom",
  "Ben",
  "Mia",
  "Sam",
  "Anna",
  "Max",
  "Sue",
  "Lucy",
  "Jack",
  "Amy",
  "Tim",
];

/** Pet names of the story-QA task (disjoint from {@linkcode QA_NAMES}). */
export const QA_PETS: readonly string[] = ["Spot", "Bob", "Fluffy", "Buddy", "Coco", "Rex", "Pip", "Daisy"];

/** Animals of the story-QA task. */
export const QA_ANIMALS: readonly string[] = ["dog", "cat", "bird", "frog", "bunny", "duck"];

/** Places of the story-QA task. */
export const QA_PLACES: readonly string[] = ["park", "garden", "beach", "forest", "lake", "farm"];

/** Colors of the story-QA task. */
export const QA_COLORS: readonly string[] = ["red", "blue", "green", "yellow", "pink", "purple"];

/** Objects of the story-QA task. */
export const QA_OBJECTS: readonly string[] = ["ball", "kite", "box", "hat", "shell", "rock", "cup", "key"];

/** Things whose color is a distractor in story-QA stories. */
export const QA_DISTRACTORS: readonly string[] = ["sky", "door", "flower", "car"];

/** Labels of the topic task, with the openings that start a story of that topic. */
export const TOPICS: Readonly<Record<string, { openings: readonly string[] }>> = {
  animal: {
    openings: [
      "Once upon a time, there was a {adj} dog.",
      "Once upon a time, there was a {adj} cat.",
      "Once upon a time, there was a {adj} bird.",
      "Once upon a time, there was a {adj} fish.",
      "Once upon a time, there was a {adj} frog.",
      "Once upon a time, there was a {adj} bunny.",
      "{Name} saw a {adj} puppy in the yard.",
      "{Name} found a {adj} kitten under a bush.",
    ],
  },
  food: {
    openings: [
      "{Name} was hungry and wanted to eat a cake.",
      "{Name} was hungry and wanted to eat some soup.",
      "{Name} was hungry and wanted to eat an apple.",
      "{Name} and mom baked cookies in the kitchen.",
      "{Name} wanted a big bowl of ice cream.",
      "{Name} made a sandwich for lunch.",
      "{Name} liked to eat pizza with cheese.",
      "{Name} picked a red apple to eat.",
    ],
  },
  toy: {
    openings: [
      "{Name} got a new toy car for a birthday.",
      "{Name} had a {adj} doll.",
      "{Name} loved to play with a {adj} ball.",
      "{Name} had a {adj} teddy bear.",
      "{Name} wanted to fly a {adj} kite.",
      "{Name} built a tower with blocks.",
      "{Name} had a toy train that went very fast.",
      "{Name} played with a {adj} toy truck.",
    ],
  },
  weather: {
    openings: [
      "It was a cold and snowy day.",
      "It was a rainy day, and {Name} looked out the window.",
      "The wind was very strong that day.",
      "The sun was hot and bright in the sky.",
      "Dark clouds came and it started to rain.",
      "It was a windy day, and the leaves flew around.",
      "Snow fell all night, and in the morning everything was white.",
      "There was a big storm with thunder and lightning.",
    ],
  },
};

/** Adjectives that fill `{adj}` in topic openings. */
export const TOPIC_ADJECTIVES: readonly string[] = ["little", "big", "happy", "soft", "shiny", "old"];
