import assert from "node:assert/strict";
import { createTokenizer, loadTokenizer, specialTokenText } from "../../src/io/tokenizer.ts";
import { parseLlama2cTokenizer } from "../../src/io/llama2c.ts";
import { sentencePieceTokenizerConfig, sentencePieceTokenizerJson } from "../../src/io/sentencepiece_bpe.ts";
import { requireStories260k, stories, withTempDir, writeJson } from "./_helpers.ts";

const HAVE = requireStories260k("tokenizer_test");

/** GPT-2's byte → printable character table (byte-level BPE). */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return table;
}

/** A Llama-3-style byte-level BPE tokenizer: 256 byte symbols, two merges, BOS/EOT added tokens. */
function byteLevelTokenizer(): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const table = bytesToUnicode();
  const vocab: Record<string, number> = {};
  table.forEach((c, b) => (vocab[c] = b));
  vocab["he"] = 256;
  vocab["hel"] = 257;
  const added = [
    { id: 258, content: "<|begin_of_text|>" },
    { id: 259, content: "<|eot_id|>" },
  ].map((t) => ({
    ...t,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  return {
    json: {
      version: "1.0",
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, {
          Sequence: { id: "A", type_id: 0 },
        }],
        pair: [],
        special_tokens: {
          "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [258], tokens: ["<|begin_of_text|>"] },
        },
      },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        vocab,
        merges: [["h", "e"], ["he", "l"]],
        byte_fallback: false,
        ignore_merges: true,
      },
    },
    config: {
      bos_token: "<|begin_of_text|>",
      eos_token: { content: "<|eot_id|>", special: true },
      clean_up_tokenization_spaces: false,
    },
  };
}

/** Feeds ids one by one, returning every push's output and the flush. */
function stream(tok: ReturnType<typeof createTokenizer>, ids: number[], skipSpecialTokens = false): string[] {
  const d = tok.createStreamDecoder({ skipSpecialTokens });
  const out = ids.map((id) => d.push(id));
  out.push(d.flush());
  return out;
}

Deno.test("byte-level BPE: BOS from the post-processor, EOS from tokenizer_config, special tokens in text", () => {
  const { json, config } = byteLevelTokenizer();
  const tok = createTokenizer(json, { config, eosIds: [7] });
  assert.equal(tok.vocabSize, 260);
  assert.equal(tok.bosId, 258);
  assert.deepEqual([...tok.eosIds].sort((a, b) => a - b), [7, 259]);
  assert.equal(tok.addBosByDefault, true, "TemplateProcessing adds BOS, so encode does by default");
  const hello = tok.encode("hello");
  assert.deepEqual(hello, [258, 257, 108, 111]);
  assert.deepEqual(tok.encode("hello", { addBos: false }), [257, 108, 111]);
  assert.deepEqual(
    tok.encode("hi<|eot_id|>", { addBos: false }),
    [104, 105, 259],
    "special-token text maps to its id",
  );
  assert.equal(tok.decode(hello), "<|begin_of_text|>hello");
  assert.equal(tok.decode(hello, { skipSpecialTokens: true }), "hello");
  assert.equal(tok.decode([]), "");
  assert.equal(tok.idToToken(256), "he");
  assert.equal(tok.tokenToId("<|eot_id|>"), 259);
  assert.throws(() => tok.decode([1, 999]), /Cannot decode token id 999: the vocabulary has 260 ids/);
});

Deno.test("stream decoding holds back incomplete UTF-8 and matches a full decode (byte-level)", () => {
  const { json, config } = byteLevelTokenizer();
  const tok = createTokenizer(json, { config });
  const text = "hello é 😀 你好!";
  const ids = tok.encode(text, { addBos: false });
  assert.equal(
    ids.length,
    new TextEncoder().encode(text).length - 2,
    "one token per byte except the 'hel' merge",
  );
  const pieces = stream(tok, ids);
  assert.equal(pieces.join(""), text);
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")), JSON.stringify(pieces));
  // The emoji's four byte tokens: nothing until the last one completes the character.
  const emojiStart = new TextEncoder().encode("hello é ").length - 2;
  assert.deepEqual(pieces.slice(emojiStart, emojiStart + 4), ["", "", "", "😀"]);
  // A truncated character is flushed as U+FFFD at the end.
  const cut = tok.encode("a😀", { addBos: false }).slice(0, 3);
  assert.deepEqual(stream(tok, cut), ["a", "", "", "\uFFFD"]);
});

Deno.test({
  name: "stream decoding of SentencePiece byte fallback keeps spaces and multi-byte characters intact",
  ignore: !HAVE,
  fn: async () => {
    const vocab = parseLlama2cTokenizer(await Deno.readFile(stories().tok), { vocabSize: 512 });
    const tok = createTokenizer(sentencePieceTokenizerJson(vocab), {
      config: sentencePieceTokenizerConfig(vocab, { modelMaxLength: 512 }),
    });
    for (const text of ["Once upon a time, 你好 there was 😀.", "  two leading spaces\nnew line", "é"]) {
      const ids = tok.encode(text);
      const pieces = stream(tok, ids, true);
      assert.equal(pieces.join(""), text, JSON.stringify(text));
      assert.equal(pieces.join(""), tok.decode(ids, { skipSpecialTokens: true }));
      assert.ok(pieces.every((p) => !p.includes("\uFFFD")), JSON.stringify(pieces));
    }
    // "a 你" is "▁a", "▁", then 你's three byte tokens: silent until the last byte completes it.
    const ids = tok.encode("a 你", { addBos: false });
    assert.deepEqual(ids.map((id) => tok.idToToken(id)), ["\u2581a", "\u2581", "<0xE4>", "<0xBD>", "<0xA0>"]);
    assert.deepEqual(stream(tok, ids), ["a", " ", "", "", "你", ""]);
  },
});

Deno.test("loadTokenizer reads tokenizer.json and tokenizer_config.json; errors name the file", async () => {
  await withTempDir(async (dir) => {
    const { json, config } = byteLevelTokenizer();
    await assert.rejects(loadTokenizer(dir), /Cannot read .*tokenizer\.json: the file does not exist/);
    await writeJson(`${dir}/tokenizer.json`, json);
    const noConfig = await loadTokenizer(dir);
    assert.equal(noConfig.bosId, undefined, "no tokenizer_config.json: no BOS known");
    assert.equal(noConfig.addBosByDefault, false);
    await writeJson(`${dir}/tokenizer_config.json`, { ...config, add_bos_token: false });
    const tok = await loadTokenizer(dir, { bosId: 258 });
    assert.equal(tok.addBosByDefault, false, "an explicit add_bos_token wins over the post-processor");
    assert.deepEqual(tok.encode("hel"), [257]);
    await writeJson(`${dir}/tokenizer_config.json`, { bos_token: "<nope>" });
    await assert.rejects(
      loadTokenizer(dir),
      /tokenizer_config\.json's bos_token "<nope>" is not in the vocabulary/,
    );
    await writeJson(`${dir}/tokenizer.json`, { ...json, model: { type: "Mystery" } });
    await writeJson(`${dir}/tokenizer_config.json`, {});
    await assert.rejects(
      loadTokenizer(dir),
      /Cannot load tokenizer .*tokenizer\.json: Unknown TokenizerModel type: Mystery/,
    );
  });
  assert.equal(specialTokenText({ content: "<s>", lstrip: false }), "<s>");
  assert.equal(specialTokenText(null), undefined);
});
