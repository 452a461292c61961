// Elementwise ops of the reference interpreter: unary maps, broadcasting binary and variadic ops,
// comparisons and logic, Where, Clip, Cast. Semantics follow the ONNX operator spec (opset 17/18).

import { DATA_TYPE_CODES, type DType } from "../../src/onnx/types.ts";
import { attrFloat, attrInt, need, type OpImpl, scalarOf } from "./_node.ts";
import {
  broadcastDims,
  broadcastStrides,
  expandTo,
  INT_DTYPES,
  OpError,
  sizeOf,
  toIntegerOf,
  type Val,
  walk,
} from "./_tensor.ts";
import { erf } from "./_erf.ts";

const CODE_DTYPES = new Map<number, DType>(
  Object.entries(DATA_TYPE_CODES).map(([name, code]) => [code, name as DType]),
);

export function unary(x: Val, f: (v: number) => number, dtype: DType = x.dtype): Val {
  const out = new Float64Array(x.data.length);
  const d = x.data;
  for (let i = 0; i < d.length; i++) out[i] = f(d[i]);
  return { dtype, dims: [...x.dims], data: out };
}

export function binary(a: Val, b: Val, f: (x: number, y: number) => number, dtype: DType = a.dtype): Val {
  const dims = broadcastDims([a.dims, b.dims]);
  if (typeof dims === "string") throw new OpError(dims);
  const n = sizeOf(dims);
  const out = new Float64Array(n);
  const ad = a.data, bd = b.data;
  if (ad.length === n && bd.length === n) { for (let i = 0; i < n; i++) out[i] = f(ad[i], bd[i]); }
  else if (ad.length === n && bd.length === 1) {
    const y = bd[0];
    for (let i = 0; i < n; i++) out[i] = f(ad[i], y);
  } else if (ad.length === 1 && bd.length === n) {
    const x = ad[0];
    for (let i = 0; i < n; i++) out[i] = f(x, bd[i]);
  } else {
    walk(dims, [broadcastStrides(a.dims, dims), broadcastStrides(b.dims, dims)], (i, [ia, ib]) => {
      out[i] = f(ad[ia], bd[ib]);
    });
  }
  return { dtype, dims, data: out };
}

function checkSameDtype(inputs: Val[]): void {
  for (const [i, v] of inputs.entries()) {
    if (v.dtype !== inputs[0].dtype) {
      throw new OpError(`input ${i} is ${v.dtype} but input 0 is ${inputs[0].dtype}`);
    }
  }
}

function unaryOp(f: (v: number) => number): OpImpl {
  return (inputs) => [unary(need(inputs, 0, "X"), f)];
}

function binaryOp(
  f: (x: number, y: number) => number,
  integer?: (x: number, y: number) => number,
): OpImpl {
  return (inputs) => {
    const a = need(inputs, 0, "A"), b = need(inputs, 1, "B");
    checkSameDtype([a, b]);
    if (integer && INT_DTYPES.has(a.dtype)) {
      return [binary(a, b, (x, y) => toIntegerOf(a.dtype, integer(x, y)))];
    }
    return [binary(a, b, f)];
  };
}

function compareOp(f: (x: number, y: number) => boolean): OpImpl {
  return (inputs) => {
    const a = need(inputs, 0, "A"), b = need(inputs, 1, "B");
    checkSameDtype([a, b]);
    return [binary(a, b, (x, y) => (f(x, y) ? 1 : 0), "bool")];
  };
}

function logicOp(f: (x: boolean, y: boolean) => boolean): OpImpl {
  return (inputs) => {
    const a = need(inputs, 0, "A"), b = need(inputs, 1, "B");
    if (a.dtype !== "bool" || b.dtype !== "bool") {
      throw new OpError(`inputs must be bool, got ${a.dtype} and ${b.dtype}`);
    }
    return [binary(a, b, (x, y) => (f(x !== 0, y !== 0) ? 1 : 0), "bool")];
  };
}

function variadicOp(
  f: (acc: number, v: number) => number,
  finish?: (acc: number, n: number) => number,
): OpImpl {
  return (inputs) => {
    const present = inputs.filter((v): v is Val => v !== undefined);
    if (present.length === 0) throw new OpError("needs at least one input");
    checkSameDtype(present);
    let acc = present[0];
    for (const v of present.slice(1)) acc = binary(acc, v, f);
    if (finish) acc = unary(acc, (x) => finish(x, present.length));
    if (present.length === 1) acc = { ...acc, data: acc.data.slice(), dims: [...acc.dims] };
    return [acc];
  };
}

/** Round half to even, as ONNX Round specifies. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

function intDiv(x: number, y: number): number {
  if (y === 0) throw new OpError(`integer division of ${x} by zero`);
  return Math.trunc(x / y);
}

const mod: OpImpl = (inputs, node) => {
  const a = need(inputs, 0, "A"), b = need(inputs, 1, "B");
  checkSameDtype([a, b]);
  const fmod = attrInt(node, "fmod", 0);
  if (!fmod && !INT_DTYPES.has(a.dtype)) throw new OpError(`fmod=0 is not allowed for ${a.dtype} inputs`);
  if (fmod) return [binary(a, b, (x, y) => x % y)];
  return [binary(a, b, (x, y) => {
    if (y === 0) throw new OpError(`integer modulo of ${x} by zero`);
    const r = x % y;
    return r !== 0 && (r < 0) !== (y < 0) ? r + y : r;
  })];
};

const where: OpImpl = (inputs) => {
  const c = need(inputs, 0, "condition"), x = need(inputs, 1, "X"), y = need(inputs, 2, "Y");
  if (c.dtype !== "bool") throw new OpError(`condition must be bool, got ${c.dtype}`);
  checkSameDtype([x, y]);
  const dims = broadcastDims([c.dims, x.dims, y.dims]);
  if (typeof dims === "string") throw new OpError(dims);
  const [cc, xx, yy] = [c, x, y].map((v) => expandTo(v, dims));
  const out = new Float64Array(sizeOf(dims));
  for (let i = 0; i < out.length; i++) out[i] = cc.data[i] ? xx.data[i] : yy.data[i];
  return [{ dtype: x.dtype, dims, data: out }];
};

const clip: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "input");
  const lo = inputs[1] ? scalarOf(inputs[1], "min") : attrFloat(node, "min", -Infinity);
  const hi = inputs[2] ? scalarOf(inputs[2], "max") : attrFloat(node, "max", Infinity);
  return [unary(x, (v) => (Number.isNaN(v) ? v : Math.min(Math.max(v, lo), hi)))];
};

/** Converts a float64 value to what `dtype` can hold (integers truncate and wrap; floats are kept as is). */
export function castValue(dtype: DType, v: number): number {
  if (dtype === "bool") return v !== 0 ? 1 : 0;
  if (INT_DTYPES.has(dtype)) return toIntegerOf(dtype, v);
  return v;
}

const cast: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "input");
  const code = attrInt(node, "to", 0);
  const to = CODE_DTYPES.get(code);
  if (!to || to === "string") throw new OpError(`cannot cast to data type code ${code}`);
  return [unary(x, (v) => castValue(to, v), to)];
};

const pow: OpImpl = (inputs) => {
  const a = need(inputs, 0, "X"), b = need(inputs, 1, "Y");
  const integer = INT_DTYPES.has(a.dtype);
  return [binary(a, b, (x, y) => (integer ? toIntegerOf(a.dtype, x ** y) : x ** y))];
};

const isInf: OpImpl = (inputs, node) => {
  const pos = attrInt(node, "detect_positive", 1), neg = attrInt(node, "detect_negative", 1);
  return [unary(
    need(inputs, 0, "X"),
    (v) => ((v === Infinity && pos) || (v === -Infinity && neg) ? 1 : 0),
    "bool",
  )];
};

const not: OpImpl = (inputs) => {
  const x = need(inputs, 0, "X");
  if (x.dtype !== "bool") throw new OpError(`input must be bool, got ${x.dtype}`);
  return [unary(x, (v) => (v ? 0 : 1))];
};

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** The elementwise ops, by ONNX op type. */
export const ELEMENTWISE_OPS: Record<string, OpImpl> = {
  Neg: unaryOp((v) => -v),
  Abs: unaryOp(Math.abs),
  Sqrt: unaryOp(Math.sqrt),
  Reciprocal: unaryOp((v) => 1 / v),
  Exp: unaryOp(Math.exp),
  Log: unaryOp(Math.log),
  Tanh: unaryOp(Math.tanh),
  Sigmoid: unaryOp(sigmoid),
  Erf: unaryOp(erf),
  Relu: unaryOp((v) => (v > 0 ? v : 0)),
  Sin: unaryOp(Math.sin),
  Cos: unaryOp(Math.cos),
  Sign: unaryOp((v) => (Number.isNaN(v) ? v : Math.sign(v))),
  Floor: unaryOp(Math.floor),
  Ceil: unaryOp(Math.ceil),
  Round: unaryOp(roundHalfEven),
  IsNaN: (inputs) => [unary(need(inputs, 0, "X"), (v) => (Number.isNaN(v) ? 1 : 0), "bool")],
  IsInf: isInf,
  Not: not,
  Add: binaryOp((x, y) => x + y, (x, y) => x + y),
  Sub: binaryOp((x, y) => x - y, (x, y) => x - y),
  Mul: binaryOp((x, y) => x * y, (x, y) => x * y),
  Div: binaryOp((x, y) => x / y, intDiv),
  Mod: mod,
  Pow: pow,
  Max: variadicOp((x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y))),
  Min: variadicOp((x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y))),
  Sum: variadicOp((x, y) => x + y),
  Mean: variadicOp((x, y) => x + y, (acc, n) => acc / n),
  Equal: compareOp((x, y) => x === y),
  Less: compareOp((x, y) => x < y),
  LessOrEqual: compareOp((x, y) => x <= y),
  Greater: compareOp((x, y) => x > y),
  GreaterOrEqual: compareOp((x, y) => x >= y),
  And: logicOp((x, y) => x && y),
  Or: logicOp((x, y) => x || y),
  Xor: logicOp((x, y) => x !== y),
  Where: where,
  Clip: clip,
  Cast: cast,
};
