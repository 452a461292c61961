// Reads an uncompressed tar archive (regular files only) for tests, independently of src/io/tar.ts.

/**
 * The files of a tar archive by name.
 *
 * @param bytes The archive.
 * @returns Contents by path.
 * @throws {Error} On a bad header checksum or a truncated archive.
 */
export function readTar(bytes: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (from: number, to: number) =>
    new TextDecoder().decode(bytes.subarray(from, to)).replace(/\0.*$/s, "");
  for (let offset = 0; offset + 512 <= bytes.length;) {
    const header = bytes.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const stored = parseInt(text(offset + 148, offset + 156).trim(), 8);
    const sum = header.reduce((a, b, i) => a + (i >= 148 && i < 156 ? 0x20 : b), 0);
    if (stored !== sum) throw new Error(`Bad tar header checksum at ${offset}: ${stored} != ${sum}`);
    const name = text(offset, offset + 100);
    const size = parseInt(text(offset + 124, offset + 136).trim(), 8);
    if (offset + 512 + size > bytes.length) throw new Error(`Truncated tar entry ${name}`);
    files.set(name, bytes.slice(offset + 512, offset + 512 + size));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}
