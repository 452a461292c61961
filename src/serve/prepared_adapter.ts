/**
 * Adapters ready to feed: {@linkcode parseAdapterFiles} validates an uploaded or stored PEFT adapter
 * against the base model, and {@linkcode prepareAdapter} turns it into the per-site tensors the serving
 * graphs take — `Aᵀ` `[in, r]` and `Bᵀ` `[r, out]` with the scale folded in (`Bᵀ = scale · Bᵀ`), so a
 * site's update is two MatMuls, `(x · Aᵀ) · Bᵀ`, and a batch's adapters stack along a new first axis (see
 * `variant_graphs.ts`).
 *
 * @module
 */

import { parseSafetensors } from "../io/safetensors.ts";
import {
  parsePeftConfig,
  type PeftAdapter,
  peftAdapterFromTensors,
  type PeftLoraConfig,
} from "../lora/peft.ts";
import type { LlamaConfig } from "../models/config.ts";
import type { AdapterFiles } from "../store/adapter_store.ts";

/** One site's tensors, ready to feed. */
export interface PreparedSite {
  /** PEFT module path, e.g. `model.layers.0.self_attn.q_proj`. */
  site: string;
  /** Rank r. */
  rank: number;
  /** `lora_Aᵀ`, `[inFeatures, rank]`, row-major. */
  at: Float32Array;
  /** `scale · lora_Bᵀ`, `[rank, outFeatures]`, row-major. */
  bt: Float32Array;
}

/** An adapter ready to feed; immutable once prepared (requests share it). */
export interface PreparedAdapter {
  /** Cache key, unique per stored version (`tenant/name@version`). */
  key: string;
  /** Adapted sites, in forward order. */
  sites: PreparedSite[];
  /** Bytes of all tensors. */
  bytes: number;
}

/** Thrown when adapter files are malformed or do not fit the base model (a client error). */
export class InvalidAdapterError extends Error {
  /** @param message What is wrong, naming the file and tensor. */
  constructor(message: string) {
    super(message);
    this.name = "InvalidAdapterError";
  }
}

/** Options of {@linkcode parseAdapterFiles}. */
export interface ParseAdapterFilesOptions {
  /** The base model's shape. */
  model: LlamaConfig;
  /** The adapter's name for messages. */
  source: string;
}

const FLOAT_DTYPES = new Set(["float32", "float16", "bfloat16"]);

/**
 * Parses `adapter_config.json` bytes: UTF-8 JSON, then PEFT's LoRA fields.
 *
 * @param bytes The file's bytes.
 * @param source The adapter's name for messages.
 * @returns The LoRA config.
 * @throws {Error} When the bytes are not UTF-8 JSON or not a LoRA config this toolkit reads.
 */
export function parseAdapterConfigBytes(bytes: Uint8Array, source: string): PeftLoraConfig {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new Error(
      `Cannot load adapter "${source}": adapter_config.json is not valid JSON: ${(e as Error).message}`,
    );
  }
  return parsePeftConfig(json, source);
}

/**
 * Parses and validates adapter files against the base model: the config is PEFT LoRA, every tensor is
 * a `lora_A`/`lora_B` weight of a linear layer of the model with the shape its rank implies, and dtypes
 * are F32, F16 or BF16.
 *
 * @param files `adapter_config.json` and `adapter_model.safetensors`.
 * @param options The base model and a name for messages.
 * @returns The adapter (float32 tensors, per-site scales).
 * @throws {InvalidAdapterError} On any problem, naming the file, the tensor and the bad value.
 */
export function parseAdapterFiles(files: AdapterFiles, options: ParseAdapterFilesOptions): PeftAdapter {
  const { source } = options;
  try {
    const config = parseAdapterConfigBytes(files.config, source);
    const { tensors } = parseSafetensors(files.weights, { file: `${source}/adapter_model.safetensors` });
    for (const [key, tensor] of tensors) {
      if (!FLOAT_DTYPES.has(tensor.dtype)) {
        throw new Error(
          `Cannot load adapter "${source}": tensor "${key}" has dtype ${tensor.dtype}, expected F32, F16 or BF16`,
        );
      }
    }
    return peftAdapterFromTensors(config, tensors, { model: options.model, source });
  } catch (e) {
    throw new InvalidAdapterError((e as Error).message);
  }
}

/** Options of {@linkcode prepareAdapter}. */
export interface PrepareAdapterOptions {
  /** Cache key of this version. */
  key: string;
  /**
   * Put the tensors in a `SharedArrayBuffer` (one for all of them), so that inference workers read them
   * without a copy.
   * @default {false}
   */
  shared?: boolean;
}

/**
 * Turns a parsed adapter into feedable tensors: `Aᵀ` and `Bᵀ` transposed, the scale folded into `Bᵀ`.
 *
 * @param adapter The parsed adapter.
 * @param options Cache key and buffer kind.
 * @returns The prepared adapter.
 * @example
 * ```ts ignore
 * const prepared = prepareAdapter(parseAdapterFiles(files, { model, source: "story" }), { key: "t/story@v1" });
 * console.log(prepared.bytes);
 * ```
 */
export function prepareAdapter(adapter: PeftAdapter, options: PrepareAdapterOptions): PreparedAdapter {
  // one buffer for every tensor, carved into views: one allocation (a SharedArrayBuffer each was a visible
  // share of a cache miss) and one buffer to share with workers
  let total = 0;
  for (const t of adapter.sites.values()) total += t.rank * (t.inFeatures + t.outFeatures);
  const buffer = options.shared ? new SharedArrayBuffer(total * 4) : new ArrayBuffer(total * 4);
  let offset = 0;
  const alloc = (n: number): Float32Array => {
    const view = new Float32Array(buffer, offset * 4, n);
    offset += n;
    return view;
  };
  const sites: PreparedSite[] = [];
  let bytes = 0;
  for (const [site, t] of adapter.sites) {
    const at = alloc(t.rank * t.inFeatures);
    for (let r = 0; r < t.rank; r++) {
      for (let i = 0; i < t.inFeatures; i++) at[i * t.rank + r] = t.a[r * t.inFeatures + i];
    }
    const bt = alloc(t.rank * t.outFeatures);
    for (let o = 0; o < t.outFeatures; o++) {
      for (let r = 0; r < t.rank; r++) bt[r * t.outFeatures + o] = t.scale * t.b[o * t.rank + r];
    }
    bytes += at.byteLength + bt.byteLength;
    sites.push({ site, rank: t.rank, at, bt });
  }
  return { key: options.key, sites, bytes };
}
