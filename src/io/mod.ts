/**
 * Model files: safetensors (single and sharded), Hugging Face `config.json` and model folders,
 * hub downloads, tokenizers and chat templates, the llama2.c and GGUF converters, and blockwise weight
 * quantization (MatMulNBits layout).
 *
 * @example
 * ```ts ignore
 * import { loadModelFolder, resolveModelSource } from "./mod.ts";
 * const model = await loadModelFolder(await resolveModelSource("hf:OWNER/REPO"));
 * console.log(model.config.hiddenSize, model.tokenizer.encode("Hello"));
 * ```
 *
 * @module
 */

export * from "./half.ts";
export * from "./safetensors.ts";
export * from "./sharded_safetensors.ts";
export * from "./hf_config.ts";
export * from "./llama_weights.ts";
export * from "./tokenizer.ts";
export * from "./chat_template.ts";
export * from "./model_folder.ts";
export * from "./hub.ts";
export * from "./sentencepiece_bpe.ts";
export * from "./llama2c.ts";
export * from "./gguf.ts";
export * from "./gguf_llama.ts";
export * from "./gguf_blocks.ts";
export * from "./quantize.ts";
export * from "./quantized_weights.ts";
export * from "./gguf_writer.ts";
export * from "./write_model_folder.ts";
export * from "./convert.ts";
export * from "./tar.ts";
