import assert from "node:assert/strict";
import { prng, renderMarkdown, zipfSampler } from "../../bench/replicas_bench.ts";
import { requireStories260k } from "../_util/fixtures.ts";

Deno.test("zipfSampler draws item k about 1/(k+1) as often as item 0 (s = 1)", () => {
  const draw = zipfSampler(100, 1, prng(7));
  const counts = new Array(100).fill(0);
  for (let i = 0; i < 200_000; i++) counts[draw()]++;
  for (const k of [1, 3, 9]) {
    const ratio = counts[k] / counts[0];
    assert.ok(Math.abs(ratio - 1 / (k + 1)) < 0.02, `item ${k}: ${ratio} of item 0's draws`);
  }
  // the harmonic tail: items 50–99 carry H(100) − H(50) over H(100) of the draws
  let h50 = 0, h100 = 0;
  for (let k = 1; k <= 100; k++) {
    h100 += 1 / k;
    if (k <= 50) h50 += 1 / k;
  }
  const tail = counts.slice(50).reduce((a, b) => a + b, 0) / 200_000;
  assert.ok(Math.abs(tail - (h100 - h50) / h100) < 0.01, `tail share ${tail}`);
});

Deno.test("zipfSampler with s = 0 is uniform and stays in range", () => {
  const draw = zipfSampler(4, 0, prng(3));
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 40_000; i++) counts[draw()]++;
  for (const c of counts) assert.ok(Math.abs(c / 10_000 - 1) < 0.05, `counts ${counts}`);
});

Deno.test({
  name: "replicas bench: the smallest smoke run serves new versions on every replica and fills both tables",
  ignore: !requireStories260k("replicas bench smoke run"),
  sanitizeResources: false,
  fn: async () => {
    const args = [
      "run",
      "-A",
      new URL("../../bench/replicas_bench.ts", import.meta.url).pathname,
      "--quick",
      "--versions=2",
      "--tenants=3",
      "--seconds=1",
      "--clients=2",
      "--cache-adapters=2",
      "--dry-run",
    ];
    const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /\| 3 tenants +\| +[\d.]+ \| +[1-9]\d* \|/, "the 3-tenant run served requests");
    assert.match(stdout, /Where a miss's time goes/);
    if (Deno.env.get("WEIGHTLORA_BENCH_PG_URL") || Deno.env.get("WEIGHTLORA_TEST_PG_URL")) {
      assert.match(stdout, /\| new version served \(completion output\) +\| +2 \|/, stdout);
      assert.match(stdout, /replicas that missed the 10 s deadline: 0\./);
    } else {
      assert.match(stderr, /the propagation phase is skipped/);
    }
  },
});

/** A tenants-phase run as the bench writes it (figures made up; the tests read the rendering). */
function fakeRun(label: string, tenants: number, tps: number) {
  const s = { n: 3, p50: 1, p99: 2, max: 3 };
  return {
    label,
    tenants,
    seconds: 20,
    requests: 100,
    errors: 0,
    tokens: 1600,
    tokens_per_s: tps,
    latency_ms: s,
    cold_request_ms: s,
    tenants_used: tenants,
    hits: 90,
    misses: 10,
    evictions: 5,
    hit_rate: 0.9,
    mean_load_ms: 12,
    decode_passes_per_s: 100,
    rows_per_decode: 7,
    adapters_per_decode: 5,
    prefill_passes_per_s: 10,
  };
}

Deno.test("replicas bench: renderMarkdown marks the 1,000-tenant goal from the JSON alone", () => {
  const s = { n: 3, p50: 1, p99: 2, max: 3 };
  const run = fakeRun;
  const md = renderMarkdown({
    date: "2026-12-05",
    machine: "test",
    database: "an embedded database",
    tenants: {
      cache_adapters: 64,
      cache_mb: 4.5,
      prepared_bytes: 73600,
      clients: 8,
      max_tokens: 16,
      zipf: 1,
      push_seconds: 3,
      runs: [run("single #1", 1, 100), run("1000 tenants", 1000, 70), run("single #2", 1, 100)],
      ratios: [{ tenants: 1000, tokens_per_s: 70, single_tokens_per_s: 100, ratio: 0.7 }],
      load_path: {
        adapters: 3,
        get_ms: s,
        read_ms: s,
        parse_ms: s,
        prepare_ms: s,
        revalidate_ms: s,
        prepared_bytes: 73600,
      },
    },
  });
  assert.match(md, /\| +1,000 \| +70 \| +100 \| 0\.70× \| ≥ 0\.8× missed \|/);
  assert.doesNotMatch(md, /## Propagation/);
});

Deno.test("replicas bench: with rounds, one ratio per round and where each run's time goes", () => {
  const s = { n: 3, p50: 1, p99: 2, max: 3 };
  const run = (label: string, tenants: number, tps: number, round?: number) => ({
    ...fakeRun(label, tenants, tps),
    round,
    decode_ms: 0.9,
    decode_run_ms: 0.8,
    decode_feed_ms: 0.04,
    worker_busy: 0.85,
    cpu: { server_main: 0.25, server_other: 0.64, bench: 0.07 },
    request_ms: { client: 31, server: 28, resolve: 2.1, queue: 0.02, worker: 16.6 },
  });
  const md = renderMarkdown({
    date: "2026-12-05",
    machine: "test",
    database: "an embedded database",
    tenants: {
      cache_adapters: 64,
      cache_mb: 4.5,
      prepared_bytes: 73600,
      clients: 8,
      max_tokens: 16,
      zipf: 1,
      push_seconds: 3,
      runs: [
        run("single #1", 1, 100, 0),
        run("1000 tenants (round 1)", 1000, 90, 1),
        run("single #2", 1, 100, 1),
        run("1000 tenants (round 2)", 1000, 75, 2),
        run("single #3", 1, 100, 2),
      ],
      ratios: [
        { code: "this", round: 1, tenants: 1000, tokens_per_s: 90, single_tokens_per_s: 100, ratio: 0.9 },
        { code: "this", round: 2, tenants: 1000, tokens_per_s: 75, single_tokens_per_s: 100, ratio: 0.75 },
      ],
      load_path: {
        adapters: 3,
        get_ms: s,
        read_ms: s,
        parse_ms: s,
        prepare_ms: s,
        revalidate_ms: s,
        prepared_bytes: 73600,
      },
    },
  });
  assert.match(md, /\| +1,000 \| +1 \| +90 \| +100 \| 0\.90× \| ≥ 0\.8× met +\|/);
  assert.match(md, /\| +1,000 \| +2 \| +75 \| +100 \| 0\.75× \| ≥ 0\.8× missed \|/);
  // the time table: pass split (rest = all − run − feeds), busy share, CPU, the request's time
  assert.match(md, /\| 1000 tenants \(round 1\) +\| +0\.9 \| +0\.8 \| +0\.04 \| +0\.06 \| +0\.85 \|/);
  assert.match(md, /\| +31 \| +28 \| +2\.1 \| +0\.02 \| +16\.6 \|/);
});
