import assert from "node:assert/strict";
import { parseLlama2cTokenizer } from "../../src/io/llama2c.ts";
import {
  type ScoredVocab,
  sentencePieceMerges,
  sentencePieceTokenizerConfig,
  sentencePieceTokenizerJson,
} from "../../src/io/sentencepiece_bpe.ts";
import { createTokenizer } from "../../src/io/tokenizer.ts";
import { llama2cEncode, readLlama2cVocab } from "./_llama2c_reference.ts";
import { requireStories260k, stories } from "./_helpers.ts";

const HAVE = requireStories260k("sentencepiece_bpe_test");

/** Strings covering ASCII, punctuation, runs of spaces, newlines and non-ASCII (byte fallback). */
const SAMPLES = [
  "Once upon a time, there was a little girl named Lily.",
  "She loved to play outside in the park. One day, she saw a big, red ball!",
  "Hello world",
  "hello   world  ",
  "  leading spaces",
  "a\nb\n\nc",
  "Tab\there",
  "\"Quotes\" and 'apostrophes' — dashes… (parens) [brackets] {braces} <angles> |pipes| ~tilde~",
  "1234567890 + 3.14 = 42%",
  "Café crème brûlée à la mode, naïve façade",
  "你好，世界",
  "emoji 😀🎉👩‍👩‍👧 done",
  "Ünïcödé ∑ ∞ ≠ ≤ €100 ™",
  "The dog's bone wasn't there; they'd gone.",
  " ",
  "   ",
  "x",
  "",
  'Tom and Tim went to the store. They bought a toy car and a red balloon. "Thank you, mom!" said Tom.',
];

Deno.test({
  name: "tokenizer.json built from tok512.bin encodes exactly like llama2.c's own encoder",
  ignore: !HAVE,
  fn: async () => {
    const bytes = await Deno.readFile(stories().tok);
    const reference = readLlama2cVocab(bytes, 512);
    const vocab = parseLlama2cTokenizer(bytes, { vocabSize: 512 });
    const tok = createTokenizer(sentencePieceTokenizerJson(vocab), {
      config: sentencePieceTokenizerConfig(vocab, { modelMaxLength: 512 }),
    });
    assert.equal(tok.addBosByDefault, true);
    for (const text of SAMPLES) {
      const expected = llama2cEncode(reference, text, { bos: true, eos: false });
      assert.deepEqual(tok.encode(text), expected, JSON.stringify(text));
      assert.deepEqual(tok.encode(text, { addBos: false }), expected.slice(1));
      assert.equal(tok.decode(expected, { skipSpecialTokens: true }), text, `decode ${JSON.stringify(text)}`);
    }
    // Byte fallback really happens for the CJK text and the emoji.
    const [space, ...cjk] = tok.encode("你好", { addBos: false });
    assert.equal(tok.idToToken(space), "\u2581");
    assert.deepEqual(
      cjk,
      [0xe4, 0xbd, 0xa0, 0xe5, 0xa5, 0xbd].map((b) => b + 3),
      "UTF-8 bytes of 你好 as <0xNN>",
    );
    // A long text of random words from the vocabulary, with punctuation and newlines.
    const words = reference.vocab.slice(259).map((w) => w.trim()).filter((w) => w.length > 0);
    let seed = 11;
    const pick = () => words[(seed = (seed * 1103515245 + 12345) % 2147483648) % words.length];
    const long = Array.from(
      { length: 400 },
      (_, i) => pick() + (i % 17 === 0 ? ".\n" : i % 5 === 0 ? ", " : " "),
    ).join("");
    assert.deepEqual(tok.encode(long), llama2cEncode(reference, long, { bos: true, eos: false }));
  },
});

Deno.test("merges are ordered by the merged piece's score, then its id, then the parts' ids", () => {
  const vocab: ScoredVocab = {
    pieces: ["<unk>", "a", "b", "c", "ab", "bc", "abc", "<0x41>", "<s>"],
    scores: [0, -10, -11, -12, -2, -1, -3, 0, 0],
    types: ["unknown", "normal", "normal", "normal", "normal", "normal", "normal", "byte", "control"],
    unkId: 0,
  };
  assert.deepEqual(sentencePieceMerges(vocab), [["b", "c"], ["a", "b"], ["a", "bc"], ["ab", "c"]]);
});

Deno.test("tokenizer.json layout: byte-fallback BPE, ▁ normalizer, SentencePiece decoder, BOS template", () => {
  const vocab: ScoredVocab = {
    pieces: ["<unk>", "<s>", "</s>", "<0x0A>", "\u2581", "h", "i", "\u2581h", "hi", "\u2581hi"],
    scores: [0, 0, 0, 0, -1, -2, -3, -4, -5, -6],
    types: [
      "unknown",
      "control",
      "control",
      "byte",
      "normal",
      "normal",
      "normal",
      "normal",
      "normal",
      "normal",
    ],
    unkId: 0,
    bosId: 1,
    eosId: 2,
  };
  const json = sentencePieceTokenizerJson(vocab);
  const model = json.model as Record<string, unknown>;
  assert.equal(model.type, "BPE");
  assert.equal(model.byte_fallback, true);
  assert.equal((model.vocab as Record<string, number>)["\u2581hi"], 9);
  assert.deepEqual(model.merges, [["\u2581", "h"], ["h", "i"], ["\u2581", "hi"], ["\u2581h", "i"]]);
  assert.deepEqual((json.added_tokens as { content: string }[]).map((t) => t.content), [
    "<unk>",
    "<s>",
    "</s>",
  ]);
  const tok = createTokenizer(json, { config: sentencePieceTokenizerConfig(vocab, { modelMaxLength: 8 }) });
  assert.deepEqual(tok.encode("hi\nhi"), [1, 9, 3, 8]);
  assert.equal(tok.decode([1, 9, 3, 8], { skipSpecialTokens: true }), "hi\nhi");
  assert.equal(tok.decode([1, 9, 2]), "<s> hi</s>");
  const config = sentencePieceTokenizerConfig(vocab, { modelMaxLength: 8, chatTemplate: "{{ x }}" });
  assert.deepEqual(
    [config.bos_token, config.eos_token, config.unk_token, config.model_max_length, config.chat_template],
    ["<s>", "</s>", "<unk>", 8, "{{ x }}"],
  );
  assert.throws(
    () => sentencePieceTokenizerJson({ ...vocab, pieces: [...vocab.pieces.slice(0, 9), "h"] }),
    /piece "h" appears at ids 5 and 9/,
  );
});
