// Shared by the serving, store and HTTP tests: the stories260K model converted to a Hugging Face folder
// (once per process, in a temporary folder) and small random PEFT adapters.

import { convertLlama2c } from "../../src/io/convert.ts";
import { encodeSafetensors } from "../../src/io/safetensors.ts";
import { f32ToBf16, f32ToF16 } from "../../src/io/half.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import { listAdapterSites, type LlamaModule } from "../../src/models/sites.ts";
import type { TensorData } from "../../src/onnx/types.ts";
import type { AdapterFiles } from "../../src/store/adapter_store.ts";
import { stories260kDir } from "../_util/fixtures.ts";

let converted: Promise<string> | undefined;

/**
 * The stories260K model as a Hugging Face folder, converted once per process into a temporary folder
 * (removed at exit).
 */
export function stories260kHf(): Promise<string> {
  converted ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "serve_model_" });
    const out = `${root}/stories260K`;
    await convertLlama2c({
      model: `${stories260kDir()}/stories260K.bin`,
      tokenizer: `${stories260kDir()}/tok512.bin`,
      out,
    });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(root, { recursive: true });
      } catch { /* already gone */ }
    });
    return out;
  })();
  return converted;
}

/** Options of {@linkcode randomAdapterFiles}. */
export interface RandomAdapterOptions {
  /** PRNG seed. */
  seed: number;
  /** LoRA rank. @default 4 */
  rank?: number;
  /** Modules to adapt. @default q_proj, v_proj, down_proj */
  modules?: LlamaModule[];
  /** lora_alpha. @default 2 × rank */
  alpha?: number;
  /** Standard deviation-ish scale of the values. @default 0.5 */
  scale?: number;
  /** Stored dtype. @default float32 */
  dtype?: "float32" | "float16" | "bfloat16";
}

/** Deterministic values in [-scale, scale). */
function values(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

/** A random PEFT LoRA adapter for a model (both files, as bytes). */
export function randomAdapterFiles(config: LlamaConfig, options: RandomAdapterOptions): AdapterFiles {
  const rank = options.rank ?? 4;
  const modules = options.modules ?? ["q_proj", "v_proj", "down_proj"];
  const scale = options.scale ?? 0.5;
  const dtype = options.dtype ?? "float32";
  const tensors: TensorData[] = [];
  let seed = options.seed * 7919 + 1;
  const tensor = (name: string, dims: number[]): TensorData => {
    const v = values(dims[0] * dims[1], seed++, scale);
    const data = dtype === "float32"
      ? new Uint8Array(v.buffer)
      : dtype === "float16"
      ? f32ToF16(v)
      : f32ToBf16(v);
    return { name, dtype, dims, data };
  };
  for (const site of listAdapterSites(config)) {
    if (!modules.includes(site.module)) continue;
    const key = `base_model.model.${site.name}`;
    tensors.push(tensor(`${key}.lora_A.weight`, [rank, site.inFeatures]));
    tensors.push(tensor(`${key}.lora_B.weight`, [site.outFeatures, rank]));
  }
  const json = {
    peft_type: "LORA",
    r: rank,
    lora_alpha: options.alpha ?? 2 * rank,
    target_modules: modules,
    bias: "none",
    base_model_name_or_path: "stories260K",
  };
  return {
    config: new TextEncoder().encode(JSON.stringify(json)),
    weights: encodeSafetensors(tensors),
  };
}

/** Writes adapter files into a folder (PEFT layout). */
export async function writeAdapterFolder(dir: string, files: AdapterFiles): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/adapter_config.json`, files.config);
  await Deno.writeFile(`${dir}/adapter_model.safetensors`, files.weights);
}
