/**
 * {@linkcode renderChatTemplate}: Hugging Face chat templates (Jinja, from `tokenizer_config.json` or
 * `chat_template.jinja`) rendered with `@huggingface/jinja`, as transformers' `apply_chat_template` does.
 *
 * @module
 */

import { Template } from "@huggingface/jinja";

/** One chat message. */
export interface ChatMessage {
  /** `system`, `user`, `assistant` or `tool`. */
  role: string;
  /** The text. */
  content: string;
}

/** Options of {@linkcode renderChatTemplate}. */
export interface RenderChatTemplateOptions {
  /** The conversation. */
  messages: readonly ChatMessage[];
  /** End with the assistant's turn header (for generation). @default true */
  addGenerationPrompt?: boolean;
  /** The BOS token text (`bos_token`). @default "" */
  bosToken?: string;
  /** The EOS token text (`eos_token`). @default "" */
  eosToken?: string;
  /** More template variables (e.g. `tools`, `date_string`). */
  variables?: Record<string, unknown>;
}

const CACHE = new Map<string, Template>();

/**
 * Renders a chat template. The result usually starts with the BOS token text, so encode it with
 * `addBos: false`.
 *
 * @param template The Jinja source.
 * @param options Messages, generation prompt, special-token texts, extra variables.
 * @returns The prompt text.
 * @throws {Error} When the template does not parse or raises (`raise_exception`), with its message.
 *
 * @example
 * ```ts
 * import { renderChatTemplate } from "./chat_template.ts";
 * const text = renderChatTemplate(
 *   "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
 *   { messages: [{ role: "user", content: "Hi" }] },
 * );
 * console.assert(text === "<user>Hi<assistant>");
 * ```
 */
export function renderChatTemplate(template: string, options: RenderChatTemplateOptions): string {
  let compiled = CACHE.get(template);
  if (compiled === undefined) {
    try {
      compiled = new Template(template);
    } catch (e) {
      throw new Error(`Cannot parse chat template: ${(e as Error).message}`);
    }
    if (CACHE.size > 32) CACHE.clear();
    CACHE.set(template, compiled);
  }
  try {
    return compiled.render({
      ...options.variables,
      messages: options.messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
    });
  } catch (e) {
    throw new Error(`Cannot render chat template: ${(e as Error).message}`);
  }
}

/**
 * The chat template of models that have none, used alike by the server's chat endpoint and by training
 * on `{"messages"}` rows: system text, then `User: …` and `Assistant: …` lines, ending with `Assistant:`
 * for the reply. Generation with it stops at {@linkcode DEFAULT_CHAT_STOP}.
 */
export const DEFAULT_CHAT_TEMPLATE = "{% for m in messages %}" +
  "{% if m.role == 'system' %}{{ m.content }}\n\n" +
  "{% elif m.role == 'user' %}User: {{ m.content }}\n" +
  "{% elif m.role == 'assistant' %}Assistant: {{ m.content }}\n" +
  "{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}" +
  "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

/** The stop string of {@linkcode DEFAULT_CHAT_TEMPLATE}: the model does not write the user's next turn. */
export const DEFAULT_CHAT_STOP = "\nUser:";

/**
 * Reads a chat template from a file: a Jinja file (`chat_template.jinja`), or a JSON file with a
 * `chat_template` string field (`tokenizer_config.json`).
 *
 * @param path The file.
 * @returns The template source.
 * @throws {Error} When the file cannot be read, or a JSON file has no `chat_template` string.
 * @example
 * ```ts ignore
 * import { readChatTemplateFile } from "./chat_template.ts";
 * const template = await readChatTemplateFile("chat_template.jinja");
 * ```
 */
export async function readChatTemplateFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "the file does not exist" : (e as Error).message;
    throw new Error(`Cannot read chat template ${path}: ${why}`);
  }
  if (!path.endsWith(".json")) {
    if (text.trim() === "") throw new Error(`Cannot use chat template ${path}: the file is empty`);
    return text;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot read chat template ${path}: ${(e as Error).message}`);
  }
  const template = (parsed as { chat_template?: unknown } | null)?.chat_template;
  if (typeof template !== "string") {
    throw new Error(`Cannot use chat template ${path}: the JSON file has no "chat_template" string`);
  }
  return template;
}
