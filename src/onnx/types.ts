/**
 * The ONNX graph IR: plain data structures that mirror ONNX's protobuf messages
 * (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto, AttributeProto).
 *
 * Tensor bytes are always held as `Uint8Array` views in little-endian order (ONNX's
 * `raw_data` layout), never as JS number arrays.
 *
 * @module
 */

/** ONNX element types this toolkit names. The numeric codes are ONNX's `TensorProto.DataType`. */
export const DATA_TYPE_CODES = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
} as const;

/** An ONNX element type, by its onnxruntime-web name. */
export type DType = keyof typeof DATA_TYPE_CODES;

/** Bytes per element of each fixed-width dtype (`string` has none: 0). */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  int32: 4,
  int64: 8,
  string: 0,
  bool: 1,
  float16: 2,
  float64: 8,
  uint32: 4,
  uint64: 8,
  bfloat16: 2,
};

/** A dimension: a fixed size, or a symbolic name (ONNX `dim_param`) such as `"batch"`. */
export type Dim = number | string;

/** A tensor shape: one {@linkcode Dim} per axis. */
export type Shape = Dim[];

/** The static type of a value in a graph. */
export interface TensorType {
  /** Element type. */
  dtype: DType;
  /** Shape; `undefined` when even the rank is unknown (only in decoded foreign graphs). */
  shape?: Shape;
}

/** A named, typed value: a graph input or output, or an intermediate (ONNX `ValueInfoProto`). */
export interface ValueInfo {
  /** Name unique within the graph. */
  name: string;
  /** Element type and shape. `undefined` for non-tensor types kept only as raw bytes. */
  type?: TensorType;
  /** Free text (ONNX `doc_string`). */
  docString?: string;
  /** Encoded `TypeProto` kept verbatim when the type is not a tensor (sequence, map, optional). */
  rawType?: Uint8Array;
}

/** Where an external initializer's bytes live (ONNX `external_data`, `data_location = EXTERNAL`). */
export interface ExternalDataRef {
  /** File name relative to the model file. */
  location: string;
  /** Byte offset in that file. */
  offset: number;
  /** Byte length. */
  length: number;
}

/** How a decoded tensor's values were stored in the protobuf, kept so that re-encoding is lossless. */
export type TensorStorage =
  | "raw_data"
  | "float_data"
  | "int32_data"
  | "string_data"
  | "int64_data"
  | "double_data"
  | "uint64_data";

/** A constant tensor: an initializer, a `Constant` value or a tensor attribute (ONNX `TensorProto`). */
export interface TensorData {
  /** Name (empty for attribute tensors that have none). */
  name: string;
  /** Element type. */
  dtype: DType;
  /** Concrete dimensions. */
  dims: number[];
  /** Little-endian element bytes (ONNX `raw_data` layout); empty when {@linkcode external} is set. */
  data: Uint8Array;
  /** Set when the bytes live in an external file. */
  external?: ExternalDataRef;
  /** Strings of a `string` tensor (they have no byte layout). */
  strings?: Uint8Array[];
  /** The protobuf field the values came from; encoders use `raw_data` when unset. */
  storage?: TensorStorage;
  /** Free text (ONNX `doc_string`). */
  docString?: string;
}

/** A node attribute value, tagged with its ONNX attribute type (ints and floats are distinct in ONNX). */
export type Attribute =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "string"; value: string }
  | { type: "tensor"; value: TensorData }
  | { type: "graph"; value: Graph }
  | { type: "ints"; value: number[] }
  | { type: "floats"; value: number[] }
  | { type: "strings"; value: string[] }
  | { type: "tensors"; value: TensorData[] }
  | { type: "graphs"; value: Graph[] }
  | { type: "raw"; value: Uint8Array };

/** One operator application (ONNX `NodeProto`). */
export interface Node {
  /** Operator name, e.g. `"MatMul"`. */
  opType: string;
  /** Operator domain; `undefined` or `""` is the default ONNX domain. */
  domain?: string;
  /** Node name, unique within the graph (used in error messages). */
  name: string;
  /** Input value names; `""` marks an omitted optional input. */
  inputs: string[];
  /** Output value names. */
  outputs: string[];
  /** Attributes by name. */
  attributes: Record<string, Attribute>;
  /** Free text (ONNX `doc_string`). */
  docString?: string;
}

/** A computation graph (ONNX `GraphProto`). Nodes are kept in topological order. */
export interface Graph {
  /** Graph name. */
  name: string;
  /** Nodes in topological order. */
  nodes: Node[];
  /** Graph inputs (runtime feeds). */
  inputs: ValueInfo[];
  /** Graph outputs. */
  outputs: ValueInfo[];
  /** Constant tensors baked into the model. */
  initializers: TensorData[];
  /** Types of intermediate values (optional annotations). */
  valueInfo: ValueInfo[];
  /** Free text (ONNX `doc_string`). */
  docString?: string;
}

/** An operator set the model uses (ONNX `OperatorSetIdProto`). */
export interface OpsetImport {
  /** Domain; `undefined` or `""` for the default ONNX domain. */
  domain?: string;
  /** Opset version. */
  version: number;
}

/** A whole model (ONNX `ModelProto`). */
export interface Model {
  /** ONNX IR version (8 for opset 17/18). */
  irVersion: number;
  /** Operator sets imported. */
  opsetImports: OpsetImport[];
  /** Producing tool. */
  producerName: string;
  /** Producing tool's version. */
  producerVersion: string;
  /** Model namespace. */
  domain: string;
  /** Model version. */
  modelVersion: number;
  /** Free text. */
  docString: string;
  /** Key/value metadata. */
  metadataProps: Record<string, string>;
  /** The main graph. */
  graph: Graph;
}

/**
 * Protobuf fields the IR does not model (training_info, functions, sparse tensors, …), kept as their raw
 * encoded bytes (tag included) so a decode → encode round trip loses nothing. Attached to IR objects
 * under this symbol-free key by the codec.
 */
export interface UnknownFields {
  /** Raw encoded fields, in the order they were read. */
  unknownFields?: Uint8Array[];
}
