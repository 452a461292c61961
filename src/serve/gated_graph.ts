/**
 * One serving graph for every adapter site set: the **gated** graph. The base model's nodes sit in the main
 * graph, once — so onnxruntime prepacks its MatMul weights once, and one session holds one copy of them —
 * and every site's LoRA update sits in its own `If` node, run only when the site's gate is on:
 *
 *     y = base(x)                    (main graph, prepacked)
 *     y = If(gate_j) { y + (x · Aᵀ_j[row]) · Bᵀ_j[row] } else { y }
 *
 * A pass feeds `lora_gates` (bool `[sites]`: the sites its adapters touch), the packed tensors of every
 * slot at **all** sites (`lora_at_bank` `[slots, Σ in, r]`, `lora_bt_bank` `[slots, r, Σ out]`; sites it
 * does not touch are zeros and never read) and `lora_index` (int64 `[batch]`, each row's slot; one adapter
 * is one slot). A pass without adapters feeds one-element placeholders and all gates off. Nothing is
 * rebuilt when tenants come and go: there are no variants to build, cache or evict.
 *
 * Why not the variants as `If` branches of one session (`shared_variants.ts`)? onnxruntime-web's MLAS does
 * not prepack a MatMul weight that a branch reads from the outer scope, and a wasm MatMul that packs its
 * weight at every call is ~3× slower at batch 1 on stories15M's shape. Here the branches hold only the
 * adapters' small MatMuls.
 *
 * wasm only: onnxruntime's `If` reads its condition on the CPU.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import { modelFamily } from "../models/families.ts";
import type { LlamaWeights } from "../models/llama/forward.ts";
import type { AdapterHook, AdapterSite } from "../models/sites.ts";
import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { Graph, Model, Node } from "../onnx/types.ts";
import type { PreparedSite } from "./prepared_adapter.ts";
import {
  type BatchComposition,
  LORA_INDEX_INPUT,
  type VariantArray,
  variantInputNames,
} from "./variant_graphs.ts";

/** The bool `[sites]` input: which sites' LoRA runs in a pass. */
export const LORA_GATES_INPUT = "lora_gates";

/** The scope of site j's LoRA nodes (they become the `then` branch of its `If`). */
function gateScope(j: number): string {
  return `lora_gate_${j}`;
}

/**
 * Builds the gated decode graph of a model (on wasm it also runs prefills, fed an empty past).
 *
 * @param model The base model's shape and weights.
 * @returns The graph: the fused decode graph's inputs plus `lora_gates`, `lora_at_bank`, `lora_bt_bank` and
 * `lora_index`.
 * @throws {Error} When a weight is missing or misshapen.
 */
export function buildGatedGraph(model: { config: LlamaConfig; weights: LlamaWeights }): Model {
  const family = modelFamily(model.config);
  const sites = family.listSites(model.config);
  const decode = family.buildFusedGraph(model, { kind: "decode", adapter: gatedAdapterHook(sites) });
  return { ...decode, graph: gateBranches(decode.graph, sites.length) };
}

/** Every site's LoRA, bank-style, from slices of the packed inputs, each in its gate's scope. */
function gatedAdapterHook(sites: readonly AdapterSite[]): AdapterHook {
  const index = new Map(sites.map((s, j) => [s.name, j]));
  const inOffset: number[] = [];
  const outOffset: number[] = [];
  let sumIn = 0;
  let sumOut = 0;
  for (const s of sites) {
    inOffset.push(sumIn);
    outOffset.push(sumOut);
    sumIn += s.inFeatures;
    sumOut += s.outFeatures;
  }
  let inputs: { at: Value; bt: Value; index: Value } | undefined;
  const hook = (b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value): Value => {
    const j = index.get(site.name)!;
    if (!inputs) {
      const names = variantInputNames("bank");
      inputs = {
        at: b.input(names.at, "float32", ["lora_slots", "lora_rows", "lora_rank"]),
        bt: b.input(names.bt, "float32", ["lora_slots", "lora_rank", "lora_columns"]),
        index: b.input(LORA_INDEX_INPUT, "int64", ["batch"]),
      };
      b.input(LORA_GATES_INPUT, "bool", [sites.length]);
    }
    const { at, bt, index: rows } = inputs;
    return b.withScope(gateScope(j), () => {
      const a = b.gather(b.slice(at, [inOffset[j]], [inOffset[j] + site.inFeatures], [1]), rows, 0);
      const down = b.matmul(x, a); // [batch, seq, in] × [batch, in, r]
      const bb = b.gather(b.slice(bt, [outOffset[j]], [outOffset[j] + site.outFeatures], [2]), rows, 0);
      return b.add(baseOut, b.matmul(down, bb)); // × [batch, r, out]
    });
  };
  return Object.assign(hook, { covers: () => true });
}

/**
 * Moves each site's LoRA nodes (a contiguous run in its gate's scope, ending with the Add) into the `then`
 * branch of an `If` on the site's gate; the `else` branch passes the base output through.
 */
function gateBranches(g: Graph, count: number): Graph {
  const gates = Array.from({ length: count }, (_, j) => `${LORA_GATES_INPUT}/${j}`);
  const nodes: Node[] = [{
    opType: "Split",
    name: `${LORA_GATES_INPUT}/Split`,
    inputs: [LORA_GATES_INPUT],
    outputs: gates,
    attributes: { axis: { type: "int", value: 0 }, num_outputs: { type: "int", value: count } },
  }];
  const scopeOf = (n: Node) => n.name.match(/lora_gate_(\d+)\//)?.[1];
  let i = 0;
  while (i < g.nodes.length) {
    const scope = scopeOf(g.nodes[i]);
    if (scope === undefined) {
      nodes.push(g.nodes[i++]);
      continue;
    }
    const group: Node[] = [];
    while (i < g.nodes.length && scopeOf(g.nodes[i]) === scope) group.push(g.nodes[i++]);
    const add = group.at(-1)!;
    if (add.opType !== "Add") {
      throw new Error(`Cannot gate site ${scope}'s LoRA: its last node is ${add.opType}, expected Add`);
    }
    const out = add.outputs[0];
    const j = Number(scope);
    const branch = (name: string, body: Node[], output: string): Graph => ({
      name,
      nodes: body,
      inputs: [],
      outputs: [{ name: output, type: { dtype: "float32" } }],
      initializers: [],
      valueInfo: [],
    });
    const then = group.map((n) => (n === add ? { ...n, outputs: [`${out}/then`] } : n));
    const pass: Node = {
      opType: "Identity",
      name: `${gateScope(j)}/pass`,
      inputs: [add.inputs[0]],
      outputs: [`${out}/else`],
      attributes: {},
    };
    nodes.push({
      opType: "If",
      name: `${gateScope(j)}/If`,
      inputs: [gates[j]],
      outputs: [out],
      attributes: {
        then_branch: { type: "graph", value: branch(`${gateScope(j)}_then`, then, `${out}/then`) },
        else_branch: { type: "graph", value: branch(`${gateScope(j)}_else`, [pass], `${out}/else`) },
      },
    });
  }
  return { ...g, nodes };
}

/**
 * The inputs of the gated graph for a batch: the gates, the packed tensors of every slot at every site
 * (zeros where a slot has no adapter at a site; one-element placeholders when no row has an adapter) and each
 * row's slot.
 *
 * @param comp The batch composition (its variant's sites are the gates that are on).
 * @param config The model's shape.
 * @returns The arrays (`lora_index` as int64 in a `BigInt64Array`; the gates as bytes).
 */
export function gatedArrays(
  comp: BatchComposition,
  config: LlamaConfig,
): { gates: Uint8Array; index: BigInt64Array; arrays: VariantArray[] } {
  const sites = modelFamily(config).listSites(config);
  const on = new Set(comp.variant.sites);
  const gates = Uint8Array.from(sites, (s) => (on.has(s.name) ? 1 : 0));
  const names = variantInputNames("bank");
  if (comp.variant.mode === "none") {
    return {
      gates,
      index: new BigInt64Array(comp.index.length),
      arrays: [
        { name: names.at, data: new Float32Array(1), dims: [1, 1, 1] },
        { name: names.bt, data: new Float32Array(1), dims: [1, 1, 1] },
      ],
    };
  }
  const slots = comp.slots;
  const bySlot = slots.map((a) => new Map<string, PreparedSite>(a?.sites.map((s) => [s.site, s]) ?? []));
  const rank = Math.max(1, ...bySlot.flatMap((m) => [...m.values()].map((p) => p.rank)));
  const sumIn = sites.reduce((n, s) => n + s.inFeatures, 0);
  const sumOut = sites.reduce((n, s) => n + s.outFeatures, 0);
  const at = new Float32Array(slots.length * sumIn * rank);
  const bt = new Float32Array(slots.length * rank * sumOut);
  bySlot.forEach((m, slot) => {
    let row = slot * sumIn;
    let column = 0;
    for (const site of sites) {
      const p = m.get(site.name);
      if (p) {
        for (let i = 0; i < site.inFeatures; i++) {
          at.set(p.at.subarray(i * p.rank, (i + 1) * p.rank), (row + i) * rank);
        }
        for (let c = 0; c < p.rank; c++) {
          bt.set(
            p.bt.subarray(c * site.outFeatures, (c + 1) * site.outFeatures),
            (slot * rank + c) * sumOut + column,
          );
        }
      }
      row += site.inFeatures;
      column += site.outFeatures;
    }
  });
  return {
    gates,
    index: BigInt64Array.from(comp.index, BigInt),
    arrays: [
      { name: names.at, data: at, dims: [slots.length, sumIn, rank] },
      { name: names.bt, data: bt, dims: [slots.length, rank, sumOut] },
    ],
  };
}
