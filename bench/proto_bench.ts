/**
 * Protobuf codec benchmark: our hand-written ONNX codec (`src/onnx/proto.ts`) against protobufjs with
 * the same ONNX schema subset (parsed from `.proto` text with `protobuf.parse`), on two models:
 * - `weights`: 100 MiB of initializers (25 float32 matrices of 4 MiB, plus biases) and 302 nodes — the
 *   cost is moving tensor bytes;
 * - `graph`: 3,001 nodes with small constants (0.4 MB) — the cost is parsing and writing messages.
 *
 * Each codec decodes the same bytes and encodes its own decoded form (our IR; protobufjs's message
 * objects), and must give the input bytes back exactly. Rounds alternate which codec goes first (these
 * shared machines vary up to 2× from minute to minute, so only side-by-side figures compare); medians
 * are reported, with MB/s (MB = 10^6 bytes of encoded model) and the ratio protobufjs / ours.
 *
 * Prints Markdown tables and writes `bench/results/proto.json`.
 *
 * Usage: `deno run -A bench/proto_bench.ts [--rounds=N]` (default 7 rounds).
 *
 * @module
 */

import protobuf from "protobufjs";
import { GraphBuilder } from "../src/onnx/builder.ts";
import { decodeModel, encodeModel } from "../src/onnx/proto.ts";
import type { Model } from "../src/onnx/types.ts";
import { figure, markdownTable } from "./_table.ts";

/** The ONNX messages the codec handles (field numbers and labels as in onnx.proto, proto2). */
const ONNX_SUBSET = `
syntax = "proto2";
package onnx;

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  optional string doc_string = 13;
  optional int32 type = 20;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  optional string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  optional string domain = 7;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}
`;

const TENSORS = 25;
const SIDE = 1024; // 1024 × 1024 float32 = 4 MiB per tensor

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function parseRounds(args: readonly string[]): number {
  const arg = args.find((a) => a.startsWith("--rounds="));
  const rounds = arg ? Number(arg.slice("--rounds=".length)) : 7;
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`--rounds must be a positive integer, got "${arg}"`);
  }
  return rounds;
}

/**
 * The `weights` model: 25 residual layers, each a 4 MiB weight matrix and a bias (MatMul, Add, a
 * sigmoid gate, an RMS-style scaling, Clip, residual Add: 12 nodes a layer).
 */
function weightsModel(): Model {
  const b = new GraphBuilder("proto_bench_weights", { opset: 18 });
  let x = b.input("x", "float32", ["batch", SIDE]);
  for (let i = 0; i < TENSORS; i++) {
    const w = new Float32Array(SIDE * SIDE);
    for (let k = 0; k < w.length; k++) w[k] = ((k * 2654435761 + i) % 1000) / 1e5;
    const weight = b.initializer(`layer${i}.weight`, w, [SIDE, SIDE]);
    const bias = b.initializer(`layer${i}.bias`, new Float32Array(SIDE).fill(0.01 * i), [SIDE]);
    b.withScope(`layer${i}`, () => {
      const h = b.add(b.matmul(x, weight), bias);
      const gate = b.sigmoid(b.mul(h, 1.702));
      const y = b.mul(h, gate);
      const norm = b.div(y, b.add(b.sqrt(b.reduceMean(b.mul(y, y), [-1])), 1e-5));
      x = b.add(b.clip(norm, -10, 10), x);
    });
  }
  b.output(b.softmax(x, -1), "y");
  return b.toModel();
}

/** The `graph` model: 1,000 × (Mul, Add, LayerNormalization) with scalar constants. */
function graphModel(): Model {
  const b = new GraphBuilder("proto_bench_graph", { opset: 18 });
  let x = b.input("x", "float32", ["batch", 64]);
  for (let i = 0; i < 1000; i++) x = b.layerNorm(b.add(b.mul(x, 1.5), 0.5), b.scalar(1));
  b.output(x, "y");
  return b.toModel();
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Sample {
  decodeMs: number;
  encodeMs: number;
}

/** Mean times of `repeats` back-to-back decode → encode round trips: one sample. */
function time(
  decode: () => unknown,
  encode: (decoded: unknown) => Uint8Array,
  size: number,
  repeats: number,
): Sample {
  let decodeMs = 0, encodeMs = 0;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const decoded = decode();
    const t1 = performance.now();
    const out = encode(decoded);
    const t2 = performance.now();
    if (out.length !== size) throw new Error(`Round trip gave ${out.length} bytes, expected ${size}`);
    decodeMs += t1 - t0;
    encodeMs += t2 - t1;
  }
  return { decodeMs: decodeMs / repeats, encodeMs: encodeMs / repeats };
}

function summary(samples: Sample[], bytes: number) {
  const decodeMs = median(samples.map((s) => s.decodeMs));
  const encodeMs = median(samples.map((s) => s.encodeMs));
  const totalMs = median(samples.map((s) => s.decodeMs + s.encodeMs));
  const mbPerS = (ms: number) => bytes / 1e6 / (ms / 1000);
  return {
    decodeMs,
    encodeMs,
    totalMs,
    decodeMBps: mbPerS(decodeMs),
    encodeMBps: mbPerS(encodeMs),
    totalMBps: mbPerS(totalMs),
    samples,
  };
}

interface Config {
  name: string;
  model: Model;
  /** Round trips averaged into one sample (small models need several for timer resolution). */
  repeats: number;
}

function benchmark(config: Config, type: protobuf.Type, rounds: number) {
  const bytes = encodeModel(config.model).model;
  const graph = config.model.graph;
  const nodes = graph.nodes.length;
  const initializerBytes = graph.initializers.reduce((n, t) => n + t.data.length, 0);
  console.log(
    `\n${config.name}: ${(bytes.length / 1e6).toFixed(1)} MB encoded, ${nodes} nodes, ` +
      `${graph.initializers.length} initializers (${(initializerBytes / 1e6).toFixed(1)} MB); ` +
      `${rounds} rounds of ${config.repeats} round trip(s) after a warm-up`,
  );
  // Correctness first: both decode the same model and give the same bytes back.
  const oursIdentical = equalBytes(encodeModel(decodeModel(bytes)).model, bytes);
  const protobufjsIdentical = equalBytes(type.encode(type.decode(bytes)).finish(), bytes);
  if (!oursIdentical) throw new Error(`Our decode → encode did not reproduce the ${config.name} bytes`);
  console.log(`protobufjs decode → encode reproduces the bytes: ${protobufjsIdentical}`);

  const runOurs = () =>
    time(() => decodeModel(bytes), (m) => encodeModel(m as Model).model, bytes.length, config.repeats);
  const runTheirs = () =>
    time(
      () => type.decode(bytes),
      (m) => type.encode(m as protobuf.Message).finish(),
      bytes.length,
      config.repeats,
    );
  runOurs();
  runTheirs();
  const ours: Sample[] = [];
  const theirs: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      ours.push(runOurs());
      theirs.push(runTheirs());
    } else {
      theirs.push(runTheirs());
      ours.push(runOurs());
    }
  }
  const a = summary(ours, bytes.length);
  const p = summary(theirs, bytes.length);
  const row = (name: string, s: ReturnType<typeof summary>) => [
    name,
    figure(s.decodeMs),
    figure(s.decodeMBps),
    figure(s.encodeMs),
    figure(s.encodeMBps),
    figure(s.totalMs),
    figure(s.totalMBps),
  ];
  console.log();
  console.log(markdownTable(
    ["codec", "decode ms", "decode MB/s", "encode ms", "encode MB/s", "total ms", "total MB/s"],
    [
      row("ours (src/onnx/proto.ts)", a),
      row("protobufjs 7.5.4", p),
      [
        "ratio protobufjs / ours",
        figure(p.decodeMs / a.decodeMs),
        "",
        figure(p.encodeMs / a.encodeMs),
        "",
        figure(p.totalMs / a.totalMs),
        "",
      ],
    ],
  ));
  return {
    model: { encodedBytes: bytes.length, nodes, initializers: graph.initializers.length, initializerBytes },
    repeatsPerSample: config.repeats,
    roundTripIdentical: { ours: oursIdentical, protobufjs: protobufjsIdentical },
    ours: a,
    protobufjs: p,
    ratioProtobufjsOverOurs: {
      decode: p.decodeMs / a.decodeMs,
      encode: p.encodeMs / a.encodeMs,
      total: p.totalMs / a.totalMs,
    },
  };
}

async function main(): Promise<void> {
  const rounds = parseRounds(Deno.args);
  const type = protobuf.parse(ONNX_SUBSET, { keepCase: true }).root.lookupType("onnx.ModelProto");
  const configs: Config[] = [
    { name: "weights", model: weightsModel(), repeats: 1 },
    { name: "graph", model: graphModel(), repeats: 10 },
  ];
  const results: Record<string, ReturnType<typeof benchmark>> = {};
  for (const config of configs) results[config.name] = benchmark(config, type, rounds);
  const result = {
    environment: {
      measuredAt: new Date().toISOString(),
      deno: Deno.version.deno,
      protobufjs: "7.5.4",
      cpus: navigator.hardwareConcurrency,
      rounds,
      megabyte: "10^6 bytes of encoded model",
    },
    ...results,
  };
  const out = new URL("./results/proto.json", import.meta.url);
  await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  console.log(`\nWrote ${out.pathname}`);
}

if (import.meta.main) await main();
