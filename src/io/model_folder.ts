/**
 * {@linkcode loadModelFolder}: a Hugging Face model folder (`config.json`, `model.safetensors` or
 * sharded `model-0000i-of-0000n.safetensors` + `model.safetensors.index.json`, `tokenizer.json`,
 * `tokenizer_config.json`, `generation_config.json`, optional `chat_template.jinja`) loaded and validated
 * against the tensors its config implies.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { baseName, exists, joinPath, readJsonFile } from "./_fs.ts";
import { toFloat32Tensor } from "./half.ts";
import { parseHfConfig } from "./hf_config.ts";
import { llamaWeightShapes } from "./llama_weights.ts";
import { nbitsTensorNames, nbitsTensors, quantizableLinears, readNBitsWeight } from "./quantized_weights.ts";
import { readSafetensors } from "./safetensors.ts";
import { readSafetensorsIndex, readShardedSafetensors } from "./sharded_safetensors.ts";
import { loadTokenizer, readTokenizerConfig, type Tokenizer } from "./tokenizer.ts";

/** Sampling defaults from `generation_config.json` (fields absent there are absent here). */
export interface GenerationDefaults {
  /** Whether to sample (`do_sample`); greedy when false. */
  doSample?: boolean;
  /** Softmax temperature. */
  temperature?: number;
  /** Nucleus sampling mass. */
  topP?: number;
  /** Top-k cut-off. */
  topK?: number;
  /** Repetition penalty. */
  repetitionPenalty?: number;
  /** Longest generation (`max_new_tokens`). */
  maxNewTokens?: number;
  /** Longest prompt + generation (`max_length`). */
  maxLength?: number;
}

/** A loaded model folder. */
export interface ModelFolder {
  /** The architecture (BOS/EOS from `generation_config.json` when it has them). */
  config: LlamaConfig;
  /**
   * Every tensor of {@linkcode llamaWeightShapes}(config), by Hugging Face name
   * (`model.layers.0.self_attn.q_proj.weight`, `[out, in]`), float32 (F16/BF16 widened on load).
   * `lm_head.weight` is absent when `config.tieWordEmbeddings` (use `model.embed_tokens.weight`).
   * In a quantized folder (`config.quantization`), a quantized linear layer `X` has `X.qweight`, `X.scales`
   * (float32) and, when asymmetric, `X.qzeros` instead of `X.weight` (see `quantized_weights.ts`).
   */
  weights: Map<string, TensorData>;
  /** The tokenizer (BOS/EOS ids agree with `config`). */
  tokenizer: Tokenizer;
  /** The chat template (`chat_template.jinja`, else `tokenizer_config.json`'s default), if any. */
  chatTemplate?: string;
  /** Sampling defaults. */
  generation: GenerationDefaults;
  /** Tensors in the checkpoint that the config does not use (e.g. `model.rotary_emb.inv_freq`). */
  unusedTensors: string[];
  /** The folder. */
  dir: string;
  /** A name for the model (`options.id`, else `OWNER/REPO` for a hub snapshot, else the folder's name). */
  id: string;
}

/** Options of {@linkcode loadModelFolder}. */
export interface LoadModelFolderOptions {
  /**
   * Model name reported as {@linkcode ModelFolder.id}.
   * @default `OWNER/REPO` for a hub cache snapshot, else the folder's base name
   */
  id?: string;
}

/**
 * Loads and validates a Hugging Face model folder of a Llama-family model.
 *
 * @param dir The folder.
 * @param options The model's id.
 * @returns Config, float32 weights, tokenizer, chat template and generation defaults.
 * @throws {Error} When a file is missing or malformed, the architecture or an option is unsupported,
 *   or a tensor the config implies is missing, has another shape (naming file, tensor and both shapes)
 *   or a non-float dtype; for a quantized layer, when its tensors disagree with the config's bits and
 *   block size, or the config has no `quantization_config`.
 *
 * @example
 * ```ts ignore
 * import { loadModelFolder } from "./model_folder.ts";
 * const model = await loadModelFolder("stories260K-hf");
 * console.log(model.config.numHiddenLayers, model.tokenizer.encode("Once upon a time"));
 * ```
 */
export async function loadModelFolder(
  dir: string,
  options: LoadModelFolderOptions = {},
): Promise<ModelFolder> {
  const root = dir.replace(/\/+$/, "") || "/";
  const configPath = joinPath(root, "config.json");
  if (!(await exists(configPath))) {
    throw new Error(`Cannot load model folder ${root}: ${configPath} does not exist`);
  }
  const generationPath = joinPath(root, "generation_config.json");
  const generationJson = (await exists(generationPath)) ? await readJsonFile(generationPath) : {};
  if (generationJson === null || typeof generationJson !== "object" || Array.isArray(generationJson)) {
    throw new Error(`Cannot load ${generationPath}: it is not a JSON object`);
  }
  const generationConfig = generationJson as Record<string, unknown>;
  const config = parseHfConfig(await readJsonFile(configPath), { file: configPath, generationConfig });
  const { weights, unusedTensors } = await loadWeights(root, config);
  const tokenizer = await loadTokenizer(root, { bosId: config.bosTokenId, eosIds: config.eosTokenIds });
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new Error(
      `Cannot load model folder ${root}: tokenizer.json has ${tokenizer.vocabSize} token ids but config.json's vocab_size is ${config.vocabSize}`,
    );
  }
  const folder: ModelFolder = {
    config,
    weights,
    tokenizer,
    generation: readGenerationDefaults(generationConfig),
    unusedTensors,
    dir: root,
    id: options.id ?? defaultId(root),
  };
  const chatTemplate = await readChatTemplate(root);
  if (chatTemplate !== undefined) folder.chatTemplate = chatTemplate;
  return folder;
}

/** `OWNER/REPO` for a hub cache snapshot (`…/models--OWNER--REPO/snapshots/<commit>`), else the folder name. */
function defaultId(root: string): string {
  const m = /(?:^|\/)models--([^/]+?)--([^/]+)\/snapshots\/[^/]+$/.exec(root);
  return m === null ? baseName(root) : `${m[1]}/${m[2]}`;
}

/** Loads `model.safetensors` or the sharded checkpoint and checks it against the config. */
async function loadWeights(
  root: string,
  config: LlamaConfig,
): Promise<{ weights: Map<string, TensorData>; unusedTensors: string[] }> {
  const indexPath = joinPath(root, "model.safetensors.index.json");
  const singlePath = joinPath(root, "model.safetensors");
  let tensors: Map<string, TensorData>;
  let fileOf: (name: string) => string;
  if (await exists(indexPath)) {
    const index = await readSafetensorsIndex(indexPath);
    tensors = (await readShardedSafetensors(indexPath)).tensors;
    fileOf = (name) => joinPath(root, index.weightMap.get(name) ?? baseName(indexPath));
  } else if (await exists(singlePath)) {
    tensors = (await readSafetensors(singlePath)).tensors;
    fileOf = () => singlePath;
  } else {
    const hasBin = await exists(joinPath(root, "pytorch_model.bin"));
    throw new Error(
      `Cannot load model folder ${root}: neither model.safetensors nor model.safetensors.index.json exists${
        hasBin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : ""
      }`,
    );
  }
  const expected = llamaWeightShapes(config);
  const weights = new Map<string, TensorData>();
  const linears = quantizableLinears(config);
  const consumed = new Set<string>();
  for (const [name, dims] of expected) {
    const module = name.slice(0, -".weight".length);
    const names = nbitsTensorNames(module);
    if (name.endsWith(".weight") && linears.has(module) && tensors.has(names.qweight)) {
      if (config.quantization === undefined) {
        throw new Error(
          `Cannot load model folder ${root}: tensor "${names.qweight}" in ${
            fileOf(names.qweight)
          } is quantized, but config.json has no quantization_config`,
        );
      }
      if (tensors.has(name)) {
        throw new Error(
          `Cannot load model folder ${root}: both "${name}" and "${names.qweight}" are in the checkpoint; keep one`,
        );
      }
      const q = readNBitsWeight(tensors, module, {
        outFeatures: dims[0],
        inFeatures: dims[1],
        quantization: config.quantization,
        context: `Cannot load model folder ${root} (${fileOf(names.qweight)})`,
      })!;
      for (const t of nbitsTensors(module, q)) {
        weights.set(t.name, t);
        consumed.add(t.name);
      }
      continue;
    }
    const t = tensors.get(name);
    if (t === undefined) {
      throw new Error(
        `Cannot load model folder ${root}: tensor "${name}" (shape [${dims}]) is missing from the checkpoint`,
      );
    }
    if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
      throw new Error(
        `Cannot load model folder ${root}: tensor "${name}" in ${
          fileOf(name)
        } has shape [${t.dims}], expected [${dims}] from config.json`,
      );
    }
    if (t.dtype !== "float32" && t.dtype !== "float16" && t.dtype !== "bfloat16") {
      throw new Error(
        `Cannot load model folder ${root}: tensor "${name}" in ${
          fileOf(name)
        } has dtype ${t.dtype}, expected F32, F16 or BF16`,
      );
    }
    weights.set(name, toFloat32Tensor(t));
  }
  const unusedTensors: string[] = [];
  for (const name of tensors.keys()) {
    if (expected.has(name) || consumed.has(name)) continue;
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    if (layer !== null && Number(layer[1]) >= config.numHiddenLayers) {
      throw new Error(
        `Cannot load model folder ${root}: tensor "${name}" in ${fileOf(name)} belongs to layer ${
          layer[1]
        }, but config.json has num_hidden_layers ${config.numHiddenLayers}`,
      );
    }
    unusedTensors.push(name);
  }
  return { weights, unusedTensors };
}

/** Reads the defaults of `generation_config.json`. */
function readGenerationDefaults(g: Record<string, unknown>): GenerationDefaults {
  const out: GenerationDefaults = {};
  const number = (key: string) => (typeof g[key] === "number" ? g[key] as number : undefined);
  if (typeof g.do_sample === "boolean") out.doSample = g.do_sample;
  const fields: [keyof GenerationDefaults, string][] = [
    ["temperature", "temperature"],
    ["topP", "top_p"],
    ["topK", "top_k"],
    ["repetitionPenalty", "repetition_penalty"],
    ["maxNewTokens", "max_new_tokens"],
    ["maxLength", "max_length"],
  ];
  for (const [ours, theirs] of fields) {
    const v = number(theirs);
    if (v !== undefined) (out as Record<string, number>)[ours] = v;
  }
  return out;
}

/** `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template` (a string or named list). */
async function readChatTemplate(root: string): Promise<string | undefined> {
  const jinjaPath = joinPath(root, "chat_template.jinja");
  if (await exists(jinjaPath)) return await Deno.readTextFile(jinjaPath);
  const config = await readTokenizerConfig(root);
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const pick = named.find((x) => x?.name === "default") ?? named[0];
    if (typeof pick?.template === "string") return pick.template;
  }
  return undefined;
}
