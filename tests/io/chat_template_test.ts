import assert from "node:assert/strict";
import { renderChatTemplate } from "../../src/io/chat_template.ts";

// Qwen2-Instruct's ChatML template (as in its tokenizer_config.json).
const CHATML = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// Llama-2-chat's template (as in its tokenizer_config.json).
const LLAMA2 = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}" +
  "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}" +
  "{% set system_message = false %}{% endif %}{% for message in loop_messages %}" +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}" +
  "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

Deno.test("ChatML: default system prompt and the generation prompt", () => {
  const messages = [{ role: "user", content: "Hi there" }];
  assert.equal(
    renderChatTemplate(CHATML, { messages }),
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.ok(!renderChatTemplate(CHATML, { messages, addGenerationPrompt: false }).endsWith("assistant\n"));
});

Deno.test("Llama-2-chat: BOS/EOS texts, system block, and raise_exception surfaces as an error", () => {
  const text = renderChatTemplate(LLAMA2, {
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello" },
      { role: "assistant", content: "Hi!" },
      { role: "user", content: "Bye" },
    ],
    bosToken: "<s>",
    eosToken: "</s>",
  });
  assert.equal(text, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST] Hi! </s><s>[INST] Bye [/INST]");
  assert.throws(
    () => renderChatTemplate(LLAMA2, { messages: [{ role: "assistant", content: "x" }] }),
    /Cannot render chat template: .*Conversation roles must alternate/,
  );
});

Deno.test("extra variables reach the template; a broken template fails to parse", () => {
  assert.equal(
    renderChatTemplate("{{ date_string }}|{{ messages|length }}", {
      messages: [],
      variables: { date_string: "26 Jul 2024" },
    }),
    "26 Jul 2024|0",
  );
  assert.throws(
    () => renderChatTemplate("{% for m in messages %}", { messages: [] }),
    /Cannot (parse|render) chat template/,
  );
});
