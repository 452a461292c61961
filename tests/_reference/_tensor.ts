// Internal tensor representation of the reference interpreter: every element as a float64 number
// (integers and bools included), row-major, plus the declared ONNX dtype. Conversions to and from the
// public RefTensor / TensorData forms, strides and numpy broadcasting live here.

import { type DType, DTYPE_BYTES, type TensorData } from "../../src/onnx/types.ts";

/** A value inside the interpreter: float64 elements whatever the declared dtype. */
export interface Val {
  dtype: DType;
  dims: number[];
  data: Float64Array;
}

/** Thrown by op implementations; `evaluate` rethrows it as a RangeError naming the node. */
export class OpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OpError";
  }
}

export const INT_DTYPES: ReadonlySet<DType> = new Set<DType>([
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
]);

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(["float16", "bfloat16", "float32", "float64"]);

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function stridesOf(dims: readonly number[]): number[] {
  const strides = new Array<number>(dims.length);
  let s = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
  return strides;
}

export function make(dtype: DType, dims: number[], data?: Float64Array): Val {
  const n = sizeOf(dims);
  if (data && data.length !== n) {
    throw new OpError(`internal: ${data.length} elements for dims [${dims.join(", ")}]`);
  }
  return { dtype, dims, data: data ?? new Float64Array(n) };
}

/** numpy broadcast of two or more shapes, or an error text naming them. */
export function broadcastDims(shapes: readonly (readonly number[])[]): number[] | string {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1) continue;
      if (dim === 1) dim = d;
      else if (dim !== d) {
        return `cannot broadcast ${shapes.map((x) => `[${x.join(", ")}]`).join(" with ")}`;
      }
    }
    out.push(dim);
  }
  return out;
}

/** Strides of `dims` aligned right to `outDims`, 0 on broadcast axes. */
export function broadcastStrides(dims: readonly number[], outDims: readonly number[]): number[] {
  const strides = stridesOf(dims);
  const offset = outDims.length - dims.length;
  return outDims.map((_, i) => (i < offset || dims[i - offset] === 1 ? 0 : strides[i - offset]));
}

/** Materialises `v` broadcast to `outDims` (which must be a valid broadcast target). */
export function expandTo(v: Val, outDims: number[]): Val {
  if (v.dims.length === outDims.length && v.dims.every((d, i) => d === outDims[i])) return v;
  const n = sizeOf(outDims);
  const out = new Float64Array(n);
  if (v.data.length === 1) out.fill(v.data[0]);
  else {
    const s = broadcastStrides(v.dims, outDims);
    walk(outDims, [s], (i, [o]) => (out[i] = v.data[o]));
  }
  return { dtype: v.dtype, dims: [...outDims], data: out };
}

/**
 * Visits every index of `dims` in row-major order, calling `visit(flatIndex, offsets)` where
 * `offsets[k]` is the dot product of the index with `strides[k]`. Offsets are updated incrementally.
 */
export function walk(
  dims: readonly number[],
  strides: readonly (readonly number[])[],
  visit: (flat: number, offsets: number[]) => void,
): void {
  const n = sizeOf(dims);
  if (n === 0) return;
  const rank = dims.length;
  const index = new Array<number>(rank).fill(0);
  const offsets = strides.map(() => 0);
  for (let flat = 0; flat < n; flat++) {
    visit(flat, offsets);
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      for (let k = 0; k < strides.length; k++) offsets[k] += strides[k][d];
      if (index[d] < dims[d]) break;
      for (let k = 0; k < strides.length; k++) offsets[k] -= strides[k][d] * dims[d];
      index[d] = 0;
    }
  }
}

/** Normalises a possibly negative axis, or throws naming it. */
export function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new OpError(`${what} ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** Rounds and wraps a float64 into the range of an integer dtype (as a C cast from double would). */
export function toIntegerOf(dtype: DType, x: number): number {
  if (Number.isNaN(x)) return 0;
  const t = Math.trunc(x);
  switch (dtype) {
    case "int8":
      return ((t % 256) + 384) % 256 - 128;
    case "uint8":
      return ((t % 256) + 256) % 256;
    case "int16":
      return ((t % 65536) + 98304) % 65536 - 32768;
    case "uint16":
      return ((t % 65536) + 65536) % 65536;
    case "int32":
      return Number.isFinite(t) ? t | 0 : 0;
    case "uint32":
      return Number.isFinite(t) ? t >>> 0 : 0;
    default:
      return t;
  }
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Reads little-endian tensor bytes of any numeric dtype into float64 numbers. */
export function decodeElements(dtype: DType, bytes: Uint8Array, count: number, what: string): Float64Array {
  if (dtype !== "string" && bytes.length !== count * DTYPE_BYTES[dtype]) {
    throw new OpError(
      `${what} holds ${bytes.length} bytes, expected ${count * DTYPE_BYTES[dtype]} for ${count} ${dtype}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const scratch = new DataView(new ArrayBuffer(4));
  const out = new Float64Array(count);
  const read: ((i: number) => number) | undefined = {
    float32: (i: number) => view.getFloat32(i * 4, true),
    float64: (i: number) => view.getFloat64(i * 8, true),
    float16: (i: number) => halfToNumber(view.getUint16(i * 2, true)),
    bfloat16: (i: number) => {
      scratch.setUint16(2, view.getUint16(i * 2, true), false);
      return scratch.getFloat32(0, false);
    },
    int8: (i: number) => view.getInt8(i),
    uint8: (i: number) => view.getUint8(i),
    bool: (i: number) => (view.getUint8(i) ? 1 : 0),
    int16: (i: number) => view.getInt16(i * 2, true),
    uint16: (i: number) => view.getUint16(i * 2, true),
    int32: (i: number) => view.getInt32(i * 4, true),
    uint32: (i: number) => view.getUint32(i * 4, true),
    int64: (i: number) => Number(view.getBigInt64(i * 8, true)),
    uint64: (i: number) => Number(view.getBigUint64(i * 8, true)),
    string: undefined,
  }[dtype];
  if (!read) throw new OpError(`${what} is a ${dtype} tensor, which the reference cannot evaluate`);
  if (dtype === "float32" && bytes.byteOffset % 4 === 0) {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
    return out;
  }
  for (let i = 0; i < count; i++) out[i] = read(i);
  return out;
}

/** A constant tensor (initializer or attribute) as an interpreter value. */
export function fromTensorData(tensor: TensorData, what: string): Val {
  if (tensor.external) {
    throw new OpError(
      `${what} has external data ("${tensor.external.location}"): resolve it first (resolveExternalData)`,
    );
  }
  const count = sizeOf(tensor.dims);
  return {
    dtype: tensor.dtype,
    dims: [...tensor.dims],
    data: decodeElements(tensor.dtype, tensor.data, count, what),
  };
}
