import assert from "node:assert/strict";
import { BlobStore } from "../../src/store/blob_store.ts";

async function* chunksOf(bytes: Uint8Array, size: number, failAt?: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) {
    if (failAt !== undefined && at >= failAt) throw new Error("client went away");
    yield bytes.subarray(at, at + size);
  }
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      for await (const f of Deno.readDir(`${dir}/${e.name}`)) out.push(`${e.name}/${f.name}`);
    }
  }
  return out.sort();
}

Deno.test("blob store: streamed, content-addressed round trip; a failed or oversize stream leaves nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "blobs_" });
  const blobs = new BlobStore(`${dir}/b`);
  try {
    const data = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 2654435761) >>> 24);
    const staged = await blobs.stage(chunksOf(data, 65_536));
    assert.equal(staged.bytes, data.length);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    assert.equal(staged.sha256, [...digest].map((b) => b.toString(16).padStart(2, "0")).join(""));
    await blobs.commit(staged);
    assert.deepEqual(await blobs.read(staged.sha256, data.length), data);
    await assert.rejects(blobs.read(staged.sha256, 5), /has 300000 bytes, expected 5/);
    assert.deepEqual(await files(`${dir}/b`), [`${staged.sha256.slice(0, 2)}/${staged.sha256}`]);

    await assert.rejects(blobs.stage(chunksOf(data, 65_536, 100_000)), /client went away/);
    await assert.rejects(
      blobs.stage(chunksOf(data, 65_536), { maxBytes: 100_000 }),
      /larger than 100000 bytes/,
    );
    assert.deepEqual(
      await files(`${dir}/b`),
      [`${staged.sha256.slice(0, 2)}/${staged.sha256}`],
      "no partial file",
    );

    // leftovers of a kill: a staging file and an unreferenced blob; sweep keeps only what rows reference
    const leftover = await blobs.stage(chunksOf(new Uint8Array([1, 2, 3]), 2));
    const orphan = await blobs.put(new Uint8Array([4, 5]));
    assert.equal(await blobs.sweep(new Set([staged.sha256])), 2);
    assert.deepEqual(await files(`${dir}/b`), [`${staged.sha256.slice(0, 2)}/${staged.sha256}`]);
    await assert.rejects(Deno.stat(leftover.path), Deno.errors.NotFound);
    await assert.rejects(blobs.read(orphan), /Cannot read blob/);
    assert.throws(() => blobs.pathOf("../x"), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
