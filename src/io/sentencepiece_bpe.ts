/**
 * SentencePiece BPE vocabularies (llama2.c's `tokenizer.bin`, GGUF's `tokenizer.ggml.*` with model
 * `llama`) written as Hugging Face `tokenizer.json` / `tokenizer_config.json`, the way transformers'
 * `LlamaConverter` does: BPE with byte fallback, merges derived from the scored vocabulary, a normalizer
 * that prepends `▁` and turns spaces into `▁`, and a decoder that undoes it.
 *
 * @module
 */

/** The kind of a vocabulary entry (SentencePiece's piece types; GGUF's `tokenizer.ggml.token_type`). */
export type PieceType = "normal" | "unknown" | "control" | "user_defined" | "unused" | "byte";

/** A SentencePiece vocabulary: pieces use `▁` for spaces, byte pieces are `<0xNN>`. */
export interface ScoredVocab {
  /** Piece strings, by id. */
  pieces: string[];
  /** Piece scores (higher merges first), by id. */
  scores: number[];
  /** Piece types, by id. */
  types: PieceType[];
  /** Unknown-token id. */
  unkId: number;
  /** Beginning-of-sequence id. */
  bosId?: number;
  /** End-of-sequence id. */
  eosId?: number;
}

/** SentencePiece's word-boundary mark. */
export const SPACE_MARK = "\u2581";

/**
 * Derives BPE merges from scores as transformers' `SentencePieceExtractor` does: every normal piece
 * that splits into two normal pieces gives a merge; merges are ordered by the merged piece's score
 * (highest first), then by the merged piece's id, then by the ids of the two parts.
 * Applying them (lowest rank first) reproduces SentencePiece's "merge the adjacent pair whose result
 * scores best" — the encoder of llama2.c and of `sentencepiece` itself.
 *
 * @param vocab The vocabulary.
 * @returns Merges as `[left, right]` pairs, highest priority first.
 *
 * @example
 * ```ts
 * import { sentencePieceMerges } from "./sentencepiece_bpe.ts";
 * const merges = sentencePieceMerges({
 *   pieces: ["<unk>", "a", "b", "ab"], scores: [0, -1, -2, -3],
 *   types: ["unknown", "normal", "normal", "normal"], unkId: 0,
 * });
 * console.assert(JSON.stringify(merges) === '[["a","b"]]');
 * ```
 */
export function sentencePieceMerges(vocab: ScoredVocab): [string, string][] {
  const normal = new Map<string, number>();
  vocab.pieces.forEach((p, id) => {
    if (vocab.types[id] === "normal" && !normal.has(p)) normal.set(p, id);
  });
  const merges: { left: string; right: string; score: number; id: number; l: number; r: number }[] = [];
  for (const [piece, id] of normal) {
    const chars = Array.from(piece);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join("");
      const right = chars.slice(k).join("");
      const l = normal.get(left);
      const r = normal.get(right);
      if (l !== undefined && r !== undefined) merges.push({ left, right, score: vocab.scores[id], id, l, r });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.l - b.l || a.r - b.r);
  return merges.map((m) => [m.left, m.right]);
}

/** An added-token entry of `tokenizer.json`. */
function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * Builds a Hugging Face `tokenizer.json` object (Llama / SentencePiece BPE layout, as transformers'
 * `LlamaConverter` writes with `legacy: true`).
 *
 * @param vocab The vocabulary.
 * @returns The JSON-ready object.
 * @throws {Error} When two pieces share a string or a required piece is missing.
 *
 * @example
 * ```ts
 * import { sentencePieceTokenizerJson } from "./sentencepiece_bpe.ts";
 * const json = sentencePieceTokenizerJson({
 *   pieces: ["<unk>", "<s>", "</s>", "\u2581", "a"], scores: [0, 0, 0, -1, -2],
 *   types: ["unknown", "control", "control", "normal", "normal"], unkId: 0, bosId: 1, eosId: 2,
 * });
 * console.assert((json.model as { byte_fallback: boolean }).byte_fallback);
 * ```
 */
export function sentencePieceTokenizerJson(vocab: ScoredVocab): Record<string, unknown> {
  const vocabMap: Record<string, number> = {};
  vocab.pieces.forEach((p, id) => {
    if (Object.hasOwn(vocabMap, p)) {
      throw new Error(
        `Cannot build tokenizer.json: piece ${JSON.stringify(p)} appears at ids ${vocabMap[p]} and ${id}`,
      );
    }
    vocabMap[p] = id;
  });
  const unk = vocab.pieces[vocab.unkId];
  if (unk === undefined) {
    throw new Error(`Cannot build tokenizer.json: unknown-token id ${vocab.unkId} is out of range`);
  }
  const added = vocab.pieces.flatMap((p, id) =>
    vocab.types[id] === "unknown" || vocab.types[id] === "control" || vocab.types[id] === "user_defined"
      ? [addedToken(id, p)]
      : []
  );
  const bos = vocab.bosId === undefined ? undefined : vocab.pieces[vocab.bosId];
  const postProcessor = bos === undefined ? null : {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [
      { SpecialToken: { id: bos, type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: bos, type_id: 1 } },
      { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { [bos]: { id: bos, ids: [vocab.bosId], tokens: [bos] } },
  };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: SPACE_MARK },
        { type: "Replace", pattern: { String: " " }, content: SPACE_MARK },
      ],
    },
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: SPACE_MARK }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabMap,
      merges: sentencePieceMerges(vocab),
    },
  };
}

/** Options of {@linkcode sentencePieceTokenizerConfig}. */
export interface SentencePieceTokenizerConfigOptions {
  /** `model_max_length`: the model's context length. */
  modelMaxLength: number;
  /** A Jinja chat template to include. */
  chatTemplate?: string;
}

/**
 * Builds the matching `tokenizer_config.json` object (`LlamaTokenizerFast`, BOS added, no EOS).
 *
 * @param vocab The vocabulary.
 * @param options `model_max_length` (the model's context length) and an optional chat template.
 * @returns The JSON-ready object.
 *
 * @example
 * ```ts
 * import { sentencePieceTokenizerConfig } from "./sentencepiece_bpe.ts";
 * const c = sentencePieceTokenizerConfig({ pieces: ["<unk>", "<s>"], scores: [0, 0],
 *   types: ["unknown", "control"], unkId: 0, bosId: 1 }, { modelMaxLength: 512 });
 * console.assert(c.bos_token === "<s>");
 * ```
 */
export function sentencePieceTokenizerConfig(
  vocab: ScoredVocab,
  options: SentencePieceTokenizerConfigOptions,
): Record<string, unknown> {
  const decoderEntries: Record<string, unknown> = {};
  vocab.pieces.forEach((p, id) => {
    if (
      vocab.types[id] === "unknown" || vocab.types[id] === "control" || vocab.types[id] === "user_defined"
    ) {
      const { id: _id, ...rest } = addedToken(id, p);
      decoderEntries[String(id)] = rest;
    }
  });
  const config: Record<string, unknown> = {
    add_bos_token: vocab.bosId !== undefined,
    add_eos_token: false,
    added_tokens_decoder: decoderEntries,
    bos_token: vocab.bosId === undefined ? null : vocab.pieces[vocab.bosId],
    clean_up_tokenization_spaces: false,
    eos_token: vocab.eosId === undefined ? null : vocab.pieces[vocab.eosId],
    legacy: true,
    model_max_length: options.modelMaxLength,
    pad_token: null,
    sp_model_kwargs: {},
    tokenizer_class: "LlamaTokenizer",
    unk_token: vocab.pieces[vocab.unkId],
    use_default_system_prompt: false,
  };
  if (options.chatTemplate !== undefined) config.chat_template = options.chatTemplate;
  return config;
}
