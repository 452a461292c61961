// A prompt that cannot fit the context is refused before it is encoded (a 1 MB prompt costs nothing),
// and a prompt under the byte bound that still has too many tokens gets the token-count refusal.

import assert from "node:assert/strict";
import { promptByteLimit } from "../../src/http/_generation.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { call, KEYS, startTestServer } from "./_server.ts";

Deno.test({
  name: "prompts: over the byte bound refused with 400 before encoding; under it, by token count",
  ignore: !requireStories260k("prompt size"),
  fn: async () => {
    const test = await startTestServer();
    try {
      const engine = test.server.engine;
      const limit = promptByteLimit(engine);
      assert.equal(limit, 512 * 9 * 2, "context × longest piece (▁friend, 9 bytes) × 2");
      let encoded = 0;
      const tokenizer = engine.tokenizer as { encode: (...args: unknown[]) => number[] };
      const encode = tokenizer.encode.bind(tokenizer);
      tokenizer.encode = (...args: unknown[]) => {
        encoded++;
        return encode(...args);
      };
      const url = `${test.url}/v1/completions`;
      const huge = "Once upon a time. ".repeat(55_000); // ~1 MB, under the 1 MiB body limit
      const started = performance.now();
      const reply = await call(url, {
        key: KEYS.acme,
        json: { model: "stories260K", prompt: huge, max_tokens: 4 },
      });
      const ms = performance.now() - started;
      assert.equal(reply.status, 400, JSON.stringify(reply.body));
      assert.equal(reply.body.error.code, "context_length_exceeded");
      assert.equal(reply.body.error.param, "prompt");
      assert.match(
        reply.body.error.message,
        /maximum context length is 512 tokens, but prompt has over \d+ bytes/,
      );
      assert.equal(encoded, 0, "the huge prompt was never encoded");
      // a list: the second prompt is too long, so none is encoded
      const list = await call(url, {
        key: KEYS.acme,
        json: { model: "stories260K", prompt: ["Once", "é".repeat(limit / 2 + 1)], max_tokens: 4 },
      });
      assert.equal(list.status, 400);
      assert.equal(list.body.error.param, "prompt[1]");
      assert.equal(encoded, 0);
      // chat: every message counts, before the template is rendered
      const chat = await call(`${test.url}/v1/chat/completions`, {
        key: KEYS.acme,
        json: { model: "stories260K", messages: [{ role: "user", content: huge.slice(0, limit + 1) }] },
      });
      assert.equal(chat.status, 400);
      assert.equal(chat.body.error.param, "messages");
      assert.equal(encoded, 0);
      // under the bound but over the context in tokens: encoded, then refused by token count
      const long = await call(url, {
        key: KEYS.acme,
        json: { model: "stories260K", prompt: "a b ".repeat(1000), max_tokens: 4 },
      });
      assert.equal(long.status, 400);
      assert.match(long.body.error.message, /you requested \d+ tokens/);
      assert.equal(encoded, 1);
      const ok = await call(url, {
        key: KEYS.acme,
        json: { model: "stories260K", prompt: "Once", max_tokens: 2 },
      });
      assert.equal(ok.status, 200);
      console.log(`1 MB prompt refused in ${ms.toFixed(0)} ms`);
    } finally {
      await test.close();
    }
  },
});
