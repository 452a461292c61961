/**
 * {@linkcode Tokenizer}: a small interface over Hugging Face `tokenizer.json` files, run by
 * `@huggingface/tokenizers` (BPE with byte fallback, byte-level BPE, Unigram, WordPiece), with a
 * streaming decoder that never splits a UTF-8 character across byte-fallback tokens.
 *
 * @module
 */

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { exists, joinPath, readJsonFile } from "./_fs.ts";

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Put the BOS token first. @default the tokenizer's own habit ({@linkcode Tokenizer.addBosByDefault}).
   * Pass `false` for text rendered by a chat template that already starts with the BOS token.
   */
  addBos?: boolean;
}

/** Options of {@linkcode Tokenizer.decode} and {@linkcode Tokenizer.createStreamDecoder}. */
export interface DecodeOptions {
  /** Leave special tokens (BOS, EOS, chat markers) out of the text. @default false */
  skipSpecialTokens?: boolean;
}

/**
 * Incremental detokenization: feed ids one at a time, get the text they add. Text is held back while
 * it ends inside an incomplete UTF-8 sequence (a byte-fallback token that needs its successors).
 */
export interface StreamDecoder {
  /**
   * Adds one token id.
   *
   * @param id The next token.
   * @returns The text this token completes (often `""` while a multi-byte character is pending).
   */
  push(id: number): string;
  /**
   * Ends the stream.
   *
   * @returns Any text still held back (an incomplete character becomes U+FFFD).
   */
  flush(): string;
}

/** Encodes text to token ids and back. */
export interface Tokenizer {
  /** Number of token ids (model vocabulary plus added tokens): ids are `0 .. vocabSize - 1`. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, when the tokenizer has one. */
  readonly bosId?: number;
  /** End-of-sequence ids (generation stops at any of them). */
  readonly eosIds: readonly number[];
  /** Whether {@linkcode encode} adds BOS when `addBos` is not given. */
  readonly addBosByDefault: boolean;
  /**
   * Encodes text. Special-token strings in the text (e.g. `<|eot_id|>`) become their ids.
   *
   * @param text The text.
   * @param options BOS handling.
   * @returns Token ids.
   */
  encode(text: string, options?: EncodeOptions): number[];
  /**
   * Decodes ids to text.
   *
   * @param ids Token ids.
   * @param options Special-token handling.
   * @returns The text (`""` for no ids).
   */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /**
   * Starts an incremental decode.
   *
   * @param options Special-token handling.
   * @returns A fresh {@linkcode StreamDecoder}.
   */
  createStreamDecoder(options?: DecodeOptions): StreamDecoder;
  /**
   * The vocabulary string of an id (`"▁the"`, `"<0x0A>"`), or `undefined` when out of range.
   *
   * @param id Token id.
   * @returns The token string.
   */
  idToToken(id: number): string | undefined;
  /**
   * The id of a vocabulary string, or `undefined` when absent.
   *
   * @param token Token string.
   * @returns Its id.
   */
  tokenToId(token: string): number | undefined;
}

/** Options of {@linkcode createTokenizer} and {@linkcode loadTokenizer}. */
export interface CreateTokenizerOptions {
  /** BOS id, overriding `tokenizer_config.json`'s `bos_token` (e.g. from the model's config). */
  bosId?: number;
  /** EOS ids added to `tokenizer_config.json`'s `eos_token` (e.g. `generation_config.json`'s list). */
  eosIds?: readonly number[];
  /** File name used in error messages. @default "tokenizer.json" */
  file?: string;
}

/** The text of a special-token entry of `tokenizer_config.json` (`"<s>"` or `{content: "<s>"}`). */
export function specialTokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (
    value !== null && typeof value === "object" &&
    typeof (value as { content?: unknown }).content === "string"
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * Builds a {@linkcode Tokenizer} from parsed `tokenizer.json` and `tokenizer_config.json` objects.
 *
 * @param tokenizerJson The parsed `tokenizer.json`.
 * @param options The parsed `tokenizer_config.json` (as `config`), BOS/EOS overrides and a file name.
 * @returns The tokenizer.
 * @throws {Error} When `tokenizer.json` is malformed or uses a component the library lacks, naming the file.
 *
 * @example
 * ```ts ignore
 * import { createTokenizer } from "./tokenizer.ts";
 * const tok = createTokenizer(JSON.parse(await Deno.readTextFile("tokenizer.json")), { config: {} });
 * console.log(tok.decode(tok.encode("Hello")));
 * ```
 */
export function createTokenizer(
  tokenizerJson: unknown,
  options: CreateTokenizerOptions & { config?: Record<string, unknown> } = {},
): Tokenizer {
  const file = options.file ?? "tokenizer.json";
  if (tokenizerJson === null || typeof tokenizerJson !== "object" || Array.isArray(tokenizerJson)) {
    throw new Error(`Cannot load tokenizer ${file}: it is not a JSON object`);
  }
  const json = { added_tokens: [], ...(tokenizerJson as Record<string, unknown>) };
  const config = options.config ?? {};
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(json, config);
  } catch (e) {
    throw new Error(`Cannot load tokenizer ${file}: ${(e as Error).message}`);
  }
  return new HfBackedTokenizer(hf, config, options, file);
}

/**
 * Loads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a model folder.
 *
 * @param dir The folder.
 * @param options BOS/EOS overrides.
 * @returns The tokenizer.
 * @throws {Error} When `tokenizer.json` is missing or malformed, naming the file.
 *
 * @example
 * ```ts ignore
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("models/stories260K-hf");
 * console.log(tok.encode("Once upon a time"));
 * ```
 */
export async function loadTokenizer(dir: string, options: CreateTokenizerOptions = {}): Promise<Tokenizer> {
  const path = joinPath(dir, "tokenizer.json");
  const json = await readJsonFile(path);
  const config = await readTokenizerConfig(dir);
  return createTokenizer(json, { ...options, config, file: path });
}

/**
 * Reads `tokenizer_config.json` from a folder (`{}` when absent).
 *
 * @param dir The folder.
 * @returns The parsed object.
 * @throws {Error} When the file exists but is not a JSON object.
 */
export async function readTokenizerConfig(dir: string): Promise<Record<string, unknown>> {
  const path = joinPath(dir, "tokenizer_config.json");
  if (!(await exists(path))) return {};
  const json = await readJsonFile(path);
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(`Cannot load ${path}: it is not a JSON object`);
  }
  return json as Record<string, unknown>;
}

/** {@linkcode Tokenizer} over `@huggingface/tokenizers`. */
class HfBackedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosIds: readonly number[];
  readonly addBosByDefault: boolean;
  #hf: HfTokenizer;

  constructor(
    hf: HfTokenizer,
    config: Record<string, unknown>,
    options: CreateTokenizerOptions,
    file: string,
  ) {
    this.#hf = hf;
    let size = 0;
    for (const id of hf.get_vocab(true).values()) size = Math.max(size, id + 1);
    this.vocabSize = size;
    const idOf = (field: string): number | undefined => {
      const text = specialTokenText(config[field]);
      if (text === undefined) return undefined;
      const id = hf.token_to_id(text);
      if (id === undefined) {
        throw new Error(
          `Cannot load tokenizer ${file}: tokenizer_config.json's ${field} ${
            JSON.stringify(text)
          } is not in the vocabulary`,
        );
      }
      return id;
    };
    this.bosId = options.bosId ?? idOf("bos_token");
    const eos = new Set<number>(options.eosIds ?? []);
    const configEos = idOf("eos_token");
    if (configEos !== undefined) eos.add(configEos);
    this.eosIds = [...eos];
    if (typeof config.add_bos_token === "boolean") {
      this.addBosByDefault = config.add_bos_token && this.bosId !== undefined;
    } else {
      // No explicit flag: do what the tokenizer's own post-processor does.
      const probe = hf.encode("a", { add_special_tokens: true }).ids;
      this.addBosByDefault = this.bosId !== undefined && probe[0] === this.bosId;
    }
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = text === "" ? [] : this.#hf.encode(text, { add_special_tokens: false }).ids;
    const addBos = options.addBos ?? this.addBosByDefault;
    if (addBos && this.bosId !== undefined) ids.unshift(this.bosId);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`Cannot decode token id ${id}: the vocabulary has ${this.vocabSize} ids`);
      }
    }
    return this.#hf.decode(ids as number[], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new WindowStreamDecoder((ids) => this.decode(ids, options));
  }

  idToToken(id: number): string | undefined {
    return this.#hf.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.#hf.token_to_id(token);
  }
}

/**
 * The windowed incremental decode of Hugging Face's text-generation-inference: decode the previous
 * token(s) and the previous plus the new ones, emit the difference, and hold back text ending in U+FFFD
 * (an incomplete UTF-8 sequence). Decoding a window rather than one token keeps decoders that look at
 * neighbours (SentencePiece's leading-space strip, byte fallback) right.
 */
class WindowStreamDecoder implements StreamDecoder {
  #decode: (ids: number[]) => string;
  #ids: number[] = [];
  #prefix = 0;
  #read = 0;

  constructor(decode: (ids: number[]) => string) {
    this.#decode = decode;
  }

  push(id: number): string {
    this.#ids.push(id);
    const prefixText = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const newText = this.#decode(this.#ids.slice(this.#prefix));
    if (newText.length > prefixText.length && !newText.endsWith("\uFFFD")) {
      const delta = newText.slice(prefixText.length);
      // Keep only the last emitted token(s) as context for the next window.
      this.#ids = this.#ids.slice(this.#read);
      this.#prefix = 0;
      this.#read = this.#ids.length;
      return delta;
    }
    return "";
  }

  flush(): string {
    const prefixText = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const newText = this.#decode(this.#ids.slice(this.#prefix));
    this.#ids = [];
    this.#prefix = 0;
    this.#read = 0;
    return newText.length > prefixText.length ? newText.slice(prefixText.length) : "";
  }
}
