/**
 * The gate heatmap of a fine-tuning job: {@linkcode jobGates} reads a job's gate values — the recorded frames of
 * its `weightlora.json` summary once it finished (`after_selection`, `after_round_N`, `final`), or its latest
 * checkpoint while it runs — and lays them out as layers × modules, with the surviving sites, their ranks and
 * what keeping only them saves against LoRA on every candidate site (trainable parameters and AdamW moments).
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import { listAdapterSites, LLAMA_MODULES } from "../models/sites.ts";
import type { JobCheckpoint, JobRecord } from "../store/db/job_store.ts";

/** Gate values at one moment of a run. */
export interface GateFrame {
  /** `after_selection`, `after_round_1`, `final`, or `step N` (a running job's checkpoint). */
  label: string;
  /** Gate by site name (`model.layers.0.self_attn.q_proj`). */
  gates: Record<string, number>;
}

/** What the heatmap shows. */
export interface JobGates {
  /** Rows: decoder layers. */
  layers: number;
  /** Columns: module kinds that have a candidate site. */
  modules: string[];
  /** Frames, oldest first (at least one). */
  frames: GateFrame[];
  /** Candidate sites (the job's target modules in every layer). */
  candidates: string[];
  /** Sites that survive (outlined). */
  survivors: string[];
  /** Rank by surviving site. */
  ranks: Record<string, number>;
  /** Where the values come from. */
  source: "result" | "checkpoint";
  /** Trainable parameters of LoRA at the job's rank on every candidate site. */
  allSitesParameters: number;
  /** Trainable parameters of the surviving sites (A and B). */
  keptParameters: number;
  /** Bytes of optimizer state per trainable parameter (8 for AdamW's two f32 moments, 0 for SGD). */
  optimizerBytesPerParameter: number;
}

interface CheckpointSite {
  name: string;
  rank: number;
  gate: number;
  active: boolean;
}

interface TrainerState {
  step?: number;
  sites?: CheckpointSite[];
  kept?: string[];
  summary?: { gates?: Record<string, Record<string, number>> };
}

function siteModule(name: string): string {
  return name.slice(name.lastIndexOf(".") + 1);
}

function siteLayer(name: string): number {
  const m = /layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

function isGateMap(value: unknown): value is Record<string, number> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    Object.values(value as Record<string, unknown>).every((v) => typeof v === "number");
}

/**
 * A job's gates, or undefined when it has none yet (no checkpoint, or a method without gates).
 *
 * @param job The job (its `result` once finished, its resolved options).
 * @param options The model's config and the job's latest checkpoint.
 * @returns The heatmap's data.
 * @example
 * ```ts ignore
 * const gates = jobGates(job, { config: engine.config, checkpoint: await jobs.checkpoint(job.id) });
 * ```
 */
export function jobGates(
  job: Pick<JobRecord, "result" | "options">,
  options: { config: LlamaConfig; checkpoint?: JobCheckpoint },
): JobGates | undefined {
  const opts = job.options as { targetModules?: string[]; rank?: number; optimizer?: string };
  const targets = new Set(opts.targetModules ?? LLAMA_MODULES);
  const rank = opts.rank ?? 8;
  const sites = listAdapterSites(options.config).filter((s) => targets.has(s.module));
  const shape = new Map(sites.map((s) => [s.name, s.inFeatures + s.outFeatures]));
  const frames: GateFrame[] = [];
  let survivors: string[] = [];
  let ranks: Record<string, number> = {};
  let source: JobGates["source"];
  const result = job.result as
    | { gates?: Record<string, unknown>; selected_sites?: string[]; ranks?: Record<string, number> }
    | null;
  if (result && result.gates && Array.isArray(result.selected_sites)) {
    source = "result";
    for (const [label, gates] of Object.entries(result.gates)) {
      if (isGateMap(gates)) frames.push({ label, gates });
    }
    survivors = result.selected_sites;
    ranks = result.ranks ?? {};
  } else {
    if (!options.checkpoint) return undefined;
    let state: TrainerState;
    try {
      state = JSON.parse(new TextDecoder().decode(options.checkpoint.trainerState));
    } catch {
      return undefined;
    }
    if (!Array.isArray(state.sites)) return undefined;
    source = "checkpoint";
    for (const [label, gates] of Object.entries(state.summary?.gates ?? {})) {
      if (isGateMap(gates)) frames.push({ label, gates });
    }
    frames.push({
      label: `step ${options.checkpoint.step}`,
      gates: Object.fromEntries(state.sites.map((s) => [s.name, s.gate])),
    });
    const active = state.sites.filter((s) => s.active);
    survivors = (state.kept ?? active.map((s) => s.name)).filter((n) => shape.has(n));
    ranks = Object.fromEntries(active.map((s) => [s.name, s.rank]));
  }
  if (frames.length === 0) return undefined;
  const moduleSet = new Set(sites.map((s) => s.module as string));
  const keptParameters = survivors.reduce((n, name) => n + (ranks[name] ?? rank) * (shape.get(name) ?? 0), 0);
  return {
    layers: options.config.numHiddenLayers,
    modules: LLAMA_MODULES.filter((m) => moduleSet.has(m)),
    frames,
    candidates: sites.map((s) => s.name),
    survivors,
    ranks,
    source,
    allSitesParameters: sites.reduce((n, s) => n + rank * (s.inFeatures + s.outFeatures), 0),
    keptParameters,
    optimizerBytesPerParameter: opts.optimizer === "sgd" ? 0 : 8,
  };
}

/**
 * The site name at a heatmap cell, among the candidates.
 *
 * @param gates The heatmap's data.
 * @param cell Layer and module.
 * @returns The site's name, or undefined when that cell is not a candidate.
 */
export function siteAt(gates: JobGates, cell: { layer: number; module: string }): string | undefined {
  return gates.candidates.find((n) => siteLayer(n) === cell.layer && siteModule(n) === cell.module);
}
