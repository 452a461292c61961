import assert from "node:assert/strict";
import { compileSafePattern, MAX_PATTERN_LENGTH } from "../../src/lora/safe_pattern.ts";

const NAMES = [
  "model.layers.0.self_attn.q_proj",
  "model.layers.12.self_attn.v_proj",
  "model.layers.3.mlp.down_proj",
  "model.layers.3.mlp.up_proj",
  "",
  "q_proj",
];

Deno.test("agrees with RegExp full matches on the patterns PEFT configs use", () => {
  const patterns = [
    ".*\\.(q|v)_proj",
    ".*layers\\.0\\.self_attn\\.(q|v)_proj",
    "model\\.layers\\.[0-9]+\\.self_attn\\.(q_proj|k_proj|v_proj|o_proj)",
    "model.layers.\\d{1,2}.mlp.(up|down)_proj",
    ".*(?:mlp)\\..*",
    "(?P<x>q)_proj|.*up_proj",
    "[^.]*",
    "model\\.layers\\.(1[0-9]|[3-5])\\..*",
    "^model.*proj$",
    ".*_proj?",
    "a{0}q_proj",
    ".*\\w+_proj",
    "",
  ];
  for (const p of patterns) {
    const safe = compileSafePattern(p);
    const re = new RegExp(`^(?:${p.replace("(?P<", "(?<")})$`);
    for (const name of NAMES) {
      assert.equal(safe.test(name), re.test(name), `${JSON.stringify(p)} on ${JSON.stringify(name)}`);
    }
  }
});

Deno.test("catastrophic-backtracking patterns match in linear time", () => {
  const name = "model.layers.31.self_attn.q_proj_and_some_more_text_to_make_it_long";
  for (const p of [".{7}(.*)*!", "(a*)*b", "(.*a){20}z", "(x+x+)+y", "((.*)*)*!"]) {
    const start = performance.now();
    const safe = compileSafePattern(p);
    assert.equal(safe.test(name), false);
    assert.equal(safe.test("a".repeat(2000)), false);
    const ms = performance.now() - start;
    assert.ok(ms < 100, `${p} took ${ms.toFixed(1)} ms`);
  }
  assert.equal(compileSafePattern(".{7}(.*)*!").test("0123456789!"), true);
  assert.equal(compileSafePattern("(a*)*b").test("aaab"), true);
});

Deno.test("refuses backreferences, lookaround, possessive quantifiers and oversize patterns", () => {
  assert.throws(() => compileSafePattern("(a)\\1"), /backreferences are not supported/);
  assert.throws(() => compileSafePattern("(?P<a>x)(?P=a)"), /backreferences are not supported/);
  assert.throws(() => compileSafePattern("(?=q).*"), /lookaround assertions are not supported/);
  assert.throws(() => compileSafePattern("(?<!q).*"), /lookaround assertions are not supported/);
  assert.throws(() => compileSafePattern("a*+"), /possessive quantifiers are not supported/);
  assert.throws(() => compileSafePattern("a{1000}"), /repetition bound over 100/);
  assert.throws(() => compileSafePattern("((a{100}){100}){100}"), RangeError);
  assert.throws(() => compileSafePattern("x".repeat(MAX_PATTERN_LENGTH + 1)), RangeError);
  assert.throws(() => compileSafePattern("(q"), /missing '\)'/);
  assert.throws(() => compileSafePattern("q)"), /unbalanced '\)'/);
  assert.throws(() => compileSafePattern("[a-"), /missing '\]'/);
  assert.throws(() => compileSafePattern("*q"), /nothing to repeat/);
  assert.throws(() => compileSafePattern("\\bq"), /escape "\\b" is not supported/);
});
