/**
 * {@linkcode encodeTar}: a POSIX ustar archive of regular files, as `tar -xf` and Python's `tarfile`
 * read it. Used to hand out an adapter's two PEFT files as one download.
 *
 * @module
 */

/** One file of an archive. */
export interface TarEntry {
  /** Path inside the archive (at most 100 bytes of UTF-8). */
  name: string;
  /** The contents. */
  data: Uint8Array;
  /** Modification time, Unix seconds. @default {0} */
  mtime?: number;
}

const BLOCK = 512;

function writeText(header: Uint8Array, offset: number, length: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > length) {
    throw new RangeError(`Cannot write tar field "${text}": longer than ${length} bytes`);
  }
  header.set(bytes, offset);
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, "0"); // the last byte stays NUL
}

/**
 * Builds an uncompressed ustar archive of regular files (mode 0644, owner 0).
 *
 * @param entries The files, in order.
 * @returns The archive bytes (a multiple of 512, ending with two zero blocks).
 * @throws {RangeError} When a name is empty, too long or not a plain relative path.
 * @example
 * ```ts
 * import { encodeTar } from "./tar.ts";
 * const tar = encodeTar([{ name: "a.txt", data: new TextEncoder().encode("hi") }]);
 * console.assert(tar.length === 512 * 4);
 * ```
 */
export function encodeTar(entries: readonly TarEntry[]): Uint8Array {
  const size = entries.reduce((n, e) => n + BLOCK + Math.ceil(e.data.length / BLOCK) * BLOCK, 2 * BLOCK);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const entry of entries) {
    if (entry.name === "" || entry.name.startsWith("/") || entry.name.split("/").includes("..")) {
      throw new RangeError(`Cannot add ${JSON.stringify(entry.name)} to a tar archive: use a relative path`);
    }
    const header = out.subarray(offset, offset + BLOCK);
    writeText(header, 0, 100, entry.name);
    writeText(header, 100, 8, "0000644");
    writeText(header, 108, 8, "0000000");
    writeText(header, 116, 8, "0000000");
    writeText(header, 124, 12, octal(entry.data.length, 12));
    writeText(header, 136, 12, octal(Math.max(0, Math.floor(entry.mtime ?? 0)), 12));
    header.fill(0x20, 148, 156); // the checksum counts its own field as spaces
    header[156] = 0x30; // "0": a regular file
    writeText(header, 257, 6, "ustar");
    writeText(header, 263, 2, "00");
    const checksum = header.reduce((a, b) => a + b, 0);
    writeText(header, 148, 8, `${checksum.toString(8).padStart(6, "0")}\0 `);
    out.set(entry.data, offset + BLOCK);
    offset += BLOCK + Math.ceil(entry.data.length / BLOCK) * BLOCK;
  }
  return out;
}
