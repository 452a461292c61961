import assert from "node:assert/strict";
import { encodeTar } from "../../src/io/tar.ts";
import { readTar } from "../_util/tar.ts";

Deno.test("encodeTar writes ustar archives that tar and our reader read back byte for byte", async () => {
  const config = new TextEncoder().encode('{"peft_type": "LORA"}');
  const weights = crypto.getRandomValues(new Uint8Array(1537));
  const tar = encodeTar([
    { name: "adapter_config.json", data: config, mtime: 1_700_000_000 },
    { name: "adapter_model.safetensors", data: weights },
    { name: "empty", data: new Uint8Array() },
  ]);
  assert.equal(tar.length % 512, 0);
  const files = readTar(tar);
  assert.deepEqual([...files.keys()], ["adapter_config.json", "adapter_model.safetensors", "empty"]);
  assert.deepEqual(files.get("adapter_config.json"), config);
  assert.deepEqual(files.get("adapter_model.safetensors"), weights);
  assert.equal(files.get("empty")!.length, 0);

  // the system's tar lists the same files with their sizes
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.tar`, tar);
    const out = await new Deno.Command("tar", { args: ["-tvf", `${dir}/a.tar`], stdout: "piped" }).output();
    assert.ok(out.success);
    const listing = new TextDecoder().decode(out.stdout);
    assert.match(listing, /-rw-r--r-- .* 21 .*adapter_config\.json/);
    assert.match(listing, /-rw-r--r-- .* 1537 .*adapter_model\.safetensors/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeTar refuses absolute, parent and over-long names", () => {
  const data = new Uint8Array(1);
  assert.throws(() => encodeTar([{ name: "/etc/passwd", data }]), /use a relative path/);
  assert.throws(() => encodeTar([{ name: "a/../../b", data }]), /use a relative path/);
  assert.throws(() => encodeTar([{ name: "x".repeat(101), data }]), /longer than 100 bytes/);
});
