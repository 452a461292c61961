/**
 * Fine-tuning data: JSONL rows turned into token ids and Hugging Face-style labels (same length as the
 * ids, shifted inside the loss, −100 not counted). Four row shapes:
 *
 * - `{"prompt", "completion"}`: BOS + prompt + completion + EOS; loss on the completion and EOS only
 *   (`completionEos: false` leaves the EOS out).
 *   Prompt and completion are tokenized separately (a SentencePiece tokenizer gives the completion its
 *   own leading "▁", as if a space separated them).
 * - `{"text"}`: BOS + text; loss on every token.
 * - `{"messages"}`: rendered with the model's chat template; loss on the assistant turns.
 * - `{"input_ids", "labels"?}`: used exactly as given (no BOS/EOS added); no labels = every token.
 *
 * Rows longer than `seqLen` are truncated (and counted).
 *
 * @module
 */

import type { Tokenizer } from "../io/tokenizer.ts";
import { type ChatMessage, DEFAULT_CHAT_TEMPLATE, renderChatTemplate } from "../io/chat_template.ts";

/** Label value that is not counted in the loss (Hugging Face's convention). */
export const IGNORE_LABEL = -100;

/** One tokenized training row. */
export interface Example {
  /** Token ids. */
  inputIds: number[];
  /** Labels, same length; −100 where the token is not a target. */
  labels: number[];
}

/** A tokenized data set. */
export interface Dataset {
  /** Where it came from (file name), for messages. */
  source: string;
  /** The rows, in file order. */
  examples: Example[];
  /** Rows cut to `seqLen`. */
  truncated: number;
  /** Rows dropped because no target remained after truncation. */
  empty: number;
  /** Counted next-token targets over all rows. */
  targets: number;
}

/** Options for {@linkcode parseJsonl} and {@linkcode loadJsonl}. */
export interface DatasetOptions {
  /** The model's tokenizer. */
  tokenizer: Pick<Tokenizer, "encode" | "bosId" | "eosIds" | "vocabSize" | "idToToken">;
  /** Longest row in tokens. */
  seqLen: number;
  /**
   * The chat template of `messages` rows (the model's, or one given with `--chat-template`).
   * @default {DEFAULT_CHAT_TEMPLATE} (the plain `User:` / `Assistant:` transcript the server also uses)
   */
  chatTemplate?: string;
  /**
   * End `{"prompt", "completion"}` rows with EOS (trained on). Turn off for models that never learned EOS
   * (llama2.c's TinyStories models separate stories with BOS), whose EOS loss would swamp the rest.
   * @default {true}
   */
  completionEos?: boolean;
}

/** Counted next-token targets of an example (labels at positions 1…n−1 that are not −100). */
export function countTargets(example: Example): number {
  let n = 0;
  for (let i = 1; i < example.labels.length; i++) if (example.labels[i] !== IGNORE_LABEL) n++;
  return n;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function intArray(value: unknown, field: string, fail: (m: string) => never): number[] {
  if (!Array.isArray(value) || value.some((v) => !Number.isInteger(v))) {
    fail(`"${field}" must be an array of integers`);
  }
  return value as number[];
}

function tokenText(tokenizer: DatasetOptions["tokenizer"], id: number | undefined): string {
  return id === undefined ? "" : tokenizer.idToToken(id) ?? "";
}

function fromMessages(
  messages: unknown,
  options: DatasetOptions,
  fail: (m: string) => never,
): Example {
  if (!Array.isArray(messages) || messages.length === 0) fail(`"messages" must be a non-empty array`);
  for (const [i, m] of (messages as unknown[]).entries()) {
    if (!isRecord(m) || typeof m.role !== "string" || typeof m.content !== "string") {
      fail(`messages[${i}] must be {"role": string, "content": string}`);
    }
  }
  const chat = messages as ChatMessage[];
  if (!chat.some((m) => m.role === "assistant")) fail(`"messages" has no assistant turn to learn from`);
  // the server's chat endpoint renders the same default transcript for a model without a template
  const template = options.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
  const { tokenizer } = options;
  const bosText = tokenText(tokenizer, tokenizer.bosId);
  const render = (upTo: number, addGenerationPrompt: boolean) =>
    renderChatTemplate(template, {
      messages: chat.slice(0, upTo),
      addGenerationPrompt,
      bosToken: tokenText(tokenizer, tokenizer.bosId),
      eosToken: tokenText(tokenizer, tokenizer.eosIds[0]),
    });
  // as the chat endpoint: BOS is added unless the template rendered it
  const encode = (text: string) =>
    tokenizer.encode(text, { addBos: !(bosText !== "" && text.startsWith(bosText)) });
  const inputIds = encode(render(chat.length, false));
  const labels = new Array<number>(inputIds.length).fill(IGNORE_LABEL);
  chat.forEach((message, i) => {
    if (message.role !== "assistant") return;
    const before = encode(render(i, true));
    const through = encode(render(i + 1, false));
    const isPrefix = (a: number[], b: number[]) => a.length <= b.length && a.every((t, k) => t === b[k]);
    if (!isPrefix(before, through) || !isPrefix(through, inputIds)) {
      fail(`the chat template does not render messages[${i}] as an extension of the turns before it`);
    }
    for (let k = before.length; k < through.length; k++) labels[k] = inputIds[k];
  });
  return { inputIds, labels };
}

function exampleOfRow(row: unknown, options: DatasetOptions, fail: (m: string) => never): Example {
  if (!isRecord(row)) fail("a row must be a JSON object");
  const { tokenizer } = options;
  const bos = tokenizer.bosId === undefined ? [] : [tokenizer.bosId];
  if ("input_ids" in row) {
    const inputIds = intArray(row.input_ids, "input_ids", fail);
    if (inputIds.length === 0) fail(`"input_ids" is empty`);
    const bad = inputIds.findIndex((t) => t < 0 || t >= tokenizer.vocabSize);
    if (bad >= 0) {
      fail(`input_ids[${bad}] = ${inputIds[bad]} is outside the vocabulary (0..${tokenizer.vocabSize - 1})`);
    }
    if (row.labels === undefined) return { inputIds, labels: [...inputIds] };
    const labels = intArray(row.labels, "labels", fail);
    if (labels.length !== inputIds.length) {
      fail(`"labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`);
    }
    const badLabel = labels.findIndex((t) => t !== IGNORE_LABEL && (t < 0 || t >= tokenizer.vocabSize));
    if (badLabel >= 0) fail(`labels[${badLabel}] = ${labels[badLabel]} is neither -100 nor a token id`);
    return { inputIds, labels };
  }
  if ("prompt" in row || "completion" in row) {
    if (typeof row.prompt !== "string" || typeof row.completion !== "string") {
      fail(`"prompt" and "completion" must both be strings`);
    }
    const prompt = [...bos, ...tokenizer.encode(row.prompt as string, { addBos: false })];
    const completion = [
      ...tokenizer.encode(row.completion as string, { addBos: false }),
      ...(options.completionEos === false ? [] : tokenizer.eosIds.slice(0, 1)),
    ];
    return {
      inputIds: [...prompt, ...completion],
      labels: [...prompt.map(() => IGNORE_LABEL), ...completion],
    };
  }
  if ("text" in row) {
    if (typeof row.text !== "string") fail(`"text" must be a string`);
    const ids = [...bos, ...tokenizer.encode(row.text as string, { addBos: false })];
    return { inputIds: ids, labels: [...ids] };
  }
  if ("messages" in row) return fromMessages(row.messages, options, fail);
  return fail(
    `a row needs "prompt" and "completion", "text", "messages" or "input_ids"; got keys ${
      Object.keys(row).join(", ") || "none"
    }`,
  );
}

/**
 * Parses JSONL text into a data set.
 *
 * @param text The file's contents.
 * @param source The file name (for messages).
 * @param options Tokenizer, sequence length, chat template.
 * @returns The tokenized rows.
 * @throws {Error} On a malformed row (`file:line: …`) or a data set with no usable row.
 * @example
 * ```ts ignore
 * const data = parseJsonl('{"text": "Once upon a time"}\n', "data.jsonl", { tokenizer, seqLen: 64 });
 * ```
 */
export function parseJsonl(text: string, source: string, options: DatasetOptions): Dataset {
  const dataset = newDataset(source, options);
  text.split("\n").forEach((line, index) => addJsonlLine(dataset, line, index, options));
  return finishDataset(dataset, options);
}

/**
 * {@linkcode parseJsonl} that lets other work run: it hands the event loop back every `sliceMs` of
 * tokenisation (for a server validating uploads on its request thread).
 *
 * @param text The JSONL text.
 * @param source The file name for messages.
 * @param options Tokenizer, sequence length, chat template, slice length, string clipping.
 * @returns The tokenized rows.
 * @throws {Error} As {@linkcode parseJsonl}.
 */
export async function parseJsonlAsync(
  text: string,
  source: string,
  options: DatasetOptions & ParseJsonlAsyncOptions,
): Promise<Dataset> {
  const dataset = newDataset(source, options);
  const sliceMs = options.sliceMs ?? 10;
  let sliceStart = performance.now();
  let start = 0;
  for (let index = 0; start <= text.length; index++) {
    const end = text.indexOf("\n", start);
    const stop = end < 0 ? text.length : end;
    addJsonlLine(dataset, text.slice(start, stop), index, options);
    start = stop + 1;
    if (performance.now() - sliceStart >= sliceMs) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      sliceStart = performance.now();
    }
  }
  return finishDataset(dataset, options);
}

/** What {@linkcode JsonlChecker.finish} reports: the counts of a checked file. */
export interface JsonlCheck {
  /** Usable rows. */
  rows: number;
  /** Rows cut to `seqLen`. */
  truncated: number;
  /** Rows dropped because no target remained after truncation. */
  empty: number;
  /** Counted next-token targets over all rows. */
  targets: number;
}

/**
 * Checks JSONL text that arrives in pieces (an upload as it streams in), row by row, as
 * {@linkcode parseJsonlAsync} would parse it, without keeping the text or the tokenized rows: memory is the
 * current line plus one piece. Hands the event loop back after `sliceMs` of work.
 *
 * @example
 * ```ts ignore
 * import { JsonlChecker } from "./data.ts";
 * const checker = new JsonlChecker("upload.jsonl", { tokenizer, seqLen: 256 });
 * for await (const piece of textPieces) await checker.push(piece);
 * const { rows } = await checker.finish();
 * ```
 */
export class JsonlChecker {
  #dataset: Dataset;
  #options: DatasetOptions & ParseJsonlAsyncOptions;
  #pending = "";
  #index = 0;
  #sliceStart = performance.now();
  #rows = 0;

  /**
   * @param source The file's name, for messages (`source:line: …`).
   * @param options Tokenizer, sequence length, chat template, string cut, time slice.
   */
  constructor(source: string, options: DatasetOptions & ParseJsonlAsyncOptions) {
    this.#dataset = newDataset(source, options);
    this.#options = options;
  }

  /**
   * Checks the complete lines of one more piece of text; the last incomplete line waits for the next piece.
   *
   * @param text The next piece.
   * @throws {Error} `source:line: message` on a malformed row.
   */
  async push(text: string): Promise<void> {
    let start = 0;
    for (;;) {
      const end = text.indexOf("\n", start);
      if (end < 0) break;
      const line = this.#pending + text.slice(start, end);
      this.#pending = "";
      await this.#line(line);
      start = end + 1;
    }
    this.#pending += text.slice(start);
  }

  /**
   * Checks the last line and returns the counts.
   *
   * @returns Rows, truncated, empty, targets.
   * @throws {Error} On a malformed last row, or when the file has no usable row.
   */
  async finish(): Promise<JsonlCheck> {
    await this.#line(this.#pending);
    this.#pending = "";
    const dataset = this.#dataset;
    finishDataset({ ...dataset, examples: new Array(this.#rows) }, this.#options);
    return { rows: this.#rows, truncated: dataset.truncated, empty: dataset.empty, targets: dataset.targets };
  }

  async #line(line: string): Promise<void> {
    const dataset = this.#dataset;
    addJsonlLine(dataset, line, this.#index++, this.#options);
    this.#rows += dataset.examples.length;
    dataset.examples.length = 0; // count, do not keep
    if (performance.now() - this.#sliceStart >= (this.#options.sliceMs ?? 10)) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      this.#sliceStart = performance.now();
    }
  }
}

/** More options of {@linkcode parseJsonlAsync}. */
export interface ParseJsonlAsyncOptions {
  /**
   * Hand the event loop back after this much work, ms.
   * @default {10}
   */
  sliceMs?: number;
  /**
   * Cut every string of a row to this many UTF-16 units before tokenising (for validating uploads: a
   * string longer than `seqLen` × the longest vocabulary piece × 2 bytes gives at least `seqLen` tokens
   * either way, so rows, truncations and empty rows count the same, at a bounded cost per row).
   * @default {no cut}
   */
  maxStringLength?: number;
}

/** A row with every string cut to `max` UTF-16 units. */
function clipStrings(value: unknown, max: number): unknown {
  if (typeof value === "string") return value.length > max ? value.slice(0, max) : value;
  if (Array.isArray(value)) return value.map((v) => clipStrings(v, max));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clipStrings(v, max)]));
  }
  return value;
}

function newDataset(source: string, options: DatasetOptions): Dataset {
  if (!Number.isInteger(options.seqLen) || options.seqLen < 2) {
    throw new RangeError(`Cannot read ${source}: seqLen must be an integer ≥ 2, got ${options.seqLen}`);
  }
  return { source, examples: [], truncated: 0, empty: 0, targets: 0 };
}

function addJsonlLine(
  dataset: Dataset,
  line: string,
  index: number,
  options: DatasetOptions & { maxStringLength?: number },
): void {
  const source = dataset.source;
  const fail = (message: string): never => {
    throw new Error(`${source}:${index + 1}: ${message}`);
  };
  if (line.trim() === "") return;
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (e) {
    fail(`invalid JSON (${(e as Error).message})`);
  }
  if (options.maxStringLength !== undefined) row = clipStrings(row, options.maxStringLength);
  let example = exampleOfRow(row, options, fail);
  if (example.inputIds.length > options.seqLen) {
    example = {
      inputIds: example.inputIds.slice(0, options.seqLen),
      labels: example.labels.slice(0, options.seqLen),
    };
    dataset.truncated++;
  }
  const targets = countTargets(example);
  if (targets === 0) {
    dataset.empty++;
    return;
  }
  dataset.examples.push(example);
  dataset.targets += targets;
}

function finishDataset(dataset: Dataset, options: DatasetOptions): Dataset {
  const source = dataset.source;
  if (dataset.examples.length === 0) {
    throw new Error(
      `Cannot train on ${source}: it has no usable rows` +
        (dataset.empty
          ? ` (${dataset.empty} rows had no target token after truncation to ${options.seqLen})`
          : ""),
    );
  }
  return dataset;
}

/**
 * Reads and parses a JSONL file.
 *
 * @param path The file.
 * @param options Tokenizer, sequence length, chat template.
 * @returns The tokenized rows.
 * @throws {Error} When the file cannot be read or a row is malformed (`file:line: …`).
 */
export async function loadJsonl(path: string, options: DatasetOptions): Promise<Dataset> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read data file "${path}": ${(e as Error).message}`);
  }
  return parseJsonl(text, path, options);
}

/**
 * Splits off a deterministic evaluation subset.
 *
 * @param dataset The data set.
 * @param fraction Share of rows for evaluation (0 < fraction < 1); at least one row each side.
 * @returns Training and evaluation sets (every k-th row goes to evaluation).
 */
export function splitDataset(dataset: Dataset, fraction: number): { train: Dataset; eval: Dataset } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new RangeError(`Cannot split data: the fraction must be in (0, 1), got ${fraction}`);
  }
  if (dataset.examples.length < 2) throw new RangeError(`Cannot split ${dataset.source}: it has one row`);
  const every = Math.max(2, Math.round(1 / fraction));
  const pick = (keep: (i: number) => boolean, suffix: string): Dataset => {
    const examples = dataset.examples.filter((_, i) => keep(i));
    return {
      source: `${dataset.source} (${suffix})`,
      examples,
      truncated: 0,
      empty: 0,
      targets: examples.reduce((s, e) => s + countTargets(e), 0),
    };
  };
  return {
    train: pick((i) => i % every !== every - 1, "train split"),
    eval: pick((i) => i % every === every - 1, "eval split"),
  };
}
