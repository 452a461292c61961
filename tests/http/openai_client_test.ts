// The official `openai` npm client, unmodified, against the server over loopback HTTP.

import assert from "node:assert/strict";
import OpenAI from "openai";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { KEYS, startTestServer, upload } from "./_server.ts";

Deno.test({
  name: "the openai client lists models and completes, chats and streams with a tenant adapter",
  ignore: !requireStories260k("openai client"),
  fn: async () => {
    const t = await startTestServer();
    try {
      const config = t.server.engine.config;
      assert.equal(
        (await upload(t.url, KEYS.acme, "story", randomAdapterFiles(config, { seed: 1, scale: 0.15 })))
          .status,
        201,
      );
      const client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${t.url}/v1`, maxRetries: 0 });

      const models = [];
      for await (const m of client.models.list()) models.push(m.id);
      assert.deepEqual(models, ["stories260K", "story"]);
      assert.equal((await client.models.retrieve("story")).owned_by, "acme");

      // completions, base and adapter, plain and streamed
      const ask = { prompt: "Once upon a time", max_tokens: 24, temperature: 0 };
      const base = await client.completions.create({ model: "stories260K", ...ask });
      assert.ok(
        base.choices[0].text.startsWith(", there was a little girl named Lily"),
        base.choices[0].text,
      );
      assert.equal(base.choices[0].finish_reason, "length");
      assert.deepEqual(base.usage, { prompt_tokens: 5, completion_tokens: 24, total_tokens: 29 });
      const tuned = await client.completions.create({ model: "story", ...ask });
      assert.notEqual(tuned.choices[0].text, base.choices[0].text, "the adapter changes the text");
      assert.equal(tuned.model, "story");
      let streamed = "";
      let usage: OpenAI.CompletionUsage | undefined;
      const stream = await client.completions.create({
        model: "story",
        ...ask,
        stream: true,
        stream_options: { include_usage: true },
      });
      for await (const chunk of stream) {
        streamed += chunk.choices[0]?.text ?? "";
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(streamed, tuned.choices[0].text);
      assert.deepEqual(usage, tuned.usage);

      // chat completions (the model has no chat template: the documented default is used)
      const messages = [{ role: "user" as const, content: "Tell me a story about a cat." }];
      const chat = await client.chat.completions.create({
        model: "story",
        messages,
        max_tokens: 20,
        temperature: 0,
      });
      assert.equal(chat.object, "chat.completion");
      assert.equal(chat.choices[0].message.role, "assistant");
      assert.ok(chat.choices[0].message.content!.length > 0);
      assert.ok(chat.usage!.prompt_tokens > 5);
      let chatStreamed = "";
      const chatStream = await client.chat.completions.create({
        model: "story",
        messages,
        max_tokens: 20,
        temperature: 0,
        stream: true,
      });
      let finish: string | null = null;
      for await (const chunk of chatStream) {
        chatStreamed += chunk.choices[0]?.delta?.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(chatStreamed, chat.choices[0].message.content);
      assert.equal(finish, chat.choices[0].finish_reason);

      // several choices, seeds, log-probabilities
      const multi = await client.completions.create({
        model: "stories260K",
        prompt: ["Once upon a time", "The dog"],
        max_tokens: 8,
        n: 2,
        temperature: 1,
        seed: 42,
        logprobs: 2,
      });
      assert.deepEqual(multi.choices.map((c) => c.index), [0, 1, 2, 3]);
      assert.equal(multi.choices[0].logprobs!.tokens!.length, 8);
      assert.equal(Object.keys(multi.choices[0].logprobs!.top_logprobs![0]).length, 2);
      const again = await client.completions.create({
        model: "stories260K",
        prompt: ["Once upon a time", "The dog"],
        max_tokens: 8,
        n: 2,
        temperature: 1,
        seed: 42,
      });
      assert.deepEqual(
        again.choices.map((c) => c.text),
        multi.choices.map((c) => c.text),
        "same seed, same text",
      );
      const lp = await client.chat.completions.create({
        model: "stories260K",
        messages,
        max_tokens: 4,
        temperature: 0,
        logprobs: true,
        top_logprobs: 2,
      });
      assert.equal(lp.choices[0].logprobs!.content!.length, 4);
      assert.equal(lp.choices[0].logprobs!.content![0].top_logprobs.length, 2);

      // errors come back as the client's own exception classes
      await assert.rejects(
        client.completions.create({ model: "nope", prompt: "x" }),
        (e: unknown) => e instanceof OpenAI.NotFoundError && /model "nope" does not exist/.test(e.message),
      );
      const stranger = new OpenAI({ apiKey: "sk-wrong-0000000000", baseURL: `${t.url}/v1`, maxRetries: 0 });
      await assert.rejects(stranger.models.list(), OpenAI.AuthenticationError);
    } finally {
      await t.close();
    }
  },
});
