// Small trainable models for the training tests and benchmarks: a 2-layer MLP classifier and a one-block
// transformer language model (RMSNorm, causal attention, SwiGLU MLP), with every parameter a graph input.

import { GraphBuilder, type Value } from "../../src/onnx/builder.ts";
import type { Graph } from "../../src/onnx/types.ts";
import { seededRandom } from "./_numeric.ts";

/** A parameter with its initial values. */
export interface Param {
  name: string;
  shape: number[];
  init: Float32Array;
}

/** A forward graph with a `loss` output and its parameters. */
export interface TrainableModel {
  graph: Graph;
  params: Param[];
}

function param(
  b: GraphBuilder,
  params: Param[],
  name: string,
  shape: number[],
  scale: number,
  rand: () => number,
): Value {
  params.push({
    name,
    shape,
    init: Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rand() * scale),
  });
  return b.input(name, "float32", shape);
}

/** x [N, inputs] → tanh hidden → logits [N, classes] → mean cross-entropy against `labels` [N]. */
export function buildMlp(
  options: { batch: number; inputs: number; hidden: number; classes: number; seed?: number },
): TrainableModel {
  const rand = seededRandom(options.seed ?? 7);
  const b = new GraphBuilder("mlp");
  const params: Param[] = [];
  const x = b.input("x", "float32", [options.batch, options.inputs]);
  const labels = b.input("labels", "int64", [options.batch]);
  const w1 = param(b, params, "w1", [options.inputs, options.hidden], 1 / Math.sqrt(options.inputs), rand);
  const b1 = param(b, params, "b1", [options.hidden], 0, rand);
  const w2 = param(b, params, "w2", [options.hidden, options.classes], 1 / Math.sqrt(options.hidden), rand);
  const hidden = b.tanh(b.add(b.matmul(x, w1), b1));
  b.output(b.softmaxCrossEntropyLoss(b.matmul(hidden, w2), labels), "loss");
  return { graph: b.toGraph(), params };
}

/** Shape of the tiny transformer. */
export interface TinyTransformerOptions {
  batch: number;
  seq: number;
  vocab: number;
  dim: number;
  heads: number;
  hidden: number;
  seed?: number;
}

function rmsNorm(b: GraphBuilder, x: Value, weight: Value): Value {
  const meanSquare = b.reduceMean(b.mul(x, x), [-1], true);
  return b.mul(b.mul(x, b.reciprocal(b.sqrt(b.add(meanSquare, 1e-5)))), weight);
}

/**
 * One pre-norm transformer block over token + position embeddings with a causal mask, then RMSNorm and an untied output
 * projection; loss is the mean next-token cross-entropy of `targets` [batch, seq] (−100 ignored).
 */
export function buildTinyTransformer(o: TinyTransformerOptions): TrainableModel {
  const rand = seededRandom(o.seed ?? 11);
  const b = new GraphBuilder("tiny_transformer");
  const params: Param[] = [];
  const headDim = o.dim / o.heads;
  const ids = b.input("input_ids", "int64", [o.batch, o.seq]);
  const targets = b.input("targets", "int64", [o.batch, o.seq]);
  const embed = param(b, params, "embed_tokens", [o.vocab, o.dim], 0.5, rand);
  const positions = param(b, params, "embed_positions", [o.seq, o.dim], 0.5, rand);
  const attnNorm = b.input("attn_norm", "float32", [o.dim]);
  params.push({ name: "attn_norm", shape: [o.dim], init: new Float32Array(o.dim).fill(1) });
  const s = 1 / Math.sqrt(o.dim);
  const qProj = param(b, params, "q_proj", [o.dim, o.dim], s, rand);
  const kProj = param(b, params, "k_proj", [o.dim, o.dim], s, rand);
  const vProj = param(b, params, "v_proj", [o.dim, o.dim], s, rand);
  const oProj = param(b, params, "o_proj", [o.dim, o.dim], s, rand);
  const mlpNorm = b.input("mlp_norm", "float32", [o.dim]);
  params.push({ name: "mlp_norm", shape: [o.dim], init: new Float32Array(o.dim).fill(1) });
  const gateProj = param(b, params, "gate_proj", [o.dim, o.hidden], s, rand);
  const upProj = param(b, params, "up_proj", [o.dim, o.hidden], s, rand);
  const downProj = param(b, params, "down_proj", [o.hidden, o.dim], 1 / Math.sqrt(o.hidden), rand);
  const finalNorm = b.input("final_norm", "float32", [o.dim]);
  params.push({ name: "final_norm", shape: [o.dim], init: new Float32Array(o.dim).fill(1) });
  const lmHead = param(b, params, "lm_head", [o.dim, o.vocab], s, rand);

  // token and learned position embeddings
  let h = b.add(b.gather(embed, ids, 0), positions);
  // attention: RMSNorm, q/k/v, heads, causal softmax, output projection, residual
  const x = rmsNorm(b, h, attnNorm);
  const heads = (t: Value) => b.transpose(b.reshape(t, [o.batch, o.seq, o.heads, headDim]), [0, 2, 1, 3]);
  const q = heads(b.matmul(x, qProj));
  const k = heads(b.matmul(x, kProj));
  const v = heads(b.matmul(x, vProj));
  const scores = b.mul(b.matmul(q, b.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(headDim));
  const future = Array.from(
    { length: o.seq * o.seq },
    (_, i) => (i % o.seq > Math.floor(i / o.seq) ? -1e9 : 0),
  );
  const causal = b.constant(future, "float32", [o.seq, o.seq]);
  const attention = b.softmax(b.add(scores, causal), -1);
  const context = b.reshape(b.transpose(b.matmul(attention, v), [0, 2, 1, 3]), [o.batch, o.seq, o.dim]);
  h = b.add(h, b.matmul(context, oProj));
  // MLP: RMSNorm, SwiGLU, down projection, residual
  const y = rmsNorm(b, h, mlpNorm);
  const gate = b.matmul(y, gateProj);
  const swish = b.mul(gate, b.sigmoid(gate));
  h = b.add(h, b.matmul(b.mul(swish, b.matmul(y, upProj)), downProj));
  // output head and loss
  const logits = b.matmul(rmsNorm(b, h, finalNorm), lmHead);
  const scoresNCT = b.transpose(logits, [0, 2, 1]);
  b.output(b.softmaxCrossEntropyLoss(scoresNCT, targets, { ignoreIndex: -100 }), "loss");
  return { graph: b.toGraph(), params };
}
