/**
 * Reading PEFT LoRA adapters: `adapter_config.json` (`r`, `lora_alpha`, `target_modules`, `rank_pattern`,
 * `alpha_pattern`, `use_rslora`, `layers_to_transform`) and `adapter_model.safetensors`
 * (`base_model.model.<module>.lora_A.weight` `[r, in]`, `….lora_B.weight` `[out, r]`), validated against
 * the base model: every module must be a linear layer of the model and every shape must fit. Errors name
 * the adapter folder, the tensor key and both shapes.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { LoraSiteTensors } from "../models/lora_inputs.ts";
import { type AdapterSite, listAdapterSites } from "../models/sites.ts";
import type { TensorData } from "../onnx/types.ts";
import { parseSafetensors } from "../io/safetensors.ts";
import { float32Values, toFloat32Tensor } from "../io/half.ts";
import { compileSafePattern, type SafePattern } from "./safe_pattern.ts";

/**
 * The largest `lora_alpha` (and `alpha_pattern` value) accepted: real adapters use single or double digits;
 * an absurd one (`1e308`) would turn every output into infinities.
 */
export const MAX_LORA_ALPHA = 65536;
/**
 * The most instructions all tenant patterns of one config may compile to together (module names need
 * none): about 40 ms of matching on a 32-layer model at worst.
 */
export const MAX_PATTERN_INSTRUCTIONS = 4096;
/** The most keys `rank_pattern` or `alpha_pattern` may hold. */
export const MAX_PATTERN_KEYS = 4096;

/** The LoRA fields of a PEFT `adapter_config.json`. */
export interface PeftLoraConfig {
  /** Default rank (`r`). */
  r: number;
  /** Default alpha (`lora_alpha`). */
  loraAlpha: number;
  /**
   * `target_modules`: module names (suffix match), one regular expression (full match, matched by the
   * linear-time {@linkcode compileSafePattern}, never by `RegExp`) or `all-linear`.
   */
  targetModules: string[] | string;
  /** Per-module rank overrides (`rank_pattern`, keys are regular expressions matched at the path's end). */
  rankPattern: Record<string, number>;
  /** Per-module alpha overrides (`alpha_pattern`). */
  alphaPattern: Record<string, number>;
  /** rsLoRA: scale by `alpha / √r` instead of `alpha / r` (`use_rslora`). */
  useRslora: boolean;
  /** Only these layer indices carry adapters (`layers_to_transform`), when set. */
  layersToTransform?: number[];
  /** The base model the adapter was trained on (`base_model_name_or_path`), when recorded. */
  baseModelNameOrPath?: string;
}

/** A loaded adapter: its config and, per adapted site, the tensors to feed. */
export interface PeftAdapter {
  /** The folder it was read from (or a label). */
  source: string;
  /** The parsed config. */
  config: PeftLoraConfig;
  /** Tensors by site name (`model.layers.0.self_attn.q_proj`), in forward order. */
  sites: Map<string, LoraSiteTensors>;
}

function fail(source: string, message: string): never {
  throw new Error(`Cannot load adapter "${source}": ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function numberMap(
  source: string,
  field: string,
  value: unknown,
  options: { integer: boolean; budget: PatternBudget },
): Record<string, number> {
  const { integer } = options;
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) {
    fail(source, `adapter_config.json field "${field}" must be an object, got ${JSON.stringify(value)}`);
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_PATTERN_KEYS) {
    fail(source, `adapter_config.json field "${field}" has ${entries.length} keys, over ${MAX_PATTERN_KEYS}`);
  }
  const max = integer ? Infinity : MAX_LORA_ALPHA;
  for (const [key, v] of entries) {
    if (typeof v !== "number" || !(v > 0) || !(v <= max) || (integer && !Number.isInteger(v))) {
      fail(
        source,
        `adapter_config.json field "${field}" has ${JSON.stringify(key)}: ${
          JSON.stringify(v)
        }, expected a positive ${integer ? "integer" : `number up to ${MAX_LORA_ALPHA}`}`,
      );
    }
    keyMatcher(source, field, key, options.budget);
  }
  return value as Record<string, number>;
}

/** A module-path matcher: a literal name or a tenant pattern compiled by the linear-time matcher. */
type Matcher = (name: string) => boolean;

const PLAIN_KEY = /^[A-Za-z0-9_.\-]*$/;

/**
 * PEFT's `get_pattern_key` test for one key, `re.match(rf"(.*\.)?({key})$", name)`: for keys made of name
 * characters only (the usual case: module paths) a direct comparison where `.` matches any character;
 * otherwise the linear-time matcher. Throws an adapter error naming the field for a refused pattern.
 */
function keyMatcher(source: string, field: string, key: string, budget: PatternBudget): Matcher {
  if (PLAIN_KEY.test(key)) {
    return (name) => {
      const start = name.length - key.length;
      if (start < 0 || (start > 0 && name[start - 1] !== ".")) return false;
      for (let i = 0; i < key.length; i++) {
        if (key[i] !== "." && key[i] !== name[start + i]) return false;
      }
      return true;
    };
  }
  const pattern = compilePattern(source, { field, pattern: `(?:.*\\.)?(?:${key})`, shown: key, budget });
  return (name) => pattern.test(name);
}

/**
 * What is left of the instructions all patterns of one config may compile to: matching costs
 * instructions × name length per site, so the total bounds the work of loading an adapter.
 */
interface PatternBudget {
  left: number;
}

function patternBudget(): PatternBudget {
  return { left: MAX_PATTERN_INSTRUCTIONS };
}

function compilePattern(
  source: string,
  options: { field: string; pattern: string; shown: string; budget: PatternBudget },
): SafePattern {
  const { field, pattern, shown, budget } = options;
  let compiled: SafePattern;
  try {
    compiled = compileSafePattern(pattern);
  } catch (e) {
    const reason = (e as Error).message.replace(/^Pattern "(?:[^"\\]|\\.)*"(?: at offset \d+)?:? ?/, "");
    return fail(
      source,
      `adapter_config.json field "${field}" has the pattern ${
        JSON.stringify(shown)
      }, which is refused: ${reason}`,
    );
  }
  budget.left -= compiled.size;
  if (budget.left < 0) {
    fail(
      source,
      `adapter_config.json patterns (target_modules, rank_pattern, alpha_pattern) are too complex in all: ` +
        `over ${MAX_PATTERN_INSTRUCTIONS} instructions at "${field}" pattern ${JSON.stringify(shown)}; ` +
        "list module names instead",
    );
  }
  return compiled;
}

/**
 * Parses a PEFT `adapter_config.json` object, rejecting what this toolkit cannot apply (DoRA, biases,
 * `modules_to_save`, `fan_in_fan_out`, non-LoRA PEFT types).
 *
 * @param json The parsed JSON.
 * @param source Adapter folder or label for error messages.
 * @returns The LoRA config.
 * @throws {Error} When a field is missing, invalid or unsupported, naming it and its value.
 * @example
 * ```ts
 * import { parsePeftConfig } from "./peft.ts";
 * const c = parsePeftConfig({ peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["q_proj"] }, "demo");
 * console.assert(c.r === 8 && c.loraAlpha === 16 && !c.useRslora);
 * ```
 */
export function parsePeftConfig(json: unknown, source: string): PeftLoraConfig {
  if (!isRecord(json)) fail(source, "adapter_config.json is not a JSON object");
  const c = json;
  const field = (name: string) => JSON.stringify(c[name]);
  if (c.peft_type !== undefined && c.peft_type !== "LORA") {
    fail(source, `adapter_config.json field "peft_type" is ${field("peft_type")}, only "LORA" is supported`);
  }
  if (typeof c.r !== "number" || !Number.isInteger(c.r) || c.r < 1) {
    fail(source, `adapter_config.json field "r" is ${field("r")}, expected a positive integer`);
  }
  const loraAlpha = c.lora_alpha ?? 8;
  if (typeof loraAlpha !== "number" || !(loraAlpha > 0) || !(loraAlpha <= MAX_LORA_ALPHA)) {
    fail(
      source,
      `adapter_config.json field "lora_alpha" is ${
        field("lora_alpha")
      }, expected a positive number up to ${MAX_LORA_ALPHA}`,
    );
  }
  if (c.use_dora === true) {
    fail(source, 'adapter_config.json sets "use_dora": DoRA adapters are not supported');
  }
  if (c.fan_in_fan_out === true) {
    fail(
      source,
      'adapter_config.json sets "fan_in_fan_out": only Linear layers stored [out, in] are supported',
    );
  }
  if (c.bias !== undefined && c.bias !== null && c.bias !== "none") {
    fail(
      source,
      `adapter_config.json field "bias" is ${field("bias")}: LoRA biases are not supported (use "none")`,
    );
  }
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0) {
    fail(
      source,
      `adapter_config.json field "modules_to_save" is ${
        field("modules_to_save")
      }: full module copies are not supported`,
    );
  }
  const budget = patternBudget();
  const target = c.target_modules;
  const targetOk = typeof target === "string" ||
    (Array.isArray(target) && target.length > 0 && target.every((t) => typeof t === "string"));
  if (!targetOk) {
    fail(
      source,
      `adapter_config.json field "target_modules" is ${
        field("target_modules")
      }, expected a list of module names or a regular expression`,
    );
  }
  if (typeof target === "string" && target !== "all-linear") {
    compilePattern(source, { field: "target_modules", pattern: target, shown: target, budget });
  }
  let layers: number[] | undefined;
  const lt = c.layers_to_transform;
  if (typeof lt === "number") layers = [lt];
  else if (Array.isArray(lt) && lt.every((v) => Number.isInteger(v) && v >= 0)) layers = lt as number[];
  else if (lt !== undefined && lt !== null) {
    fail(
      source,
      `adapter_config.json field "layers_to_transform" is ${
        field("layers_to_transform")
      }, expected layer indices`,
    );
  }
  return {
    r: c.r,
    loraAlpha,
    targetModules: target as string[] | string,
    rankPattern: numberMap(source, "rank_pattern", c.rank_pattern, { integer: true, budget }),
    alphaPattern: numberMap(source, "alpha_pattern", c.alpha_pattern, { integer: false, budget }),
    useRslora: c.use_rslora === true,
    layersToTransform: layers,
    baseModelNameOrPath: typeof c.base_model_name_or_path === "string"
      ? c.base_model_name_or_path
      : undefined,
  };
}

/** The matchers of a config's patterns, compiled once per adapter load. */
interface CompiledPatterns {
  target: Matcher;
  rank: [Matcher, number][];
  alpha: [Matcher, number][];
}

function compileConfigPatterns(config: PeftLoraConfig, source: string): CompiledPatterns {
  const budget = patternBudget();
  const t = config.targetModules;
  let target: Matcher;
  if (t === "all-linear") target = () => true;
  else if (typeof t === "string") {
    const pattern = compilePattern(source, { field: "target_modules", pattern: t, shown: t, budget });
    target = (name) => pattern.test(name);
  } else target = (name) => t.some((m) => name === m || name.endsWith(`.${m}`));
  const pairs = (field: string, patterns: Record<string, number>): [Matcher, number][] =>
    Object.entries(patterns).map(([key, value]) => [keyMatcher(source, field, key, budget), value]);
  return {
    target,
    rank: pairs("rank_pattern", config.rankPattern),
    alpha: pairs("alpha_pattern", config.alphaPattern),
  };
}

/** PEFT's `get_pattern_key`: the first pattern that matches the end of the module path. */
function patternValue(patterns: [Matcher, number][], name: string): number | undefined {
  for (const [matches, value] of patterns) if (matches(name)) return value;
  return undefined;
}

/** Whether `target_modules` selects a site (PEFT's `check_target_module_exists` for these forms). */
function targets(config: PeftLoraConfig, compiled: CompiledPatterns, site: AdapterSite): boolean {
  if (config.layersToTransform && !config.layersToTransform.includes(site.layer)) return false;
  return compiled.target(site.name);
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/**
 * Builds an adapter from a parsed config and its tensors, checking them against the base model.
 *
 * @param config The parsed `adapter_config.json`.
 * @param tensors The tensors of `adapter_model.safetensors` by key (float32, float16 or bfloat16).
 * @param options The base model's config and a source label for errors.
 * @returns The adapter with float32 tensors and per-site scales.
 * @throws {Error} When a key is not a LoRA weight of a linear layer of the model, a targeted site has no
 *   tensors, or a shape does not fit (naming the key and both shapes).
 */
export function peftAdapterFromTensors(
  config: PeftLoraConfig,
  tensors: ReadonlyMap<string, TensorData>,
  options: { model: LlamaConfig; source: string },
): PeftAdapter {
  const { source } = options;
  const sites = listAdapterSites(options.model);
  const byName = new Map(sites.map((s) => [s.name, s]));
  const found = new Map<string, { a?: TensorData; b?: TensorData }>();
  const compiled = compileConfigPatterns(config, source);
  if (tensors.size === 0) fail(source, "adapter_model.safetensors holds no tensors");
  for (const [key, tensor] of tensors) {
    const m = KEY.exec(key);
    if (!m) {
      fail(
        source,
        `tensor "${key}" is not a LoRA weight (expected base_model.model.<module>.lora_A.weight or .lora_B.weight)`,
      );
    }
    const [, module, which] = m;
    if (!byName.has(module)) {
      const last = options.model.numHiddenLayers - 1;
      fail(
        source,
        `tensor "${key}" is for module "${module}", which is not a linear layer of the model (model.layers.0–${last}.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj})`,
      );
    }
    const entry = found.get(module) ?? {};
    entry[which === "A" ? "a" : "b"] = tensor;
    found.set(module, entry);
  }
  const result = new Map<string, LoraSiteTensors>();
  for (const site of sites) {
    const entry = found.get(site.name);
    if (!entry) {
      if (targets(config, compiled, site)) {
        fail(
          source,
          `tensor "base_model.model.${site.name}.lora_A.weight" is missing, but target_modules selects "${site.name}"`,
        );
      }
      continue;
    }
    const rank = patternValue(compiled.rank, site.name) ?? config.r;
    const alpha = patternValue(compiled.alpha, site.name) ?? config.loraAlpha;
    const check = (which: "A" | "B", tensor: TensorData | undefined, expected: number[]): Float32Array => {
      const key = `base_model.model.${site.name}.lora_${which}.weight`;
      if (!tensor) {
        fail(
          source,
          `tensor "${key}" is missing (the adapter has lora_${which === "A" ? "B" : "A"} for this module)`,
        );
      }
      const dims = tensor.dims;
      if (dims.length !== 2 || dims[0] !== expected[0] || dims[1] !== expected[1]) {
        fail(source, `tensor "${key}" has shape [${dims.join(", ")}], expected [${expected.join(", ")}]`);
      }
      let t: TensorData;
      try {
        t = toFloat32Tensor(tensor);
      } catch (e) {
        return fail(source, `tensor "${key}": ${(e as Error).message}`);
      }
      const values = float32Values(t);
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i])) {
          fail(source, `tensor "${key}" holds ${values[i]} at index ${i}: weights must be finite`);
        }
      }
      return values;
    };
    const a = check("A", entry.a, [rank, site.inFeatures]);
    const b = check("B", entry.b, [site.outFeatures, rank]);
    const scale = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
    result.set(site.name, { a, b, rank, inFeatures: site.inFeatures, outFeatures: site.outFeatures, scale });
  }
  return { source, config, sites: result };
}

/**
 * Loads a PEFT LoRA adapter folder and validates it against the base model.
 *
 * @param dir Folder with `adapter_config.json` and `adapter_model.safetensors`.
 * @param model The base model's config.
 * @returns The adapter.
 * @throws {Error} When a file is missing or malformed, or the adapter does not fit the model.
 * @example
 * ```ts ignore
 * import { loadPeftAdapter } from "./peft.ts";
 * const adapter = await loadPeftAdapter("adapters/story", config);
 * console.log([...adapter.sites.keys()]);
 * ```
 */
export async function loadPeftAdapter(dir: string, model: LlamaConfig): Promise<PeftAdapter> {
  const read = async (file: string): Promise<Uint8Array> => {
    const path = `${dir.replace(/\/+$/, "")}/${file}`;
    try {
      return await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) fail(dir, `${path} does not exist`);
      return fail(dir, `cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const configBytes = await read("adapter_config.json");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(configBytes));
  } catch (e) {
    fail(dir, `adapter_config.json is not valid JSON: ${(e as Error).message}`);
  }
  const config = parsePeftConfig(json, dir);
  const file = await read("adapter_model.safetensors");
  const { tensors } = parseSafetensors(file, { file: `${dir}/adapter_model.safetensors` });
  return peftAdapterFromTensors(config, tensors, { model, source: dir });
}
