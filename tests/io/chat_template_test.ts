import assert from "node:assert/strict";
import {
  DEFAULT_CHAT_STOP,
  DEFAULT_CHAT_TEMPLATE,
  readChatTemplateFile,
  renderChatTemplate,
} from "../../src/io/chat_template.ts";

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

Deno.test("readChatTemplateFile reads a Jinja file or a tokenizer_config.json's chat_template", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, template);
    assert.equal(await readChatTemplateFile(`${dir}/chat_template.jinja`), template);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ chat_template: template }));
    assert.equal(await readChatTemplateFile(`${dir}/tokenizer_config.json`), template);
    await Deno.writeTextFile(`${dir}/other.json`, "{}");
    await assert.rejects(readChatTemplateFile(`${dir}/other.json`), /has no "chat_template" string/);
    await assert.rejects(readChatTemplateFile(`${dir}/none.jinja`), /none\.jinja: the file does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the default transcript: system text, User:/Assistant: lines, ending with Assistant:", () => {
  const text = renderChatTemplate(DEFAULT_CHAT_TEMPLATE, {
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello." },
      { role: "user", content: "Bye" },
    ],
  });
  assert.equal(text, "Be brief.\n\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:");
  assert.ok(text.includes(`${DEFAULT_CHAT_STOP} Bye`), "the stop string is where the next user turn starts");
});
