/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`),
 * then the tensor bytes, packed back to back.
 *
 * {@linkcode parseSafetensors} validates the header as the reference implementation does and returns
 * zero-copy views; {@linkcode encodeSafetensors} writes the reference layout (tensors sorted by
 * descending dtype alignment then name, header padded with spaces to 8 bytes);
 * {@linkcode writeSafetensors} writes a file atomically.
 *
 * @module
 */

import type { DType, TensorData } from "../onnx/types.ts";
import { DTYPE_BYTES } from "../onnx/types.ts";
import { writeFileAtomic } from "./_fs.ts";

/** The reference implementation refuses headers over 100 MB. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** safetensors dtype names, in the reference implementation's order (increasing alignment). */
const SAFETENSORS_DTYPES: readonly (readonly [SafetensorsDtype, DType])[] = [
  ["BOOL", "bool"],
  ["U8", "uint8"],
  ["I8", "int8"],
  ["I16", "int16"],
  ["U16", "uint16"],
  ["F16", "float16"],
  ["BF16", "bfloat16"],
  ["I32", "int32"],
  ["U32", "uint32"],
  ["F32", "float32"],
  ["F64", "float64"],
  ["I64", "int64"],
  ["U64", "uint64"],
];

/** A safetensors dtype name this reader understands. */
export type SafetensorsDtype =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

const FROM_SAFETENSORS = new Map<string, DType>(SAFETENSORS_DTYPES.map(([s, d]) => [s, d]));
const TO_SAFETENSORS = new Map<DType, SafetensorsDtype>(SAFETENSORS_DTYPES.map(([s, d]) => [d, s]));
const DTYPE_RANK = new Map<DType, number>(SAFETENSORS_DTYPES.map(([, d], i) => [d, i]));

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in file order; `data` are views into the file bytes (no copy). */
  tensors: Map<string, TensorData>;
  /** The `__metadata__` string map (empty when absent). */
  metadata: Record<string, string>;
}

/** Options of {@linkcode parseSafetensors}. */
export interface ParseSafetensorsOptions {
  /** File name used in error messages. @default "safetensors buffer" */
  file?: string;
}

/**
 * Parses safetensors bytes. Tensor data are zero-copy views into `bytes`.
 *
 * Checks, as the reference implementation does: the header length fits in the file and is at most
 * {@linkcode SAFETENSORS_MAX_HEADER_BYTES}; the header is UTF-8 JSON whose entries have a known dtype,
 * a shape of non-negative integers and `data_offsets` that, sorted, are contiguous from 0 to the end of
 * the file; every byte length equals elements × dtype size.
 *
 * @param bytes The whole file.
 * @param options File name for errors.
 * @returns The tensors and metadata.
 * @throws {Error} On any malformed input, naming the file and the tensor.
 *
 * @example
 * ```ts
 * import { encodeSafetensors, parseSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors([{ name: "x", dtype: "uint8", dims: [2], data: new Uint8Array([1, 2]) }]);
 * console.assert(parseSafetensors(bytes).tensors.get("x")!.data[1] === 2);
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, options: ParseSafetensorsOptions = {}): SafetensorsFile {
  const file = options.file ?? "safetensors buffer";
  if (bytes.byteLength < 8) {
    throw new Error(
      `Cannot read safetensors file ${file}: it has ${bytes.byteLength} bytes, fewer than the 8-byte header length`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new Error(
      `Cannot read safetensors file ${file}: header length ${headerLength} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const n = Number(headerLength);
  if (8 + n > bytes.byteLength) {
    throw new Error(
      `Cannot read safetensors file ${file}: header length ${n} runs past the end of the file (${bytes.byteLength} bytes)`,
    );
  }
  let headerText: string;
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new Error(`Cannot read safetensors file ${file}: the header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    throw new Error(
      `Cannot read safetensors file ${file}: the header is not valid JSON (${(e as Error).message})`,
    );
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new Error(`Cannot read safetensors file ${file}: the header is not a JSON object`);
  }
  const metadata = parseMetadata((header as Record<string, unknown>)["__metadata__"], file);
  const entries: { name: string; dtype: DType; dims: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") continue;
    entries.push(parseEntry(name, value, file));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataStart = 8 + n;
  const dataLength = bytes.byteLength - dataStart;
  let cursor = 0;
  for (const e of entries) {
    if (e.begin !== cursor) {
      throw new Error(
        `Cannot read safetensors file ${file}: tensor "${e.name}" starts at data offset ${e.begin}, expected ${cursor} (offsets must be contiguous)`,
      );
    }
    const expected = e.dims.reduce((a, d) => a * d, 1) * DTYPE_BYTES[e.dtype];
    if (e.end - e.begin !== expected) {
      throw new Error(
        `Cannot read safetensors file ${file}: tensor "${e.name}" has ${
          e.end - e.begin
        } bytes but shape [${e.dims}] of ${TO_SAFETENSORS.get(e.dtype)} needs ${expected}`,
      );
    }
    if (e.end > dataLength) {
      throw new Error(
        `Cannot read safetensors file ${file}: tensor "${e.name}" ends at data offset ${e.end}, past the end of the data (${dataLength} bytes); the file is truncated`,
      );
    }
    cursor = e.end;
  }
  if (cursor !== dataLength) {
    throw new Error(
      `Cannot read safetensors file ${file}: the tensors cover ${cursor} data bytes but the file holds ${dataLength}`,
    );
  }
  const tensors = new Map<string, TensorData>();
  for (const e of entries) {
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      dims: e.dims,
      data: bytes.subarray(dataStart + e.begin, dataStart + e.end),
    });
  }
  return { tensors, metadata };
}

/** Validates `__metadata__`: a map of strings. */
function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`Cannot read safetensors file ${file}: "__metadata__" is not an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") {
      throw new Error(
        `Cannot read safetensors file ${file}: "__metadata__.${k}" is ${JSON.stringify(v)}, not a string`,
      );
    }
    out[k] = v;
  }
  return out;
}

/** Validates one tensor entry of the header. */
function parseEntry(
  name: string,
  value: unknown,
  file: string,
): { name: string; dtype: DType; dims: number[]; begin: number; end: number } {
  const where = `Cannot read safetensors file ${file}: tensor "${name}"`;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${where} has header entry ${JSON.stringify(value)}, expected an object`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string" || !FROM_SAFETENSORS.has(dtype)) {
    throw new Error(
      `${where} has unsupported dtype ${JSON.stringify(dtype)} (supported: ${
        [...FROM_SAFETENSORS.keys()].join(", ")
      })`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where} has invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]
  ) {
    throw new Error(`${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  return {
    name,
    dtype: FROM_SAFETENSORS.get(dtype)!,
    dims: shape as number[],
    begin: offsets[0],
    end: offsets[1],
  };
}

/**
 * Reads and parses a safetensors file (the bytes are read once; tensors are views into them).
 *
 * @param path File path.
 * @returns The tensors and metadata.
 * @throws {Error} When the file is missing or malformed, naming the file.
 *
 * @example
 * ```ts ignore
 * import { readSafetensors } from "./safetensors.ts";
 * const { tensors } = await readSafetensors("model.safetensors");
 * ```
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`Cannot read safetensors file ${path}: ${(e as Error).message}`);
  }
  return parseSafetensors(bytes, { file: path });
}

/** Options of {@linkcode encodeSafetensors} and {@linkcode writeSafetensors}. */
export interface EncodeSafetensorsOptions {
  /** The `__metadata__` string map, written with sorted keys; omitted when undefined. */
  metadata?: Record<string, string>;
}

/**
 * Encodes tensors in the reference layout: tensors sorted by descending dtype alignment then by name,
 * `__metadata__` first, compact JSON with keys `dtype`, `shape`, `data_offsets`, padded with spaces to a
 * multiple of 8 bytes. The same input always gives the same bytes.
 *
 * @param tensors The tensors (names must be unique; `data` must hold elements × dtype size bytes).
 * @param options Metadata.
 * @returns The file bytes.
 * @throws {Error} On a duplicate name, an unsupported dtype or a byte length that does not match the shape.
 *
 * @example
 * ```ts
 * import { encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors([{ name: "x", dtype: "float32", dims: [1], data: new Uint8Array(4) }]);
 * console.assert(new DataView(bytes.buffer).getUint32(0, true) % 8 === 0);
 * ```
 */
export function encodeSafetensors(
  tensors: Iterable<TensorData>,
  options: EncodeSafetensorsOptions = {},
): Uint8Array {
  const { header, ordered, dataLength } = prepare(tensors, options);
  const out = new Uint8Array(8 + header.byteLength + dataLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  out.set(header, 8);
  let offset = 8 + header.byteLength;
  for (const t of ordered) {
    out.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return out;
}

/** Builds the padded header bytes and the tensor order. */
function prepare(
  tensors: Iterable<TensorData>,
  options: EncodeSafetensorsOptions,
): { header: Uint8Array; ordered: TensorData[]; dataLength: number } {
  const list = [...tensors];
  const seen = new Set<string>();
  for (const t of list) {
    if (seen.has(t.name)) throw new Error(`Cannot encode safetensors: tensor name "${t.name}" appears twice`);
    seen.add(t.name);
    const dtype = TO_SAFETENSORS.get(t.dtype);
    if (dtype === undefined) {
      throw new Error(
        `Cannot encode safetensors: tensor "${t.name}" has dtype ${t.dtype}, which safetensors cannot hold`,
      );
    }
    const expected = t.dims.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new Error(
        `Cannot encode safetensors: tensor "${t.name}" has ${t.data.byteLength} bytes but shape [${t.dims}] of ${dtype} needs ${expected}`,
      );
    }
  }
  list.sort((a, b) =>
    DTYPE_RANK.get(b.dtype)! - DTYPE_RANK.get(a.dtype)! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  const parts: string[] = [];
  if (options.metadata !== undefined) {
    const keys = Object.keys(options.metadata).sort();
    const meta = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(String(options.metadata![k]))}`);
    parts.push(`"__metadata__":{${meta.join(",")}}`);
  }
  let offset = 0;
  for (const t of list) {
    const end = offset + t.data.byteLength;
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${TO_SAFETENSORS.get(t.dtype)}","shape":[${
        t.dims.join(",")
      }],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return { header: padded, ordered: list, dataLength: offset };
}

/**
 * Writes tensors to a safetensors file atomically: the bytes go to a temporary file beside `path`,
 * which is then renamed over it, so readers never see a half-written file.
 *
 * @param path Destination file.
 * @param tensors The tensors.
 * @param options Metadata.
 * @throws {Error} As {@linkcode encodeSafetensors}, or when the file cannot be written.
 *
 * @example
 * ```ts ignore
 * import { writeSafetensors } from "./safetensors.ts";
 * await writeSafetensors("adapter.safetensors", tensors, { metadata: { format: "pt" } });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<TensorData>,
  options: EncodeSafetensorsOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, options));
}
