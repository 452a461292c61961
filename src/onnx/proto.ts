/**
 * ONNX protobuf codec: {@linkcode encodeModel} and {@linkcode decodeModel} for ModelProto and every
 * message under it that the IR models. Fields the IR does not model are kept as raw bytes and written
 * back, so decode → encode loses nothing. Tensor bytes are zero-copy views on decode and are copied
 * exactly once (into the output buffer) on encode.
 *
 * Hand-written rather than generated: see `bench/proto_bench.ts` for the comparison with protobufjs.
 *
 * @module
 */

import { Reader, WIRE, Writer } from "./_wire.ts";
import {
  type Attribute,
  DATA_TYPE_CODES,
  type Dim,
  type DType,
  DTYPE_BYTES,
  type Graph,
  type Model,
  type Node,
  type OpsetImport,
  type TensorData,
  type TensorStorage,
  type TensorType,
  type UnknownFields,
  type ValueInfo,
} from "./types.ts";

const CODE_TO_DTYPE = new Map<number, DType>(
  Object.entries(DATA_TYPE_CODES).map(([name, code]) => [code, name as DType]),
);

const ATTRIBUTE_TYPE_CODES = {
  float: 1,
  int: 2,
  string: 3,
  tensor: 4,
  graph: 5,
  floats: 6,
  ints: 7,
  strings: 8,
  tensors: 9,
  graphs: 10,
} as const;

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder("utf-8", { fatal: true });

/** The dtype for an ONNX `TensorProto.DataType` code; throws on codes this toolkit does not handle. */
export function dtypeFromCode(code: number): DType {
  const dtype = CODE_TO_DTYPE.get(code);
  if (dtype === undefined) throw new TypeError(`Unsupported ONNX data type code ${code}`);
  return dtype;
}

function unknowns(target: object): Uint8Array[] {
  const holder = target as UnknownFields;
  return (holder.unknownFields ??= []);
}

function writeUnknowns(w: Writer, source: object): void {
  for (const raw of (source as UnknownFields).unknownFields ?? []) w.raw(raw);
}

// ---------------------------------------------------------------------------------------------------
// Encoding

/** Options for {@linkcode encodeModel}. */
export interface EncodeModelOptions {
  /**
   * Move initializers of at least this many bytes into an external data blob (ONNX external data),
   * required for models over protobuf's 2 GB limit. `undefined` keeps every tensor inline.
   * @default {undefined}
   */
  externalDataThreshold?: number;
  /**
   * File name recorded in the external data references, relative to the model file.
   * @default {"model.onnx.data"}
   */
  externalDataLocation?: string;
}

/** The result of {@linkcode encodeModel}. */
export interface EncodedModel {
  /** The ModelProto bytes. */
  model: Uint8Array;
  /** External tensor bytes (present only when some initializer was moved out). */
  externalData?: Uint8Array;
  /** File name the model refers to for {@linkcode EncodedModel.externalData}. */
  externalDataLocation?: string;
}

/** Protobuf's hard size limit for one message. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/**
 * Encodes a model to ONNX protobuf bytes.
 *
 * @param model The model to encode.
 * @param options External-data settings for large models.
 * @returns The encoded model (and external data when initializers were moved out).
 * @throws {RangeError} When the model would exceed protobuf's 2 GB limit without external data.
 * @example
 * ```ts
 * import { decodeModel, encodeModel } from "./proto.ts";
 * import { GraphBuilder } from "./builder.ts";
 * const b = new GraphBuilder("g");
 * const x = b.input("x", "float32", [2]);
 * b.output(b.neg(x), "y");
 * const { model } = encodeModel(b.toModel());
 * console.assert(decodeModel(model).graph.nodes[0].opType === "Neg");
 * ```
 */
export function encodeModel(model: Model, options: EncodeModelOptions = {}): EncodedModel {
  const location = options.externalDataLocation ?? "model.onnx.data";
  const external = options.externalDataThreshold === undefined
    ? undefined
    : { threshold: options.externalDataThreshold, location, chunks: [] as Uint8Array[], size: 0 };
  const w = new Writer();
  if (model.irVersion) w.varintField(1, model.irVersion);
  if (model.producerName) w.stringField(2, model.producerName);
  if (model.producerVersion) w.stringField(3, model.producerVersion);
  if (model.domain) w.stringField(4, model.domain);
  if (model.modelVersion) w.varintField(5, model.modelVersion);
  if (model.docString) w.stringField(6, model.docString);
  w.messageField(7, (g) => writeGraph(g, model.graph, external));
  for (const opset of model.opsetImports) w.messageField(8, (o) => writeOpset(o, opset));
  for (const [key, value] of Object.entries(model.metadataProps)) {
    w.messageField(14, (e) => writeStringEntry(e, key, value));
  }
  writeUnknowns(w, model);
  if (w.length > PROTOBUF_LIMIT) {
    throw new RangeError(
      `Cannot encode ONNX model "${model.graph.name}": ${w.length} bytes exceeds protobuf's 2 GB limit; ` +
        `set externalDataThreshold to move large initializers to external data`,
    );
  }
  const out: EncodedModel = { model: w.finish() };
  if (external && external.size > 0) {
    out.externalData = concatChunks(external.chunks, external.size);
    out.externalDataLocation = location;
  }
  return out;
}

interface ExternalSink {
  threshold: number;
  location: string;
  chunks: Uint8Array[];
  size: number;
}

function concatChunks(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function writeOpset(w: Writer, opset: OpsetImport): void {
  if (opset.domain !== undefined) w.stringField(1, opset.domain);
  w.varintField(2, opset.version);
  writeUnknowns(w, opset);
}

function writeStringEntry(w: Writer, key: string, value: string): void {
  w.stringField(1, key);
  w.stringField(2, value);
}

function writeGraph(w: Writer, graph: Graph, external?: ExternalSink): void {
  for (const node of graph.nodes) w.messageField(1, (n) => writeNode(n, node));
  if (graph.name) w.stringField(2, graph.name);
  for (const tensor of graph.initializers) w.messageField(5, (t) => writeTensor(t, tensor, external));
  if (graph.docString) w.stringField(10, graph.docString);
  for (const info of graph.inputs) w.messageField(11, (v) => writeValueInfo(v, info));
  for (const info of graph.outputs) w.messageField(12, (v) => writeValueInfo(v, info));
  for (const info of graph.valueInfo) w.messageField(13, (v) => writeValueInfo(v, info));
  writeUnknowns(w, graph);
}

function writeNode(w: Writer, node: Node): void {
  for (const input of node.inputs) w.stringField(1, input);
  for (const output of node.outputs) w.stringField(2, output);
  if (node.name) w.stringField(3, node.name);
  w.stringField(4, node.opType);
  for (const [name, attribute] of Object.entries(node.attributes)) {
    w.messageField(5, (a) => writeAttribute(a, name, attribute));
  }
  if (node.docString) w.stringField(6, node.docString);
  if (node.domain !== undefined) w.stringField(7, node.domain);
  writeUnknowns(w, node);
}

function writeAttribute(w: Writer, name: string, attribute: Attribute): void {
  if (attribute.type === "raw") {
    w.raw(attribute.value);
    return;
  }
  w.stringField(1, name);
  switch (attribute.type) {
    case "float":
      w.floatField(2, attribute.value);
      break;
    case "int":
      w.varintField(3, attribute.value);
      break;
    case "string":
      w.stringField(4, attribute.value);
      break;
    case "tensor":
      w.messageField(5, (t) => writeTensor(t, attribute.value));
      break;
    case "graph":
      w.messageField(6, (g) => writeGraph(g, attribute.value));
      break;
    case "floats":
      for (const f of attribute.value) w.floatField(7, f);
      break;
    case "ints":
      for (const i of attribute.value) w.varintField(8, i);
      break;
    case "strings":
      for (const s of attribute.value) w.stringField(9, s);
      break;
    case "tensors":
      for (const t of attribute.value) w.messageField(10, (m) => writeTensor(m, t));
      break;
    case "graphs":
      for (const g of attribute.value) w.messageField(11, (m) => writeGraph(m, g));
      break;
  }
  writeUnknowns(w, attribute);
  w.varintField(20, ATTRIBUTE_TYPE_CODES[attribute.type]);
}

function writeValueInfo(w: Writer, info: ValueInfo): void {
  w.stringField(1, info.name);
  if (info.rawType) w.bytesField(2, info.rawType);
  else if (info.type) {
    const type = info.type;
    w.messageField(2, (t) => t.messageField(1, (tt) => writeTensorType(tt, type)));
  }
  if (info.docString) w.stringField(3, info.docString);
  writeUnknowns(w, info);
}

function writeTensorType(w: Writer, type: TensorType): void {
  w.varintField(1, DATA_TYPE_CODES[type.dtype]);
  if (type.shape === undefined) return;
  const shape = type.shape;
  w.messageField(2, (s) => {
    for (const dim of shape) {
      s.messageField(1, (d) => {
        if (typeof dim === "number") d.varintField(1, dim);
        else if (dim !== "") d.stringField(2, dim);
      });
    }
  });
}

function writeTensor(w: Writer, tensor: TensorData, external?: ExternalSink): void {
  for (const dim of tensor.dims) w.varintField(1, dim);
  w.varintField(2, DATA_TYPE_CODES[tensor.dtype]);
  const storage = tensor.dtype === "string" ? "string_data" : tensor.storage ?? "raw_data";
  const moveOut = external !== undefined && tensor.external === undefined && storage === "raw_data" &&
    tensor.data.length >= external.threshold;
  const inline = !tensor.external && !moveOut;
  // Fields go out in field-number order, as protobuf's own serializers write them (byte-identical
  // re-encoding of files from other tools depends on it): 4-7 typed values, 8 name, 9 raw_data,
  // 10-11 typed values, 12 doc_string, 13-14 external data.
  if (inline && (storage === "float_data" || storage === "int32_data" || storage === "string_data")) {
    writeTypedValues(w, tensor, storage);
  }
  if (inline && storage === "int64_data") writeTypedValues(w, tensor, storage);
  if (tensor.name) w.stringField(8, tensor.name);
  // An empty raw_data is written only when it was read (protobuf field presence): a tensor with no
  // elements needs no data field.
  if (inline && storage === "raw_data" && (tensor.data.length > 0 || tensor.storage === "raw_data")) {
    w.bytesField(9, tensor.data);
  }
  if (inline && (storage === "double_data" || storage === "uint64_data")) {
    writeTypedValues(w, tensor, storage);
  }
  if (tensor.docString) w.stringField(12, tensor.docString);
  if (tensor.external || moveOut) {
    let ref = tensor.external;
    if (moveOut && external) {
      // Align each tensor to 64 bytes, as onnx's external-data writer does for mmap-friendly loads.
      const pad = (64 - (external.size % 64)) % 64;
      if (pad) external.chunks.push(new Uint8Array(pad));
      external.size += pad;
      ref = { location: external.location, offset: external.size, length: tensor.data.length };
      external.chunks.push(tensor.data);
      external.size += tensor.data.length;
    }
    const { location, offset, length } = ref!;
    w.messageField(13, (e) => writeStringEntry(e, "location", location));
    w.messageField(13, (e) => writeStringEntry(e, "offset", String(offset)));
    w.messageField(13, (e) => writeStringEntry(e, "length", String(length)));
    w.varintField(14, 1);
  }
  writeUnknowns(w, tensor);
}

function writeTypedValues(w: Writer, tensor: TensorData, storage: TensorStorage): void {
  const view = new DataView(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const count = DTYPE_BYTES[tensor.dtype] ? tensor.data.length / DTYPE_BYTES[tensor.dtype] : 0;
  switch (storage) {
    case "float_data":
      if (count) w.bytesField(4, tensor.data);
      return;
    case "double_data":
      if (count) w.bytesField(10, tensor.data);
      return;
    case "string_data":
      for (const s of tensor.strings ?? []) w.bytesField(6, s);
      return;
    case "int32_data":
    case "int64_data":
    case "uint64_data": {
      if (!count) return;
      const packed = new Writer();
      const wide = tensor.dtype === "int64" || tensor.dtype === "uint64";
      for (let i = 0; i < count; i++) {
        // 64-bit values go through BigInt so that values beyond 2^53 survive exactly.
        if (wide) packed.varintBig(view.getBigInt64(i * 8, true));
        else packed.varint(readElementAsNumber(view, tensor.dtype, i));
      }
      const field = storage === "int32_data" ? 5 : storage === "int64_data" ? 7 : 11;
      w.bytesField(field, packed.finish());
      return;
    }
  }
}

function readElementAsNumber(view: DataView, dtype: DType, i: number): number {
  switch (dtype) {
    case "int8":
      return view.getInt8(i);
    case "uint8":
    case "bool":
      return view.getUint8(i);
    case "int16":
      return view.getInt16(i * 2, true);
    case "uint16":
    case "float16":
    case "bfloat16":
      return view.getUint16(i * 2, true);
    case "int32":
      return view.getInt32(i * 4, true);
    case "uint32":
      return view.getUint32(i * 4, true);
    case "int64":
      return Number(view.getBigInt64(i * 8, true));
    case "uint64":
      return Number(view.getBigUint64(i * 8, true));
    default:
      throw new TypeError(`Cannot store ${dtype} values in an integer field`);
  }
}

function writeElementFromNumber(view: DataView, dtype: DType, i: number, value: number): void {
  switch (dtype) {
    case "int8":
      return view.setInt8(i, value);
    case "uint8":
    case "bool":
      return view.setUint8(i, value);
    case "int16":
      return view.setInt16(i * 2, value, true);
    case "uint16":
    case "float16":
    case "bfloat16":
      return view.setUint16(i * 2, value, true);
    case "int32":
      return view.setInt32(i * 4, value, true);
    case "uint32":
      return view.setUint32(i * 4, value, true);
    case "int64":
      return view.setBigInt64(i * 8, BigInt(value), true);
    case "uint64":
      return view.setBigUint64(i * 8, BigInt.asUintN(64, BigInt(value)), true);
    default:
      throw new TypeError(`Cannot read ${dtype} values from an integer field`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes ONNX protobuf bytes into a {@linkcode Model}. Tensor data are views into `bytes` (no copy):
 * keep `bytes` alive and unmodified while the model is used.
 *
 * @param bytes An encoded ModelProto.
 * @returns The decoded model.
 * @throws {RangeError} On malformed bytes, naming the byte offset and the message being read.
 * @throws {TypeError} On an element type this toolkit does not handle.
 */
export function decodeModel(bytes: Uint8Array): Model {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("Cannot decode ONNX model: expected a Uint8Array");
  const r = new Reader(bytes, "ModelProto");
  if (bytes.length === 0) r.fail("the input is empty");
  const model: Model = {
    irVersion: 0,
    opsetImports: [],
    producerName: "",
    producerVersion: "",
    domain: "",
    modelVersion: 0,
    docString: "",
    metadataProps: {},
    graph: emptyGraph(),
  };
  let sawGraph = false;
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.varint) model.irVersion = r.varint();
    else if (field === 2 && wire === WIRE.bytes) model.producerName = r.string();
    else if (field === 3 && wire === WIRE.bytes) model.producerVersion = r.string();
    else if (field === 4 && wire === WIRE.bytes) model.domain = r.string();
    else if (field === 5 && wire === WIRE.varint) model.modelVersion = r.varint();
    else if (field === 6 && wire === WIRE.bytes) model.docString = r.string();
    else if (field === 7 && wire === WIRE.bytes) {
      model.graph = readGraph(r.message("ModelProto.graph"));
      sawGraph = true;
    } else if (field === 8 && wire === WIRE.bytes) {
      model.opsetImports.push(readOpset(r.message("OperatorSetId")));
    } else if (field === 14 && wire === WIRE.bytes) {
      const [key, value] = readStringEntry(r.message("ModelProto.metadata_props"));
      model.metadataProps[key] = value;
    } else unknowns(model).push(r.skip(start, wire));
  }
  // A truncated file can still parse as a shorter message: the required fields catch that.
  if (!sawGraph) r.fail("ModelProto has no graph (is this an ONNX file, complete?)");
  if (model.irVersion === 0) r.fail("ModelProto has no ir_version");
  if (model.opsetImports.length === 0) r.fail("ModelProto has no opset_import");
  return model;
}

function emptyGraph(): Graph {
  return { name: "", nodes: [], inputs: [], outputs: [], initializers: [], valueInfo: [] };
}

function readOpset(r: Reader): OpsetImport {
  const opset: OpsetImport = { version: 0 };
  let domain: string | undefined;
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes) domain = r.string();
    else if (field === 2 && wire === WIRE.varint) opset.version = r.varint();
    else unknowns(opset).push(r.skip(start, wire));
  }
  if (domain !== undefined) opset.domain = domain;
  return opset;
}

function readStringEntry(r: Reader): [string, string] {
  let key = "";
  let value = "";
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes) key = r.string();
    else if (field === 2 && wire === WIRE.bytes) value = r.string();
    else r.skip(start, wire);
  }
  return [key, value];
}

function readGraph(r: Reader): Graph {
  const graph = emptyGraph();
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes) {
      graph.nodes.push(readNode(r.message(`NodeProto #${graph.nodes.length}`)));
    } else if (field === 2 && wire === WIRE.bytes) graph.name = r.string();
    else if (field === 5 && wire === WIRE.bytes) {
      graph.initializers.push(readTensor(r.message(`initializer #${graph.initializers.length}`)));
    } else if (field === 10 && wire === WIRE.bytes) graph.docString = r.string();
    else if (field === 11 && wire === WIRE.bytes) {
      graph.inputs.push(readValueInfo(r.message("GraphProto.input")));
    } else if (field === 12 && wire === WIRE.bytes) {
      graph.outputs.push(readValueInfo(r.message("GraphProto.output")));
    } else if (field === 13 && wire === WIRE.bytes) {
      graph.valueInfo.push(readValueInfo(r.message("GraphProto.value_info")));
    } else unknowns(graph).push(r.skip(start, wire));
  }
  return graph;
}

function readNode(r: Reader): Node {
  const node: Node = { opType: "", name: "", inputs: [], outputs: [], attributes: {} };
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes) node.inputs.push(r.string());
    else if (field === 2 && wire === WIRE.bytes) node.outputs.push(r.string());
    else if (field === 3 && wire === WIRE.bytes) node.name = r.string();
    else if (field === 4 && wire === WIRE.bytes) node.opType = r.string();
    else if (field === 5 && wire === WIRE.bytes) {
      const [name, attribute] = readAttribute(r.message(`attribute of node "${node.name}"`));
      node.attributes[name] = attribute;
    } else if (field === 6 && wire === WIRE.bytes) node.docString = r.string();
    else if (field === 7 && wire === WIRE.bytes) node.domain = r.string();
    else unknowns(node).push(r.skip(start, wire));
  }
  if (!node.opType) r.fail(`node "${node.name}" has no op_type`);
  return node;
}

function readAttribute(r: Reader): [string, Attribute] {
  const whole = r.buf.subarray(r.pos, r.end);
  let name = "";
  let typeCode = 0;
  let f = 0, i = 0, s = "";
  let t: TensorData | undefined;
  let g: Graph | undefined;
  const floats: number[] = [], ints: number[] = [], strings: string[] = [];
  const tensors: TensorData[] = [], graphs: Graph[] = [];
  const extra: Uint8Array[] = [];
  let binary: string | undefined; // set when a string value is not UTF-8: the attribute is kept raw
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes) name = r.string();
    else if (field === 2 && wire === WIRE.fixed32) f = r.float();
    else if (field === 3 && wire === WIRE.varint) i = r.varint();
    else if (field === 4 && wire === WIRE.bytes) s = utf8OrUndefined(r.bytes()) ?? (binary = "");
    else if (field === 5 && wire === WIRE.bytes) t = readTensor(r.message(`tensor attribute "${name}"`));
    else if (field === 6 && wire === WIRE.bytes) g = readGraph(r.message(`graph attribute "${name}"`));
    else if (field === 7) r.repeated(wire, WIRE.fixed32, () => floats.push(r.float()));
    else if (field === 8) r.repeated(wire, WIRE.varint, () => ints.push(r.varint()));
    else if (field === 9 && wire === WIRE.bytes) strings.push(utf8OrUndefined(r.bytes()) ?? (binary = ""));
    else if (field === 10 && wire === WIRE.bytes) tensors.push(readTensor(r.message(`tensors of "${name}"`)));
    else if (field === 11 && wire === WIRE.bytes) graphs.push(readGraph(r.message(`graphs of "${name}"`)));
    else if (field === 20 && wire === WIRE.varint) typeCode = r.varint();
    else extra.push(r.skip(start, wire));
  }
  if (binary !== undefined) return [name, { type: "raw", value: whole }];
  let attribute: Attribute;
  switch (typeCode) {
    case 1:
      attribute = { type: "float", value: f };
      break;
    case 2:
      attribute = { type: "int", value: i };
      break;
    case 3:
      attribute = { type: "string", value: s };
      break;
    case 4:
      attribute = { type: "tensor", value: t ?? r.fail(`tensor attribute "${name}" has no tensor`) };
      break;
    case 5:
      attribute = { type: "graph", value: g ?? r.fail(`graph attribute "${name}" has no graph`) };
      break;
    case 6:
      attribute = { type: "floats", value: floats };
      break;
    case 7:
      attribute = { type: "ints", value: ints };
      break;
    case 8:
      attribute = { type: "strings", value: strings };
      break;
    case 9:
      attribute = { type: "tensors", value: tensors };
      break;
    case 10:
      attribute = { type: "graphs", value: graphs };
      break;
    default:
      // Sparse tensors, type protos, attribute references and untyped legacy attributes: keep verbatim.
      return [name, { type: "raw", value: whole }];
  }
  if (extra.length) (attribute as UnknownFields).unknownFields = extra;
  return [name, attribute];
}

/** Decodes UTF-8, or undefined when the bytes are not valid UTF-8 (AttributeProto strings are bytes). */
function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return TEXT_DECODER.decode(bytes);
  } catch {
    return undefined;
  }
}

function readValueInfo(r: Reader): ValueInfo {
  const info: ValueInfo = { name: "" };
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes) info.name = r.string();
    else if (field === 2 && wire === WIRE.bytes) {
      const child = r.message(`type of "${info.name}"`);
      const typeBytes = child.buf.subarray(child.pos, child.end);
      const tensorType = readTypeProto(child);
      if (tensorType) info.type = tensorType;
      else info.rawType = typeBytes;
    } else if (field === 3 && wire === WIRE.bytes) info.docString = r.string();
    else unknowns(info).push(r.skip(start, wire));
  }
  return info;
}

/**
 * Reads a TypeProto; returns undefined (the caller keeps the bytes raw) unless it is a plain tensor type
 * whose every field the IR models, so that re-encoding it gives the same bytes.
 */
function readTypeProto(r: Reader): TensorType | undefined {
  let type: TensorType | undefined;
  let other = false;
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.bytes && !type) {
      type = readTensorType(r.message("TypeProto.tensor_type"));
    } else {
      other = true;
      r.skip(start, wire);
    }
  }
  return other ? undefined : type;
}

/** Reads TypeProto.Tensor; undefined when it holds anything the IR does not model (kept raw). */
function readTensorType(r: Reader): TensorType | undefined {
  let dtype: DType | undefined;
  let shape: Dim[] | undefined;
  let other = false;
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1 && wire === WIRE.varint && dtype === undefined) {
      dtype = CODE_TO_DTYPE.get(r.varint());
      other ||= dtype === undefined;
    } else if (field === 2 && wire === WIRE.bytes && shape === undefined) {
      shape = [];
      const s = r.message("TensorShapeProto");
      while (s.more()) {
        const dimStart = s.pos;
        const [dimField, dimWire] = s.tag();
        if (dimField === 1 && dimWire === WIRE.bytes) {
          const dim = readDim(s.message("Dimension"));
          if (dim === undefined) other = true;
          else shape.push(dim);
        } else {
          other = true;
          s.skip(dimStart, dimWire);
        }
      }
    } else {
      other = true;
      r.skip(start, wire);
    }
  }
  if (other || dtype === undefined) return undefined;
  return shape === undefined ? { dtype } : { dtype, shape };
}

/** Reads a Dimension: a size, a symbolic name, or "" for neither; undefined for anything else. */
function readDim(r: Reader): Dim | undefined {
  let dim: Dim = "";
  let fields = 0;
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    fields++;
    if (field === 1 && wire === WIRE.varint) dim = r.varint();
    else if (field === 2 && wire === WIRE.bytes) {
      dim = r.string();
      if (dim === "") return undefined; // an explicitly empty dim_param: keep the type raw
    } else {
      r.skip(start, wire);
      return undefined;
    }
  }
  return fields > 1 || (typeof dim === "number" && dim < 0) ? undefined : dim;
}

function readTensor(r: Reader): TensorData {
  const tensor: TensorData = { name: "", dtype: "float32", dims: [], data: new Uint8Array(0) };
  let dtypeCode = 0;
  let dtypeAt = r.pos;
  const intValues: number[] = [];
  const wideValues: bigint[] = [];
  const strings: Uint8Array[] = [];
  const external: Record<string, string> = {};
  let dataLocation = 0;
  let packedBytes: Uint8Array | undefined;
  while (r.more()) {
    const start = r.pos;
    const [field, wire] = r.tag();
    if (field === 1) {
      r.repeated(wire, WIRE.varint, () => {
        const dim = r.varint();
        if (dim < 0 || !Number.isSafeInteger(dim)) r.fail(`tensor dimension ${dim} is invalid`);
        tensor.dims.push(dim);
      });
    } else if (field === 2 && wire === WIRE.varint) {
      dtypeAt = r.pos;
      dtypeCode = r.varint();
    } else if (field === 4 || field === 10) {
      tensor.storage = field === 4 ? "float_data" : "double_data";
      const size = field === 4 ? 4 : 8;
      if (wire === WIRE.bytes) packedBytes = concatBytes(packedBytes, r.bytes());
      else {
        const one = r.skip(r.pos, field === 4 ? WIRE.fixed32 : WIRE.fixed64);
        packedBytes = concatBytes(packedBytes, one.subarray(one.length - size));
      }
    } else if (field === 5) {
      tensor.storage = "int32_data";
      r.repeated(wire, WIRE.varint, () => intValues.push(r.varint()));
    } else if (field === 7 || field === 11) {
      // 64-bit values are read exactly (INT64_MAX is a common Slice bound).
      tensor.storage = field === 7 ? "int64_data" : "uint64_data";
      r.repeated(wire, WIRE.varint, () => wideValues.push(r.varintBig()));
    } else if (field === 6 && wire === WIRE.bytes) {
      tensor.storage = "string_data";
      strings.push(r.bytes());
    } else if (field === 8 && wire === WIRE.bytes) tensor.name = r.string();
    else if (field === 9 && wire === WIRE.bytes) {
      tensor.data = r.bytes();
      if (tensor.data.length === 0) tensor.storage = "raw_data"; // present though empty: write it back
    } else if (field === 12 && wire === WIRE.bytes) tensor.docString = r.string();
    else if (field === 13 && wire === WIRE.bytes) {
      const [key, value] = readStringEntry(r.message("TensorProto.external_data"));
      external[key] = value;
    } else if (field === 14 && wire === WIRE.varint) dataLocation = r.varint();
    else unknowns(tensor).push(r.skip(start, wire));
  }
  const dtype = CODE_TO_DTYPE.get(dtypeCode || 1);
  if (dtype === undefined) {
    r.pos = dtypeAt;
    r.fail(`tensor "${tensor.name}" has unsupported data type code ${dtypeCode}`, TypeError);
  }
  tensor.dtype = dtype;
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (dataLocation === 1) {
    if (!external.location) r.fail(`tensor "${tensor.name}" has external data without a location`);
    tensor.external = {
      location: external.location,
      offset: Number(external.offset ?? 0),
      length: Number(external.length ?? count * DTYPE_BYTES[tensor.dtype]),
    };
  } else if (tensor.storage === "string_data") tensor.strings = strings;
  else if (packedBytes) tensor.data = packedBytes;
  else if (tensor.storage === "int32_data") {
    const bytes = new Uint8Array(intValues.length * DTYPE_BYTES[tensor.dtype]);
    const view = new DataView(bytes.buffer);
    intValues.forEach((v, i) => writeElementFromNumber(view, tensor.dtype, i, v));
    tensor.data = bytes;
  } else if (tensor.storage === "int64_data" || tensor.storage === "uint64_data") {
    const bytes = new Uint8Array(wideValues.length * DTYPE_BYTES[tensor.dtype]);
    const view = new DataView(bytes.buffer);
    const wide = tensor.dtype === "int64" || tensor.dtype === "uint64";
    wideValues.forEach((v, i) => {
      if (wide) view.setBigInt64(i * 8, v, true);
      else writeElementFromNumber(view, tensor.dtype, i, Number(BigInt.asUintN(64, v)));
    });
    tensor.data = bytes;
  }
  if (
    !tensor.external && tensor.dtype !== "string" && tensor.data.length !== count * DTYPE_BYTES[tensor.dtype]
  ) {
    r.fail(
      `tensor "${tensor.name}" of ${tensor.dtype}[${
        tensor.dims.join(", ")
      }] has ${tensor.data.length} data bytes, ` +
        `expected ${count * DTYPE_BYTES[tensor.dtype]}`,
    );
  }
  return tensor;
}

function concatBytes(a: Uint8Array | undefined, b: Uint8Array): Uint8Array {
  if (!a) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Returns a copy of `model` whose external initializers carry their bytes inline, read from `files`
 * (file name → bytes, as returned by {@linkcode encodeModel}'s external data).
 *
 * @param model A model with external initializers.
 * @param files The external data files by their recorded location.
 * @returns The model with every tensor's `data` filled in.
 * @throws {RangeError} When a referenced file is missing or too short.
 */
export function resolveExternalData(model: Model, files: Record<string, Uint8Array>): Model {
  const initializers = model.graph.initializers.map((tensor) => {
    if (!tensor.external) return tensor;
    const { location, offset, length } = tensor.external;
    const file = files[location];
    if (!file) {
      throw new RangeError(
        `Cannot load tensor "${tensor.name}": external data file "${location}" is missing`,
      );
    }
    if (offset + length > file.length) {
      throw new RangeError(
        `Cannot load tensor "${tensor.name}": bytes ${offset}..${offset + length} lie past the end of ` +
          `"${location}" (${file.length} bytes)`,
      );
    }
    const { external: _external, ...rest } = tensor;
    return { ...rest, data: file.subarray(offset, offset + length) };
  });
  return { ...model, graph: { ...model.graph, initializers } };
}

/** Encodes a UTF-8 string to bytes (exported for tensor builders of string tensors). */
export function utf8(text: string): Uint8Array {
  return TEXT_ENCODER.encode(text);
}
