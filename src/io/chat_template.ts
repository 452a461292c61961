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
