// The synthetic vocabulary and random llama2.c checkpoint of the peers bench (bench/_peer_models.ts).

import assert from "node:assert/strict";
import { syntheticPieces, writeRandomLlama2c, writeSyntheticTokenizer } from "../../bench/_peer_models.ts";
import { STORIES15M_SHAPE } from "../../bench/_models.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "../../src/io/llama2c.ts";
import {
  sentencePieceMerges,
  sentencePieceTokenizerConfig,
  sentencePieceTokenizerJson,
} from "../../src/io/sentencepiece_bpe.ts";
import { createTokenizer } from "../../src/io/tokenizer.ts";

Deno.test("the synthetic vocabulary: unique pieces, each past the letters a merge of two others; text round-trips", async () => {
  const pieces = syntheticPieces(32000);
  assert.equal(pieces.length, 32000);
  assert.equal(new Set(pieces).size, 32000);
  assert.deepEqual(pieces.slice(0, 4), ["<unk>", "\n<s>\n", "\n</s>\n", "<0x00>"]);
  const tmp = await Deno.makeTempFile({ prefix: "synthetic_tok_" });
  try {
    await writeSyntheticTokenizer(tmp, 32000);
    const vocab = parseLlama2cTokenizer(await Deno.readFile(tmp), { vocabSize: 32000 });
    assert.equal(vocab.pieces[259], "▁");
    // every normal piece of two or more characters splits into two pieces: 32000 - 259 - 1 - 52 merges at least
    assert.ok(sentencePieceMerges(vocab).length >= 32000 - 259 - 1 - 52);
    const tokenizer = createTokenizer(sentencePieceTokenizerJson(vocab), {
      config: sentencePieceTokenizerConfig(vocab, { modelMaxLength: 512 }),
    });
    const ids = tokenizer.encode("Once upon a time");
    assert.equal(ids[0], 1);
    assert.ok(ids.length <= 8, `"Once upon a time" took ${ids.length} tokens`);
    assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), "Once upon a time");
  } finally {
    await Deno.remove(tmp);
  }
});

Deno.test("the random llama2.c checkpoint has stories15M's shape and a 512-token context", async () => {
  const tmp = await Deno.makeTempFile({ prefix: "random15m_" });
  try {
    await writeRandomLlama2c(tmp, { seed: 1 });
    const { config, weights } = parseLlama2cCheckpoint(await Deno.readFile(tmp));
    assert.deepEqual(
      { ...config, maxPositionEmbeddings: STORIES15M_SHAPE.maxPositionEmbeddings },
      { ...STORIES15M_SHAPE, bosTokenId: config.bosTokenId, eosTokenIds: config.eosTokenIds },
    );
    assert.equal(config.maxPositionEmbeddings, 512);
    const norm = new Float32Array(weights.get("model.norm.weight")!.data.slice().buffer);
    assert.ok(norm.every((x) => x >= 0.9 && x <= 1.1));
    const embed = new Float32Array(weights.get("model.embed_tokens.weight")!.data.slice().buffer, 0, 1000);
    assert.ok(embed.every((x) => Math.abs(x) <= 0.1) && embed.some((x) => x !== 0));
  } finally {
    await Deno.remove(tmp);
  }
});
