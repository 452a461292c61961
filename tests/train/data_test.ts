import assert from "node:assert/strict";
import {
  countTargets,
  IGNORE_LABEL,
  JsonlChecker,
  parseJsonl,
  parseJsonlAsync,
  splitDataset,
} from "../../src/train/data.ts";
import { DEFAULT_CHAT_TEMPLATE, renderChatTemplate } from "../../src/io/chat_template.ts";
import { BatchSampler, makeBatch } from "../../src/train/batches.ts";
import { learningRate } from "../../src/train/schedule.ts";

// A character-level stand-in tokenizer: ids 3.. are char codes − 29; BOS 1, EOS 2.
const tokenizer = {
  vocabSize: 128,
  bosId: 1,
  eosIds: [2],
  encode: (text: string) => [...text].map((c) => c.charCodeAt(0) - 29),
  idToToken: (id: number) => (id === 1 ? "<s>" : id === 2 ? "</s>" : String.fromCharCode(id + 29)),
};
const options = { tokenizer, seqLen: 16 };

Deno.test("prompt/completion rows train on the completion and EOS only", () => {
  const data = parseJsonl('{"prompt": "ab", "completion": "cd"}\n', "d.jsonl", options);
  const [e] = data.examples;
  assert.deepEqual(e.inputIds, [1, 68, 69, 70, 71, 2]);
  assert.deepEqual(e.labels, [IGNORE_LABEL, IGNORE_LABEL, IGNORE_LABEL, 70, 71, 2]);
  assert.equal(countTargets(e), 3);
  assert.equal(data.targets, 3);
});

Deno.test("completionEos: false leaves the EOS out of prompt/completion rows", () => {
  const [e] =
    parseJsonl('{"prompt": "ab", "completion": "cd"}', "d.jsonl", { ...options, completionEos: false })
      .examples;
  assert.deepEqual(e.inputIds, [1, 68, 69, 70, 71]);
  assert.deepEqual(e.labels, [IGNORE_LABEL, IGNORE_LABEL, IGNORE_LABEL, 70, 71]);
});

Deno.test("text rows train on every token after BOS; pre-tokenized rows are used exactly", () => {
  const data = parseJsonl(
    '{"text": "hi"}\n\n{"input_ids": [5, 6, 7]}\n{"input_ids": [5, 6, 7], "labels": [-100, 6, -100]}\n',
    "d.jsonl",
    options,
  );
  assert.deepEqual(data.examples.map((e) => e.inputIds), [[1, 75, 76], [5, 6, 7], [5, 6, 7]]);
  assert.deepEqual(data.examples.map(countTargets), [2, 2, 1]);
});

Deno.test("long rows are truncated and counted; rows left without targets are skipped", () => {
  const data = parseJsonl(
    `{"text": "${"x".repeat(40)}"}\n{"prompt": "${"p".repeat(20)}", "completion": "c"}\n`,
    "d.jsonl",
    options,
  );
  assert.equal(data.truncated, 2);
  assert.equal(data.empty, 1);
  assert.equal(data.examples.length, 1);
  assert.equal(data.examples[0].inputIds.length, 16);
});

Deno.test("malformed rows name the file and line", () => {
  const cases: [string, RegExp][] = [
    ['{"text": "ok"}\n{"text": ', /d\.jsonl:2: invalid JSON/],
    ['{"text": 3}', /d\.jsonl:1: "text" must be a string/],
    ['{"foo": 1}', /d\.jsonl:1: a row needs .* got keys foo/],
    ['{"input_ids": [1, 500]}', /d\.jsonl:1: input_ids\[1\] = 500 is outside the vocabulary/],
    ['{"input_ids": [1, 2], "labels": [1]}', /d\.jsonl:1: "labels" has 1 entries but "input_ids" has 2/],
    ["[1, 2]", /d\.jsonl:1: a row must be a JSON object/],
  ];
  for (const [text, pattern] of cases) assert.throws(() => parseJsonl(text, "d.jsonl", options), pattern);
  assert.throws(
    () => parseJsonl("\n\n", "empty.jsonl", options),
    /Cannot train on empty\.jsonl: it has no usable rows/,
  );
});

Deno.test("messages rows train on the assistant turns only", () => {
  const template =
    "{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}";
  const data = parseJsonl(
    '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
    "chat.jsonl",
    { ...options, seqLen: 64, chatTemplate: template },
  );
  const [e] = data.examples;
  const trained = e.labels.map((l, i) => (l === IGNORE_LABEL ? "" : tokenizer.idToToken(e.inputIds[i]))).join(
    "",
  );
  assert.equal(trained, "a");
});

Deno.test("messages rows on a model without a template use the server's transcript; loss on the reply", () => {
  const [e] = parseJsonl(
    '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
    "d.jsonl",
    { ...options, seqLen: 64 },
  ).examples;
  const text = (ids: number[]) => ids.map((id) => tokenizer.idToToken(id)).join("");
  const rendered = renderChatTemplate(DEFAULT_CHAT_TEMPLATE, {
    messages: [{ role: "user", content: "x" }, { role: "assistant", content: "y" }],
    addGenerationPrompt: false,
  });
  assert.equal(rendered, "User: x\nAssistant: y\n");
  assert.equal(text(e.inputIds), rendered);
  assert.equal(text(e.inputIds.filter((_, i) => e.labels[i] !== IGNORE_LABEL)), " y\n");
});

Deno.test("batches pad with ignored labels and a zero mask; the sampler is seeded and resumable", () => {
  const data = parseJsonl(
    ["a", "bb", "ccc", "dddd", "eeeee"].map((t) => JSON.stringify({ text: t })).join("\n"),
    "d",
    options,
  );
  const batch = makeBatch(data.examples.slice(0, 2), { batchSize: 3, seqLen: 4, padId: 2 });
  assert.deepEqual([...batch.attentionMask].map(Number), [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1]);
  assert.deepEqual([...batch.labels].map(Number).slice(0, 4), [1, 68, -100, -100]);
  assert.equal(batch.targets, 3);
  assert.equal(batch.seqLen, 4);
  // padding per batch: to the longest row of the batch, not seqLen
  const fitted = makeBatch(data.examples.slice(0, 2), {
    batchSize: 3,
    seqLen: 4,
    padId: 2,
    padTo: "longest",
  });
  assert.equal(fitted.seqLen, 3);
  assert.deepEqual([...fitted.attentionMask].map(Number), [1, 1, 0, 1, 1, 1, 1, 1, 1]);
  assert.equal(fitted.targets, 3);
  assert.equal(makeBatch([], { batchSize: 1, seqLen: 8, padTo: "longest" }).seqLen, 2, "at least 2 tokens");
  const a = new BatchSampler(data.examples, 7), b = new BatchSampler(data.examples, 7);
  const first = a.next(3);
  assert.deepEqual(b.next(3), first);
  const saved = a.state;
  const rest = a.next(8); // crosses into the next epoch
  const resumed = new BatchSampler(data.examples, 7);
  resumed.state = saved;
  assert.deepEqual(resumed.next(8), rest);
  assert.notDeepEqual(new BatchSampler(data.examples, 8).next(5), new BatchSampler(data.examples, 7).next(5));
});

Deno.test("grouping by length draws batches of similar rows, seeded and resumable", () => {
  const lengths = Array.from({ length: 64 }, (_, i) => 1 + ((i * 37) % 23));
  const data = parseJsonl(
    lengths.map((n) => JSON.stringify({ text: "x".repeat(n) })).join("\n"),
    "d",
    options,
  );
  const spread = (rows: { inputIds: number[] }[]) =>
    Math.max(...rows.map((r) => r.inputIds.length)) - Math.min(...rows.map((r) => r.inputIds.length));
  const grouped = new BatchSampler(data.examples, 3, { groupByLength: 4 });
  const plain = new BatchSampler(data.examples, 3);
  let groupedSpread = 0, plainSpread = 0;
  const seen = new Set<unknown>();
  for (let i = 0; i < 16; i++) {
    const batch = grouped.next(4);
    batch.forEach((r) => seen.add(r));
    groupedSpread += spread(batch);
    plainSpread += spread(plain.next(4));
  }
  assert.equal(seen.size, 64, "one epoch draws every row once");
  assert.ok(groupedSpread * 3 < plainSpread, `spread ${groupedSpread} vs ${plainSpread}`);
  const again = new BatchSampler(data.examples, 3, { groupByLength: 4 });
  again.state = { epoch: 1, position: 8 };
  const resumed = new BatchSampler(data.examples, 3, { groupByLength: 4 });
  resumed.state = { epoch: 1, position: 8 };
  assert.deepEqual(again.next(12), resumed.next(12));
});

Deno.test("eval split is deterministic and disjoint", () => {
  const data = parseJsonl(
    Array.from({ length: 10 }, (_, i) => JSON.stringify({ text: `r${i}` })).join("\n"),
    "d",
    options,
  );
  const { train, eval: evalSet } = splitDataset(data, 0.2);
  assert.equal(train.examples.length + evalSet.examples.length, 10);
  assert.equal(evalSet.examples.length, 2);
});

Deno.test("learning-rate schedules: warmup, linear and cosine decay", () => {
  const base = { lr: 1, warmupSteps: 2, totalSteps: 10 };
  assert.equal(learningRate(1, { ...base, schedule: "constant" }), 0.5);
  assert.equal(learningRate(2, { ...base, schedule: "constant" }), 1);
  assert.equal(learningRate(3, { ...base, schedule: "linear" }), 1);
  assert.equal(learningRate(7, { ...base, schedule: "linear" }), 0.5);
  assert.ok(Math.abs(learningRate(7, { ...base, schedule: "cosine" }) - 0.5) < 1e-12);
  assert.equal(learningRate(10, { ...base, schedule: "constant" }), 1);
});

Deno.test("parseJsonlAsync: the same rows as parseJsonl, and other work runs while it tokenises", async () => {
  const text = '{"text": "hi"}\n\n{"prompt": "ab", "completion": "cd"}\n{"input_ids": [5, 6, 7]}';
  assert.deepEqual(await parseJsonlAsync(text, "d.jsonl", options), parseJsonl(text, "d.jsonl", options));
  await assert.rejects(
    parseJsonlAsync('{"text": "a"}\n{bad', "d.jsonl", options),
    /^Error: d\.jsonl:2: invalid JSON/,
  );
  // a slow tokenizer: 2000 rows × ~0.05 ms; a timer set before must fire before the end
  const slow = {
    ...tokenizer,
    encode: (s: string) => {
      const end = performance.now() + 0.05;
      while (performance.now() < end) { /* busy */ }
      return tokenizer.encode(s);
    },
  };
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const rows = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ text: `row ${i}` })).join("\n");
  const data = await parseJsonlAsync(rows, "big.jsonl", { ...options, tokenizer: slow, sliceMs: 5 });
  clearInterval(timer);
  assert.equal(data.examples.length, 2000);
  assert.ok(ticks >= 5, `the event loop ran ${ticks} times during ~100 ms of tokenisation`);
});

Deno.test("JsonlChecker: the counts of parseJsonl however the text is cut, without keeping rows", async () => {
  const text = '{"text": "hi"}\n\n{"prompt": "ab", "completion": "cd"}\r\n{"input_ids": [5, 6, 7]}\n' +
    '{"text": "héllo wörld"}';
  const whole = parseJsonl(text, "d.jsonl", options);
  for (const size of [1, 2, 3, 7, 16, text.length]) {
    const checker = new JsonlChecker("d.jsonl", options);
    for (let at = 0; at < text.length; at += size) await checker.push(text.slice(at, at + size));
    assert.deepEqual(await checker.finish(), {
      rows: whole.examples.length,
      truncated: whole.truncated,
      empty: whole.empty,
      targets: whole.targets,
    }, `pieces of ${size}`);
  }
  const bad = new JsonlChecker("d.jsonl", options);
  await bad.push('{"text": "a"}\n{ba');
  await assert.rejects(bad.push('d}\n{"text": "c"}\n'), /^Error: d\.jsonl:2: invalid JSON/);
  const empty = new JsonlChecker("e.jsonl", options);
  await empty.push("\n  \n");
  await assert.rejects(empty.finish(), /Cannot train on e\.jsonl: it has no usable rows/);
});

Deno.test("parseJsonlAsync maxStringLength: long strings cut before tokenising, the same rows counted", async () => {
  let longest = 0;
  const spy = {
    ...tokenizer,
    encode: (s: string) => {
      longest = Math.max(longest, s.length);
      return tokenizer.encode(s);
    },
  };
  const long = "a".repeat(200_000);
  const text = [
    JSON.stringify({ text: long }),
    JSON.stringify({ prompt: long, completion: "cd" }), // the completion is truncated away: empty
    JSON.stringify({ prompt: "ab", completion: long }),
    JSON.stringify({ text: "hi" }),
  ].join("\n");
  const full = parseJsonl(text, "d.jsonl", options);
  const clipped = await parseJsonlAsync(text, "d.jsonl", { ...options, tokenizer: spy, maxStringLength: 64 });
  assert.ok(longest <= 64 + 8, `the longest encoded text had ${longest} characters`);
  assert.deepEqual(
    [clipped.examples.length, clipped.truncated, clipped.empty, clipped.targets],
    [full.examples.length, full.truncated, full.empty, full.targets],
  );
  assert.deepEqual(clipped.examples, full.examples);
});
