import assert from "node:assert/strict";
import { multipartBoundary, MultipartError, partBytes, readMultipart } from "../../src/http/_multipart.ts";

async function encode(form: FormData): Promise<{ bytes: Uint8Array; type: string }> {
  const req = new Request("http://x/", { method: "POST", body: form });
  return { bytes: new Uint8Array(await req.arrayBuffer()), type: req.headers.get("content-type")! };
}

function streamOf(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      const n = sizes[i++ % sizes.length];
      controller.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

Deno.test("multipart reader: the parts of a form, whatever the chunking", async () => {
  const big = Uint8Array.from({ length: 200_003 }, (_, i) => (i * 2654435761) >>> 24);
  big.set(new TextEncoder().encode("\r\n--"), 1000); // a near-boundary inside the data
  const form = new FormData();
  form.set("name", "story");
  form.set("adapter_config.json", new File(['{"r": 4}'], "adapter_config.json"));
  form.set("adapter_model.safetensors", new File([big], "adapter_model.safetensors"));
  const { bytes, type } = await encode(form);
  const boundary = multipartBoundary(type)!;
  assert.ok(boundary);
  for (const sizes of [[bytes.length], [1], [7, 3, 65_536], [4096]]) {
    const parts: { name: string; filename?: string; bytes: Uint8Array }[] = [];
    for await (const part of readMultipart(streamOf(bytes, sizes), boundary)) {
      parts.push({ name: part.name, filename: part.filename, bytes: await partBytes(part, 1 << 20) });
    }
    assert.deepEqual(parts.map((p) => [p.name, p.filename]), [
      ["name", undefined],
      ["adapter_config.json", "adapter_config.json"],
      ["adapter_model.safetensors", "adapter_model.safetensors"],
    ]);
    assert.equal(new TextDecoder().decode(parts[0].bytes), "story");
    assert.deepEqual(parts[2].bytes, big, `chunks ${sizes}`);
  }
  // a part not read is skipped
  const names = [];
  for await (const part of readMultipart(streamOf(bytes, [999]), boundary)) names.push(part.name);
  assert.deepEqual(names, ["name", "adapter_config.json", "adapter_model.safetensors"]);
  // truncated bodies and oversize fields are errors
  await assert.rejects(async () => {
    for await (const part of readMultipart(streamOf(bytes.slice(0, 5000), [4096]), boundary)) {
      await partBytes(part, 1 << 20);
    }
  }, MultipartError);
  await assert.rejects(async () => {
    for await (const part of readMultipart(streamOf(bytes, [4096]), boundary)) await partBytes(part, 10);
  }, /larger than 10 bytes/);
});
