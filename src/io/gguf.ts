/**
 * A GGUF reader (versions 1–3, little-endian): metadata key/values including arrays, tensor infos, and
 * zero-copy views of F32, F16 and BF16 tensor data and of `Q8_0`/`Q4_0` block data.
 *
 * Layout: magic `GGUF`, version u32, tensor count and KV count (u32 in v1, u64 after), the KVs
 * (string key, u32 value type, value; strings and arrays carry u32 lengths in v1, u64 after), the
 * tensor infos (name, u32 rank, dims — u32 in v1, u64 after, innermost first —, u32 ggml type, u64
 * offset), then the data, starting at the next multiple of `general.alignment` (default 32).
 *
 * @module
 */

/** A metadata value. 64-bit integers are numbers when they fit exactly, `bigint` otherwise. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** ggml tensor types by code (the ones this toolkit names in messages). */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  34: "TQ1_0",
  35: "TQ2_0",
};

/** Element sizes of the types whose data this reader exposes. */
const READABLE_TYPES: Readonly<Record<number, { dtype: "float32" | "float16" | "bfloat16"; bytes: number }>> =
  {
    0: { dtype: "float32", bytes: 4 },
    1: { dtype: "float16", bytes: 2 },
    30: { dtype: "bfloat16", bytes: 2 },
  };

/**
 * The block-quantized types whose data this reader exposes (raw blocks, see `gguf_blocks.ts`): 32 values
 * per block along the innermost axis, `Q8_0` = f16 scale + 32 int8, `Q4_0` = f16 scale + 16 bytes of nibbles.
 */
export const GGUF_BLOCK_TYPES: Readonly<Record<number, { blockSize: number; bytes: number }>> = {
  2: { blockSize: 32, bytes: 18 },
  8: { blockSize: 32, bytes: 34 },
};

/** One tensor of a GGUF file. */
export interface GgufTensor {
  /** Tensor name (e.g. `blk.0.attn_q.weight`). */
  name: string;
  /** ggml type code. */
  type: number;
  /** ggml type name (`F32`, `Q4_K`, …; `type <n>` when unknown). */
  typeName: string;
  /** Dimensions as GGUF stores them: innermost (contiguous) first. */
  ne: number[];
  /** Dimensions outermost first (row-major, as PyTorch and ONNX list them): `ne` reversed. */
  dims: number[];
  /** Byte offset of the data, relative to the start of the data section. */
  offset: number;
  /** Element type, for the readable types (F32, F16, BF16). */
  dtype?: "float32" | "float16" | "bfloat16";
  /** The tensor bytes (a view into the file), for the readable types and `Q8_0`/`Q4_0` (raw blocks). */
  data?: Uint8Array;
}

/** A parsed GGUF file. */
export interface GgufFile {
  /** Format version (1, 2 or 3). */
  version: number;
  /** Metadata, in file order. */
  metadata: Map<string, GgufValue>;
  /** Tensors by name, in file order. */
  tensors: Map<string, GgufTensor>;
  /** Data alignment (`general.alignment`, default 32). */
  alignment: number;
}

/** Options of {@linkcode parseGguf}. */
export interface ParseGgufOptions {
  /** File name used in error messages. @default "GGUF buffer" */
  file?: string;
}

/** A bounds-checked little-endian cursor. */
class Cursor {
  pos = 0;
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  readonly #file: string;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(bytes: Uint8Array, file: string, readonly v1: boolean) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#file = file;
  }

  #need(n: number, what: string): void {
    if (this.pos + n > this.#bytes.byteLength) {
      throw new Error(
        `Cannot read GGUF file ${this.#file}: ${what} at byte ${this.pos} runs past the end of the file (${this.#bytes.byteLength} bytes); the file is truncated`,
      );
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#view.getUint8(this.pos++);
  }
  i8(what: string): number {
    this.#need(1, what);
    return this.#view.getInt8(this.pos++);
  }
  u16(what: string): number {
    this.#need(2, what);
    const v = this.#view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  i16(what: string): number {
    this.#need(2, what);
    const v = this.#view.getInt16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(what: string): number {
    this.#need(8, what);
    const v = this.#view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  u64(what: string): number | bigint {
    this.#need(8, what);
    const v = this.#view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  i64(what: string): number | bigint {
    this.#need(8, what);
    const v = this.#view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  }
  /** A count or length: u32 in v1, u64 after; must fit in the remaining bytes' order of magnitude. */
  size(what: string): number {
    const v = this.v1 ? this.u32(what) : this.u64(what);
    if (typeof v === "bigint" || v > this.#bytes.byteLength) {
      throw new Error(`Cannot read GGUF file ${this.#file}: ${what} is ${v}, larger than the file`);
    }
    return v;
  }
  string(what: string): string {
    const n = this.size(`length of ${what}`);
    this.#need(n, what);
    try {
      return this.#decoder.decode(this.#bytes.subarray(this.pos, this.pos + n));
    } catch {
      throw new Error(`Cannot read GGUF file ${this.#file}: ${what} at byte ${this.pos} is not valid UTF-8`);
    } finally {
      this.pos += n;
    }
  }
}

/** Reads one value of GGUF value type `type`. */
function readValue(c: Cursor, type: number, what: string, file: string): GgufValue {
  switch (type) {
    case 0:
      return c.u8(what);
    case 1:
      return c.i8(what);
    case 2:
      return c.u16(what);
    case 3:
      return c.i16(what);
    case 4:
      return c.u32(what);
    case 5:
      return c.i32(what);
    case 6:
      return c.f32(what);
    case 7:
      return c.u8(what) !== 0;
    case 8:
      return c.string(what);
    case 9: {
      const elementType = c.u32(`element type of ${what}`);
      const n = c.size(`length of ${what}`);
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, elementType, `${what}[${i}]`, file);
      return out;
    }
    case 10:
      return c.u64(what);
    case 11:
      return c.i64(what);
    case 12:
      return c.f64(what);
    default:
      throw new Error(`Cannot read GGUF file ${file}: ${what} has unknown value type ${type}`);
  }
}

/**
 * Parses a GGUF file. Tensor data of F32/F16/BF16 and Q8_0/Q4_0 tensors are zero-copy views; other types
 * are listed (name, type, dims) without data.
 *
 * @param bytes The whole file.
 * @param options File name for errors.
 * @returns Version, metadata and tensors.
 * @throws {Error} On a bad magic, an unsupported version (incl. big-endian files), a truncated file, or
 *   a tensor whose data lies outside the file — naming the file and the key or tensor.
 *
 * @example
 * ```ts ignore
 * import { parseGguf } from "./gguf.ts";
 * const gguf = parseGguf(await Deno.readFile("stories260K-f32.gguf"));
 * console.log(gguf.metadata.get("general.architecture")); // "llama"
 * ```
 */
export function parseGguf(bytes: Uint8Array, options: ParseGgufOptions = {}): GgufFile {
  const file = options.file ?? "GGUF buffer";
  if (bytes.byteLength < 8) {
    throw new Error(`Cannot read GGUF file ${file}: ${bytes.byteLength} bytes is too short`);
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== "GGUF") {
    throw new Error(`Cannot read GGUF file ${file}: magic is ${JSON.stringify(magic)}, expected "GGUF"`);
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(4, true);
  if (version < 1 || version > 3) {
    const hint = version >= 0x01000000 ? " (a big-endian file?)" : "";
    throw new Error(`Cannot read GGUF file ${file}: version ${version} is not supported (1 to 3)${hint}`);
  }
  const c = new Cursor(bytes, file, version === 1);
  c.pos = 8;
  const nTensors = c.size("tensor count");
  const nKv = c.size("metadata count");
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`metadata key ${i}`);
    const type = c.u32(`value type of "${key}"`);
    metadata.set(key, readValue(c, type, `metadata "${key}"`, file));
  }
  const alignmentValue = metadata.get("general.alignment") ?? 32;
  if (typeof alignmentValue !== "number" || !Number.isInteger(alignmentValue) || alignmentValue <= 0) {
    throw new Error(
      `Cannot read GGUF file ${file}: general.alignment is ${
        String(alignmentValue)
      }, expected a positive integer`,
    );
  }
  const alignment = alignmentValue;
  const infos: GgufTensor[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`tensor name ${i}`);
    const rank = c.u32(`rank of tensor "${name}"`);
    if (rank > 8) throw new Error(`Cannot read GGUF file ${file}: tensor "${name}" has rank ${rank}`);
    const ne: number[] = [];
    for (let d = 0; d < rank; d++) {
      const v = version === 1 ? c.u32(`dims of tensor "${name}"`) : c.u64(`dims of tensor "${name}"`);
      if (typeof v === "bigint") {
        throw new Error(`Cannot read GGUF file ${file}: tensor "${name}" has dimension ${v}`);
      }
      ne.push(v);
    }
    const type = c.u32(`type of tensor "${name}"`);
    const offset = c.u64(`offset of tensor "${name}"`);
    if (typeof offset === "bigint") {
      throw new Error(`Cannot read GGUF file ${file}: tensor "${name}" has offset ${offset}`);
    }
    infos.push({
      name,
      type,
      typeName: GGML_TYPE_NAMES[type] ?? `type ${type}`,
      ne,
      dims: [...ne].reverse(),
      offset,
    });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensors = new Map<string, GgufTensor>();
  for (const t of infos) {
    if (tensors.has(t.name)) {
      throw new Error(`Cannot read GGUF file ${file}: tensor "${t.name}" appears twice`);
    }
    const readable = READABLE_TYPES[t.type];
    const blocks = GGUF_BLOCK_TYPES[t.type];
    if (blocks !== undefined && (t.ne[0] ?? 0) % blocks.blockSize !== 0) {
      throw new Error(
        `Cannot read GGUF file ${file}: tensor "${t.name}" (${t.typeName}) has ${
          t.ne[0]
        } values per row, not a multiple of its block size ${blocks.blockSize}`,
      );
    }
    if (readable !== undefined || blocks !== undefined) {
      const count = t.ne.reduce((a, b) => a * b, 1);
      const n = readable !== undefined ? count * readable.bytes : (count / blocks.blockSize) * blocks.bytes;
      const begin = dataStart + t.offset;
      if (t.offset % alignment !== 0 || begin + n > bytes.byteLength) {
        throw new Error(
          `Cannot read GGUF file ${file}: tensor "${t.name}" (${t.typeName} [${t.dims}]) at data offset ${t.offset} needs bytes ${begin}..${
            begin + n
          }, but the file has ${bytes.byteLength}${
            t.offset % alignment !== 0 ? ` and the offset is not ${alignment}-aligned` : ""
          }`,
        );
      }
      if (readable !== undefined) t.dtype = readable.dtype;
      t.data = bytes.subarray(begin, begin + n);
    }
    tensors.set(t.name, t);
  }
  return { version, metadata, tensors, alignment };
}

/**
 * A typed metadata lookup helper: returns the value of `key` checked by `test`, or `fallback` when the
 * key is absent.
 *
 * @param gguf The file.
 * @param key Metadata key.
 * @param options The expected kind and a fallback; `file` for errors.
 * @returns The value.
 * @throws {Error} When the key is absent without a fallback, or holds the wrong kind of value.
 *
 * @example
 * ```ts ignore
 * import { ggufMetadata, parseGguf } from "./gguf.ts";
 * const n = ggufMetadata(parseGguf(bytes), "llama.block_count", { kind: "number" });
 * ```
 */
export function ggufMetadata<K extends "number" | "string" | "boolean" | "array">(
  gguf: GgufFile,
  key: string,
  options: GgufMetadataOptions<K>,
): KindType<K> {
  const value = gguf.metadata.get(key);
  const file = options.file ?? "GGUF file";
  if (value === undefined) {
    if (options.fallback !== undefined) return options.fallback;
    throw new Error(`Cannot convert GGUF file ${file}: metadata "${key}" is missing`);
  }
  const actualKind = Array.isArray(value) ? "array" : typeof value;
  const ok = actualKind === options.kind;
  if (!ok) {
    throw new Error(
      `Cannot convert GGUF file ${file}: metadata "${key}" is ${
        typeof value === "bigint" ? String(value) : JSON.stringify(value)?.slice(0, 80)
      }, expected a ${options.kind}`,
    );
  }
  return value as KindType<K>;
}

/** Options of {@linkcode ggufMetadata}. */
export interface GgufMetadataOptions<K extends "number" | "string" | "boolean" | "array"> {
  /** The expected kind of value. */
  kind: K;
  /** Returned when the key is absent (without it, an absent key is an error). */
  fallback?: KindType<K>;
  /** File name used in error messages. @default "GGUF file" */
  file?: string;
}

/** The TypeScript type of a metadata kind. */
export type KindType<K> = K extends "number" ? number
  : K extends "string" ? string
  : K extends "boolean" ? boolean
  : GgufValue[];
