/**
 * Export of a trained gated adapter as a standard PEFT LoRA adapter (`adapter_config.json` +
 * `adapter_model.safetensors`) that PEFT, vLLM and LoRAX load as a plain LoRA: only the active sites,
 * each gate folded into its B (B' = w·B), `rank_pattern`/`alpha_pattern` where ranks or scales differ.
 * The folder is written atomically (a temp folder renamed into place).
 *
 * @module
 */

import { encodeSafetensors } from "../io/safetensors.ts";
import type { TensorData } from "../onnx/types.ts";
import type { AdapterSiteState } from "./adapter.ts";

/** Options for {@linkcode peftAdapterFiles} and {@linkcode writePeftAdapter}. */
export interface PeftExportOptions {
  /** `base_model_name_or_path`. */
  baseModel: string;
  /** Scale as `alpha / √r` (rsLoRA). @default {false} */
  rslora?: boolean;
  /** Recorded `lora_dropout`. @default {0} */
  dropout?: number;
}

function mostCommon(values: number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0][0];
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * The two files of a PEFT adapter for the active sites.
 *
 * @param sites Adapter state (inactive sites are skipped).
 * @param options Base model id and scaling convention.
 * @returns `adapter_config.json` (object) and `adapter_model.safetensors` (bytes).
 * @throws {Error} When no site is active.
 */
export function peftAdapterFiles(
  sites: readonly AdapterSiteState[],
  options: PeftExportOptions,
): { config: Record<string, unknown>; safetensors: Uint8Array } {
  const active = sites.filter((s) => s.active);
  if (active.length === 0) throw new Error("Cannot export an adapter with no active site");
  const rslora = options.rslora ?? false;
  // alpha such that PEFT's scaling (alpha / r, or alpha / √r) reproduces each site's scale
  const alphaOf = (s: AdapterSiteState) => s.scale * (rslora ? Math.sqrt(s.rank) : s.rank);
  const r = mostCommon(active.map((s) => s.rank));
  const alpha = mostCommon(active.map(alphaOf));
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const tensors: TensorData[] = [];
  for (const s of active) {
    if (s.rank !== r) rankPattern[s.site.name] = s.rank;
    if (alphaOf(s) !== alpha) alphaPattern[s.site.name] = alphaOf(s);
    const folded = s.b.map((v) => v * s.gate);
    const prefix = `base_model.model.${s.site.name}`;
    tensors.push({
      name: `${prefix}.lora_A.weight`,
      dtype: "float32",
      dims: [s.rank, s.site.inFeatures],
      data: bytesOf(s.a),
    });
    tensors.push({
      name: `${prefix}.lora_B.weight`,
      dtype: "float32",
      dims: [s.site.outFeatures, s.rank],
      data: bytesOf(folded),
    });
  }
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: options.baseModel,
    r,
    lora_alpha: alpha,
    target_modules: active.map((s) => s.site.name),
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    use_rslora: rslora,
    lora_dropout: options.dropout ?? 0,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    use_dora: false,
  };
  return { config, safetensors: encodeSafetensors(tensors, { metadata: { format: "pt" } }) };
}

/**
 * Writes a PEFT adapter folder atomically: files go to a temp folder beside `dir`, which then replaces
 * `dir` (an existing adapter there is kept until the new one is complete).
 *
 * @param dir Destination folder.
 * @param sites Adapter state.
 * @param options Base model id and scaling convention.
 * @param extraFiles More files to place in the folder (name → contents).
 */
export async function writePeftAdapter(
  dir: string,
  sites: readonly AdapterSiteState[],
  options: PeftExportOptions,
  extraFiles: Record<string, string | Uint8Array> = {},
): Promise<void> {
  const { config, safetensors } = peftAdapterFiles(sites, options);
  await writeFolderAtomic(dir, {
    "adapter_config.json": JSON.stringify(config, null, 2) + "\n",
    "adapter_model.safetensors": safetensors,
    ...extraFiles,
  });
}

/**
 * Writes files into a folder atomically: a temp sibling folder is filled, then renamed over `dir`; the
 * previous folder (if any) is removed only after the rename.
 *
 * @param dir Destination folder.
 * @param files File name → contents.
 */
export async function writeFolderAtomic(
  dir: string,
  files: Record<string, string | Uint8Array>,
): Promise<void> {
  const clean = dir.replace(/\/+$/, "");
  const suffix = `${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const tmp = `${clean}.tmp-${suffix}`;
  const old = `${clean}.old-${suffix}`;
  await Deno.mkdir(tmp, { recursive: true });
  try {
    for (const [name, contents] of Object.entries(files)) {
      if (typeof contents === "string") await Deno.writeTextFile(`${tmp}/${name}`, contents);
      else await Deno.writeFile(`${tmp}/${name}`, contents);
    }
    let hadOld = false;
    try {
      await Deno.rename(clean, old);
      hadOld = true;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await Deno.rename(tmp, clean);
    if (hadOld) await Deno.remove(old, { recursive: true });
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
