import assert from "node:assert/strict";
import { StopMatcher } from "../../src/models/stop_matcher.ts";

Deno.test("stop strings are held back while they may start, cut on a match, and never emitted in part", () => {
  const m = new StopMatcher(["\nUser:", "END"]);
  assert.deepEqual(m.push("Hello\nUs"), { text: "Hello", stopped: false });
  assert.deepEqual(m.push("ed"), { text: "\nUsed", stopped: false });
  assert.deepEqual(m.push(" it E"), { text: " it ", stopped: false });
  assert.deepEqual(m.push("ND more"), { text: "", stopped: true });
  assert.deepEqual(m.push("anything"), { text: "", stopped: true });
});

Deno.test("finish releases held-back text; empty stop strings are refused", () => {
  const m = new StopMatcher(["STOP"]);
  assert.deepEqual(m.push("ab ST"), { text: "ab ", stopped: false });
  assert.deepEqual(m.finish("O"), { text: "STO", stopped: false });
  assert.throws(() => new StopMatcher([""]), /stop strings must be non-empty/);
});
