// Bad requests get the right 4xx with a clear OpenAI error body, and the server keeps serving.

import assert from "node:assert/strict";
import { encodeSafetensors } from "../../src/io/safetensors.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { adapterForm, call, complete, KEYS, startTestServer, upload } from "./_server.ts";

Deno.test({
  name: "bad requests: each the right status and message, and the server keeps serving",
  ignore: !requireStories260k("bad input"),
  fn: async () => {
    const t = await startTestServer({
      limits: { maxBodyBytes: 4096, maxAdapterBytes: 200_000, maxTokens: 300 },
    });
    try {
      const url = `${t.url}/v1/completions`;
      const key = KEYS.acme;
      const config = t.server.engine.config;
      const healthy = await complete(t.url, key, "stories260K");
      const expectError = async (
        what: string,
        reply: Promise<{ status: number; body: { error: Record<string, unknown> } }>,
        status: number,
        expected: { message: RegExp; type?: string; param?: string | null; code?: string | null },
      ) => {
        const r = await reply;
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        const e = r.body.error;
        assert.deepEqual(Object.keys(e).sort(), ["code", "message", "param", "type"], what);
        assert.match(e.message as string, expected.message, `${what}: ${e.message}`);
        if (expected.type) assert.equal(e.type, expected.type, what);
        if (expected.param !== undefined) assert.equal(e.param, expected.param, what);
        if (expected.code !== undefined) assert.equal(e.code, expected.code, what);
      };
      const post = (json: unknown) => call(url, { key, json });

      await expectError(
        "invalid JSON",
        call(url, { key, body: '{"model": ', headers: { "content-type": "application/json" } }),
        400,
        {
          message: /Invalid JSON in the request body/,
          type: "invalid_request_error",
        },
      );
      await expectError(
        "temperature as text",
        post({ model: "stories260K", prompt: "x", temperature: "hot" }),
        400,
        {
          message: /Invalid value for "temperature": .*number/,
          param: "temperature",
        },
      );
      await expectError(
        "negative max_tokens",
        post({ model: "stories260K", prompt: "x", max_tokens: -1 }),
        400,
        {
          message: /Invalid value for "max_tokens"/,
          param: "max_tokens",
        },
      );
      await expectError("prompt as an object", post({ model: "stories260K", prompt: { text: "x" } }), 400, {
        message: /"prompt": expected a string, a list of strings, a list of token ids/,
        param: "prompt",
      });
      await expectError("no model", post({ prompt: "x" }), 400, { message: /"model"/, param: "model" });
      await expectError(
        "chat without messages",
        call(`${t.url}/v1/chat/completions`, { key, json: { model: "stories260K" } }),
        400,
        {
          message: /"messages"/,
          param: "messages",
        },
      );
      await expectError("unknown model", post({ model: "gpt-4o", prompt: "x" }), 404, {
        message: /The model "gpt-4o" does not exist/,
        code: "model_not_found",
      });
      await expectError(
        "token id outside the vocabulary",
        post({ model: "stories260K", prompt: [1, 512] }),
        400,
        {
          message: /Invalid token id 512 in prompt 0: the vocabulary has ids 0 to 511/,
        },
      );
      await expectError(
        "prompt over the context",
        post({ model: "stories260K", prompt: new Array(600).fill(300) }),
        400,
        {
          message: /maximum context length is 512 tokens, but you requested 601 tokens \(600 in prompt 0/,
          code: "context_length_exceeded",
        },
      );
      await expectError(
        "prompt plus max_tokens over the context",
        post({ model: "stories260K", prompt: new Array(500).fill(300), max_tokens: 100 }),
        400,
        {
          message: /requested 600 tokens \(500 in prompt 0, 100 for the completion\)/,
          code: "context_length_exceeded",
        },
      );
      await expectError(
        "max_tokens over the server's cap",
        post({ model: "stories260K", prompt: "x", max_tokens: 301 }),
        400,
        {
          message: /max_tokens is 301, but this server's limit is 300/,
          param: "max_tokens",
        },
      );
      await expectError("echo", post({ model: "stories260K", prompt: "x", echo: true }), 400, {
        message: /echo is not supported/,
        code: "unsupported_parameter",
      });
      await expectError("oversize body", post({ model: "stories260K", prompt: "x".repeat(5000) }), 413, {
        message: /larger than the server's limit of 4096 bytes/,
        code: "request_too_large",
      });
      await expectError("unknown route", call(`${t.url}/v1/embeddings`, { key, json: {} }), 404, {
        message: /Unknown route POST \/v1\/embeddings/,
      });

      // adapter uploads
      const good = randomAdapterFiles(config, { seed: 1, rank: 2, modules: ["q_proj"] });
      const tensor = (name: string, dims: number[]) => ({
        name: `base_model.model.model.layers.0.self_attn.q_proj.${name}.weight`,
        dtype: "float32" as const,
        dims,
        data: new Uint8Array(dims[0] * dims[1] * 4),
      });
      const wrongShape = encodeSafetensors([tensor("lora_A", [2, 60]), tensor("lora_B", [64, 2])]);
      await expectError(
        "adapter with a wrong shape",
        upload(t.url, key, "bad", { ...good, weights: wrongShape }),
        400,
        {
          message:
            /Cannot load adapter "bad": tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[2, 60\], expected \[2, 64\]/,
          code: "invalid_adapter",
        },
      );
      const corrupt = good.weights.slice();
      new DataView(corrupt.buffer).setBigUint64(0, 10_000_000n, true); // a header length past the end
      await expectError(
        "corrupt safetensors",
        upload(t.url, key, "bad", { ...good, weights: corrupt }),
        400,
        {
          message: /bad\/adapter_model\.safetensors: header length \d+ runs past the end of the file/,
          code: "invalid_adapter",
        },
      );
      await expectError(
        "config that is not JSON",
        upload(t.url, key, "bad", { ...good, config: new TextEncoder().encode("{") }),
        400,
        {
          message: /adapter_config\.json is not valid JSON/,
        },
      );
      await expectError("invalid adapter name", upload(t.url, key, "../escape", good), 400, {
        message: /Invalid adapter name "\.\.\/escape"/,
        param: "name",
      });
      await expectError("adapter named like the base model", upload(t.url, key, "stories260K", good), 400, {
        message: /it is the base model's id/,
      });
      const noWeights = new FormData();
      noWeights.set("name", "x");
      noWeights.set(
        "adapter_config.json",
        new File([good.config as Uint8Array<ArrayBuffer>], "adapter_config.json"),
      );
      await expectError("missing file", call(`${t.url}/v1/adapters`, { key, body: noWeights }), 400, {
        message: /no file field "adapter_model\.safetensors"/,
        param: "adapter_model.safetensors",
      });
      await expectError("upload as JSON", call(`${t.url}/v1/adapters`, { key, json: { name: "x" } }), 400, {
        message: /Expected a multipart\/form-data upload/,
      });
      const big = randomAdapterFiles(config, {
        seed: 2,
        rank: 64,
        modules: ["gate_proj", "up_proj", "down_proj"],
      });
      await expectError(
        "oversize adapter",
        call(`${t.url}/v1/adapters`, { key, body: adapterForm("big", big) }),
        413,
        {
          message: /adapter upload is larger than the server's limit of 200000 bytes/,
        },
      );
      assert.deepEqual((await call(`${t.url}/v1/adapters`, { key })).body.data, [], "nothing bad was stored");

      // still serving, with the same answers
      assert.equal(await complete(t.url, key, "stories260K"), healthy);
      assert.equal((await call(`${t.url}/health`)).body.status, "ok");
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      assert.match(
        metrics,
        /weightlora_http_requests_total\{route="\/v1\/completions",method="POST",status="400"\} \d+/,
      );
      assert.match(
        metrics,
        /weightlora_http_requests_total\{route="unmatched",method="POST",status="404"\} 1/,
      );
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name:
    "per-tenant concurrency cap (429): another tenant is still served, the slot frees when the stream ends",
  ignore: !requireStories260k("concurrency"),
  fn: async () => {
    // generation runs in a worker, so the main thread answers other requests while a stream is running
    const t = await startTestServer({ workers: 1, limits: { maxConcurrentPerTenant: 1 } });
    try {
      const url = `${t.url}/v1/completions`;
      const small = { model: "stories260K", prompt: "x", max_tokens: 1 };
      // a long stream (16 choices × 500 tokens) holds acme's only slot
      const res = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.acme}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "stories260K",
          prompt: "Once",
          max_tokens: 500,
          n: 16,
          temperature: 0,
          stream: true,
        }),
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read(); // the stream is under way
      const busy = await call(url, { key: KEYS.acme, json: small });
      assert.equal(busy.status, 429);
      assert.equal(busy.body.error.type, "rate_limit_error");
      assert.match(busy.body.error.message, /Too many concurrent requests for tenant "acme": the limit is 1/);
      assert.equal((await call(url, { key: KEYS.beta, json: small })).status, 200);
      // the client goes away: the stream stops and the slot is free again
      await reader.cancel();
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await call(url, { key: KEYS.acme, json: small })).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, 200);
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name: "request timeout (504; a stream ends with an error event) and read-only store (403)",
  ignore: !requireStories260k("limits"),
  fn: async () => {
    const t = await startTestServer({ readOnly: true, limits: { requestTimeoutMs: 400 } });
    try {
      const url = `${t.url}/v1/completions`;
      // 16 choices × 500 tokens take well over the 400 ms deadline
      const long = { model: "stories260K", prompt: "Once", max_tokens: 500, n: 16, temperature: 0 };
      const res = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.acme}`, "content-type": "application/json" },
        body: JSON.stringify({ ...long, stream: true }),
      });
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /"code":"request_timeout"/);
      assert.ok(text.trimEnd().endsWith("data: [DONE]"));
      const timedOut = await call(url, { key: KEYS.acme, json: long });
      assert.equal(timedOut.status, 504);
      assert.match(timedOut.body.error.message, /longer than the server's limit of 0\.4 s/);
      assert.equal(
        (await call(url, { key: KEYS.acme, json: { model: "stories260K", prompt: "x", max_tokens: 1 } }))
          .status,
        200,
      );
      const files = randomAdapterFiles(t.server.engine.config, { seed: 1 });
      const refused = await upload(t.url, KEYS.acme, "story", files);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, "read_only_store");
      const del = await call(`${t.url}/v1/adapters/story`, { key: KEYS.acme, method: "DELETE" });
      assert.equal(del.status, 403);
    } finally {
      await t.close();
    }
  },
});
