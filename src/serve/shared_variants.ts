/**
 * Graph variants that share **one** copy of the base weights: every cached variant becomes a branch of one
 * onnxruntime session, so adding variants adds their nodes, not another copy of the model.
 *
 * onnxruntime-web gives every session its own copy of its initializers and offers no way to share them, so
 * one session per variant (`variant_graphs.ts`) holds the base model once per variant. Here the variants'
 * graphs become the leaves of a tree of `If` nodes over **outer-scope initializers** (the training step graph
 * does the same for its train/eval pair, `src/autodiff/step_graph.ts`):
 *
 * - the initializers every branch names alike and holds byte for byte alike (the base weights) move to the
 *   outer graph, once; anything else stays in its branch, renamed;
 * - branch i is chosen by the bool scalar inputs `variant_bit_0 … variant_bit_{d−1}` (the bits of i, most
 *   significant first; {@linkcode variantSelector} makes the feeds): d = ⌈log₂ n⌉ `If` nodes per pass and
 *   no other node;
 * - the outer inputs are the union of the branches' inputs; variants pack their LoRA tensors into inputs
 *   whose names do not depend on the sites (`lora_at`, `lora_bt`, and `…_bank` with `lora_index`), so every
 *   single-adapter branch reads the same two inputs, and a dimension the branches declare differently is
 *   symbolic. onnxruntime-web's API requires a feed for every graph input (and accepts none for an input
 *   with a default initializer), so a pass feeds a one-element placeholder to the inputs its branch does not
 *   read ({@linkcode SharedVariantsModel.optional}; at most five: the two packs of the other mode, the
 *   index, the cache of a prefill branch).
 *
 * Each branch would prepack its own copy of the constant MatMul weights (onnxruntime's MLAS prepacking keeps
 * one per kernel), so the session is meant to run with `session.disable_prepacking` (the bench measures
 * what that costs a decode step).
 *
 * @module
 */

import type { DType, Graph, Model, Node, Shape, TensorData, ValueInfo } from "../onnx/types.ts";
import { type ServingVariant, variantKey } from "./variant_graphs.ts";

/**
 * The bool scalar input choosing the `If` branch at tree depth `depth` (true: the upper half).
 *
 * @param depth Tree level, 0 at the root.
 * @returns The input name.
 */
export function variantBitInput(depth: number): string {
  return `variant_bit_${depth}`;
}

/** One branch: a variant and its graph (as `buildVariantGraphs` builds it). */
export interface SharedBranch {
  /** The variant. */
  variant: ServingVariant;
  /** Its graph (decode, or prefill). */
  model: Model;
}

/** An input that some branches do not read: a pass of another branch feeds a placeholder. */
export interface OptionalInput {
  /** Input name. */
  name: string;
  /** Element type. */
  dtype: DType;
  /** The placeholder's dimensions (the declared shape, symbolic dimensions as 1). */
  dims: number[];
  /** Indices of the branches that read it. */
  readers: ReadonlySet<number>;
}

/** A composed session graph and how to feed it. */
export interface SharedVariantsModel {
  /** The model: one outer graph, the branches under `If` nodes. */
  model: Model;
  /** Depth of the `If` tree (bits fed per pass). */
  depth: number;
  /** Branch count. */
  branches: number;
  /** Inputs that not every branch reads. */
  optional: OptionalInput[];
  /** Bytes of the outer (shared) initializers. */
  sharedBytes: number;
  /** Bytes of initializers left inside branches. */
  branchBytes: number;
}

/**
 * Replaces a graph's initializers by the pool's tensors of the same name, dtype, dims and bytes, and adds
 * its other initializers to the pool (names the pool lacks). Interning each variant's graph once, when it is
 * built, keeps one JavaScript copy of the base weights however many variants are cached, and lets
 * {@linkcode composeSharedVariants} recognise shared tensors by identity.
 *
 * @param graph A variant's graph.
 * @param pool Tensors by name (grows).
 * @returns The graph with pooled initializers (a new object; nodes are shared).
 */
export function internInitializers(graph: Graph, pool: Map<string, TensorData>): Graph {
  const initializers = graph.initializers.map((t) => {
    const pooled = pool.get(t.name);
    if (!pooled) {
      pool.set(t.name, t);
      return t;
    }
    return sameTensor(pooled, t) ? pooled : t;
  });
  return { ...graph, initializers };
}

/** Whether two tensors have the same dtype, dims and bytes. */
function sameTensor(a: TensorData, b: TensorData): boolean {
  if (a === b) return true;
  if (a.dtype !== b.dtype || a.dims.length !== b.dims.length || a.external || b.external) return false;
  if (a.dims.some((d, i) => d !== b.dims[i])) return false;
  const x = a.data;
  const y = b.data;
  if (x.byteLength !== y.byteLength) return false;
  if (x.buffer === y.buffer && x.byteOffset === y.byteOffset) return true;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Two declared shapes merged: equal dimensions kept, others symbolic (`undefined` when ranks differ). */
function mergeShape(name: string, a: Shape | undefined, b: Shape | undefined): Shape | undefined {
  if (!a || !b || a.length !== b.length) return undefined;
  return a.map((d, i) => (d === b[i] ? d : `${name}_${i}`));
}

/**
 * Composes variants' graphs into one model whose branch i computes variant i. Outer inputs: every branch's
 * inputs (a dimension the branches declare differently becomes symbolic) and the selector bits.
 *
 * @param branches The variants and their graphs (at least one; graphs of the same model).
 * @returns The model and what a pass feeds.
 * @throws {TypeError} When there is no branch, or branches disagree on their outputs or an input's dtype.
 */
export function composeSharedVariants(branches: readonly SharedBranch[]): SharedVariantsModel {
  if (branches.length === 0) throw new TypeError("Cannot compose graph variants: no variant given");
  const first = branches[0].model.graph;
  const outputNames = first.outputs.map((o) => o.name);
  for (const { variant, model } of branches) {
    const names = model.graph.outputs.map((o) => o.name);
    if (names.join() !== outputNames.join()) {
      throw new TypeError(
        `Cannot compose graph variant "${variantKey(variant)}": outputs ${names.join(", ")}, expected ` +
          outputNames.join(", "),
      );
    }
  }

  // outer inputs: the union of the branches' inputs, shapes merged; which branches read each
  const inputs = new Map<string, ValueInfo>();
  const readers = new Map<string, Set<number>>();
  branches.forEach(({ variant, model }, i) => {
    for (const input of model.graph.inputs) {
      const known = inputs.get(input.name);
      (readers.get(input.name) ?? readers.set(input.name, new Set()).get(input.name)!).add(i);
      if (!known) {
        inputs.set(input.name, input);
        continue;
      }
      if (known.type?.dtype !== input.type?.dtype) {
        throw new TypeError(
          `Cannot compose graph variant "${variantKey(variant)}": input "${input.name}" is ` +
            `${input.type?.dtype}, another variant's is ${known.type?.dtype}`,
        );
      }
      const shape = mergeShape(input.name, known.type!.shape, input.type!.shape);
      inputs.set(input.name, { name: input.name, type: { dtype: known.type!.dtype, shape } });
    }
  });
  const optional: OptionalInput[] = [];
  for (const [name, who] of readers) {
    if (who.size === branches.length) continue;
    // its own symbols (a placeholder's size says nothing about the batch)
    const info = inputs.get(name)!;
    const shape = info.type!.shape?.map((d, i) => (typeof d === "number" ? d : `${name}_${i}`));
    inputs.set(name, { name, type: { dtype: info.type!.dtype, shape } });
    optional.push({
      name,
      dtype: info.type!.dtype,
      dims: shape?.map((d) => (typeof d === "number" ? d : 1)) ?? [1],
      readers: who,
    });
  }
  const depth = branches.length > 1 ? Math.ceil(Math.log2(branches.length)) : 0;
  for (let d = 0; d < depth; d++) {
    inputs.set(variantBitInput(d), { name: variantBitInput(d), type: { dtype: "bool", shape: [] } });
  }

  // shared initializers: same name and bytes in every branch that names them (first branch's copy)
  const pool = new Map<string, TensorData>();
  const clash = new Set<string>();
  for (const { model } of branches) {
    for (const t of model.graph.initializers) {
      const known = pool.get(t.name);
      if (!known) pool.set(t.name, t);
      else if (!sameTensor(known, t)) clash.add(t.name);
    }
  }
  for (const name of clash) pool.delete(name);
  const outer = new Set<string>([...inputs.keys(), ...pool.keys()]);

  const leaves = branches.map(({ model }, i) =>
    branchGraph(model.graph, { prefix: branches.length === 1 ? "" : `v${i}/`, outer })
  );
  let sharedBytes = 0;
  for (const t of pool.values()) sharedBytes += t.data.byteLength;
  const branchBytes = leaves.reduce(
    (n, g) => n + g.initializers.reduce((m, t) => m + t.data.byteLength, 0),
    0,
  );

  const graph: Graph = {
    name: "shared_variants",
    nodes: branches.length === 1 ? leaves[0].nodes : [selectNode(leaves, 0, 0, depth, outputNames) as Node],
    inputs: [...inputs.values()],
    outputs: first.outputs,
    initializers: [...pool.values(), ...(branches.length === 1 ? leaves[0].initializers : [])],
    valueInfo: [],
  };
  const model: Model = {
    ...branches[0].model,
    metadataProps: {
      ...branches[0].model.metadataProps,
      "weightlora.variants": JSON.stringify(branches.map((b) => variantKey(b.variant))),
    },
    graph,
  };
  return { model, depth, branches: branches.length, optional, sharedBytes, branchBytes };
}

/**
 * The `If` node choosing among leaves `[lo, lo + 2^(depth − level))` by bit `level` (true: the upper
 * half), or the leaf's index when the range holds one leaf; a level whose upper half is empty is skipped.
 */
function selectNode(
  leaves: Graph[],
  lo: number,
  level: number,
  depth: number,
  outputs: string[],
): Node | number {
  const size = 2 ** (depth - level);
  if (size === 1) return lo;
  const mid = lo + size / 2;
  if (mid >= leaves.length) return selectNode(leaves, lo, level + 1, depth, outputs);
  const types = leaves[0].outputs.map((o) => o.type?.dtype ?? "float32");
  const half = (start: number): Graph => {
    const names = outputs.map((o) => `t${start}.${level + 1}/${o.split("/").at(-1)}`);
    const node = selectNode(leaves, start, level + 1, depth, names);
    if (typeof node === "number") return leaves[node];
    return {
      name: `variants_${start}_${level + 1}`,
      nodes: [node],
      inputs: [],
      outputs: node.outputs.map((name, k) => ({ name, type: { dtype: types[k] } })),
      initializers: [],
      valueInfo: [],
    };
  };
  return {
    opType: "If",
    name: `select_${lo}_${level}`,
    inputs: [variantBitInput(level)],
    outputs,
    attributes: {
      then_branch: { type: "graph", value: half(mid) },
      else_branch: { type: "graph", value: half(lo) },
    },
  };
}

/** A variant's graph as an `If` branch: its own names prefixed, outer names kept. */
function branchGraph(g: Graph, options: { prefix: string; outer: ReadonlySet<string> }): Graph {
  const { prefix, outer } = options;
  const rename = (n: string) => (n === "" || outer.has(n) ? n : `${prefix}${n}`);
  const nodes: Node[] = g.nodes.map((n) => {
    for (const [key, a] of Object.entries(n.attributes)) {
      if (a.type === "graph" || a.type === "graphs") {
        throw new TypeError(`Cannot compose graph variants: node "${n.name}" has a subgraph (${key})`);
      }
    }
    return { ...n, name: `${prefix}${n.name}`, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) };
  });
  return {
    name: `${prefix}${g.name}`,
    nodes,
    inputs: [],
    outputs: g.outputs.map((o) => ({ ...o, name: rename(o.name) })),
    initializers: g.initializers.filter((t) => !outer.has(t.name)).map((t) => ({
      ...t,
      name: rename(t.name),
    })),
    valueInfo: [],
  };
}

/**
 * The selector feeds' values for branch `index` of a tree of the given depth: bit d of the index, most
 * significant first.
 *
 * @param index Branch index.
 * @param depth The tree's depth ({@linkcode SharedVariantsModel.depth}).
 * @returns One boolean per level.
 */
export function variantSelector(index: number, depth: number): boolean[] {
  return Array.from({ length: depth }, (_, d) => ((index >> (depth - 1 - d)) & 1) === 1);
}
