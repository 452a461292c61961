// WeightLoRA end to end on the real stories260K model: a short run lowers eval loss, the exported PEFT
// adapter gives the training graph's logits through the generation graphs, training is deterministic, a
// killed run resumes to the same adapter, --init-adapter continues, and bad input fails clearly.

import assert from "node:assert/strict";
import { loadPeftAdapter } from "../../src/lora/peft.ts";
import { gatedLoraHook } from "../../src/lora/gated_lora.ts";
import { buildLlamaInferenceGraph } from "../../src/models/llama/inference.ts";
import { buildLlamaTrainingGraph } from "../../src/models/llama/training.ts";
import { loraFeeds } from "../../src/models/lora_inputs.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { ort } from "../../src/runtime/ort.ts";
import { parseJsonl } from "../../src/train/data.ts";
import { evaluateLoss } from "../../src/train/evaluate.ts";
import { train, type TrainOptions } from "../../src/train/trainer.ts";
import { withTrainDefaults } from "../../src/train/options.ts";
import { dogRows, stories260k } from "./_stories.ts";
import { convertLlama2c, quantizationPreset } from "../../src/io/convert.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { stories260kDir } from "../_util/fixtures.ts";

function options(out: string, overrides: Partial<TrainOptions> = {}): TrainOptions {
  return withTrainDefaults({
    k: 5,
    rank: 4,
    alpha: 8,
    steps: 24,
    seqLen: 24,
    lr: 3e-3,
    lrSchedule: "constant",
    selectSteps: 8,
    growEvery: 6,
    saveEvery: 0,
    seed: 3,
    ep: "wasm",
    out,
    ...overrides,
  });
}

Deno.test("WeightLoRA on stories260K: learns, exports a PEFT adapter that reproduces the training logits", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const data = parseJsonl(dogRows(48), "dogs.jsonl", { tokenizer: model.tokenizer, seqLen: 24 });
  const out = await Deno.makeTempDir();
  const base = await evaluateLoss(model, data, { batchSize: 8, seqLen: 24, ep: "wasm" });
  const summary = await train({ model, train: data, eval: data }, options(out));

  await t.step("eval loss falls well below the base model's", () => {
    assert.ok(
      summary.final_eval_loss! < base.loss * 0.5,
      `eval loss ${summary.final_eval_loss} vs base ${base.loss}`,
    );
  });
  await t.step("weightlora.json records the selection and the shrinking sizes", async () => {
    const json = JSON.parse(await Deno.readTextFile(`${out}/weightlora.json`));
    assert.equal(json.selected_sites.length, 5);
    assert.equal(json.candidate_sites, 35);
    assert.equal(json.phases.length, 2);
    assert.equal(json.phases[0].activeSites, 35);
    assert.equal(json.phases[1].activeSites, 5);
    assert.ok(json.phases[1].optimizerStateBytes < json.phases[0].optimizerStateBytes / 2);
    const kept = Object.values(json.gates.after_selection as Record<string, number>).filter((g) => g !== 0);
    assert.equal(kept.length, 5);
    const log = (await Deno.readTextFile(`${out}/train_log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(log.length, 24);
    assert.deepEqual(Object.keys(log[0]).slice(0, 5), ["step", "loss", "lr", "grad_norm", "tokens_per_s"]);
  });
  await t.step("the exported adapter loads as PEFT and gives the training graph's logits", async () => {
    const config = JSON.parse(await Deno.readTextFile(`${out}/adapter_config.json`));
    assert.equal(config.peft_type, "LORA");
    assert.deepEqual(config.target_modules, summary.selected_sites);
    const adapter = await loadPeftAdapter(out, model.config);
    assert.equal(adapter.sites.size, 5);
    // generation path: prefill graph with LoRA tensors as inputs
    const sites = [...adapter.sites.keys()];
    const prefill = await OnnxSession.create(
      buildLlamaInferenceGraph(model, { kind: "prefill", logits: "all", loraSites: sites }),
      { ep: "wasm" },
    );
    const ids = model.tokenizer.encode("Once upon a time, there was a dog named Zorp.", { addBos: true });
    const seq = ids.length;
    const int64 = (values: number[]) =>
      new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), [1, seq]);
    const generated = await prefill.run({
      ...loraFeeds(sites, adapter.sites),
      input_ids: int64(ids),
      position_ids: int64(ids.map((_, i) => i)),
      attention_mask: int64(ids.map(() => 1)),
    });
    // training path: the gated graph with the trained factors and frozen gates (read back from the checkpoint)
    const state = JSON.parse(await Deno.readTextFile(`${out}/checkpoint/trainer_state.json`));
    const active = state.sites.filter((s: { active: boolean }) => s.active);
    const lora = gatedLoraHook({ sites: active, trainableGates: false });
    const training = await OnnxSession.create(
      buildLlamaTrainingGraph(model, { batchSize: 1, seqLen: seq, adapter: lora.hook, outputLogits: true }),
      { ep: "wasm" },
    );
    const { loadTrainingState } = await import("../../src/autodiff/checkpoint.ts");
    const { state: tensors } = await loadTrainingState(`${out}/checkpoint/training_state.safetensors`);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(ids),
      labels: int64(ids),
      attention_mask: int64(ids.map(() => 1)),
    };
    for (const [name, x] of Object.entries(tensors.tensors)) {
      if (name.startsWith("model.")) feeds[name] = new ort.Tensor("float32", x.data, x.shape);
    }
    const trained = await training.run(feeds);
    const a = generated.logits.data as Float32Array, b = trained.logits.data as Float32Array;
    assert.equal(a.length, b.length);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
    assert.ok(diff < 1e-4, `max |Δlogit| ${diff}`);
    await Promise.all([prefill.release(), training.release()]);
  });
  await t.step("--init-adapter continues from the exported adapter", async () => {
    const adapter = await loadPeftAdapter(out, model.config);
    const next = await Deno.makeTempDir();
    const s = await train(
      { model, train: data, eval: data, initAdapter: adapter },
      options(next, { method: "lora", steps: 3 }),
    );
    const firstLoss = JSON.parse((await Deno.readTextFile(`${next}/train_log.jsonl`)).split("\n")[0]).loss;
    assert.ok(
      firstLoss < base.loss * 0.5,
      `first loss ${firstLoss} starts from the adapter, not the base (${base.loss})`,
    );
    assert.deepEqual(s.selected_sites, summary.selected_sites);
    await Deno.remove(next, { recursive: true });
  });
  await Deno.remove(out, { recursive: true });
});

Deno.test("LoRA on an int8 / int4 stories260K folder (QLoRA): learns; the PEFT adapter on the quantized base gives the training logits", async (t) => {
  const float = await stories260k(t);
  if (!float) return;
  for (const preset of ["int8", "int4"] as const) {
    await t.step(preset, async () => {
      const dir = await Deno.makeTempDir({ prefix: `stories260k-${preset}-` });
      await convertLlama2c({
        model: `${stories260kDir()}/stories260K.bin`,
        tokenizer: `${stories260kDir()}/tok512.bin`,
        out: `${dir}/hf`,
        quantization: quantizationPreset(preset),
      });
      const model = await loadModelFolder(`${dir}/hf`, { id: `stories260K-${preset}` });
      assert.equal(model.config.quantization?.bits, preset === "int8" ? 8 : 4);
      const data = parseJsonl(dogRows(32), "dogs.jsonl", { tokenizer: model.tokenizer, seqLen: 24 });
      const base = await evaluateLoss(model, data, { batchSize: 8, seqLen: 24, ep: "wasm" });
      const out = `${dir}/adapter`;
      const summary = await train(
        { model, train: data, eval: data },
        options(out, { method: "lora", steps: 12, k: undefined }),
      );
      assert.ok(
        summary.final_eval_loss! < base.loss * 0.7,
        `eval loss ${summary.final_eval_loss} vs ${base.loss}`,
      );
      const adapter = await loadPeftAdapter(out, model.config);
      const sites = [...adapter.sites.keys()];
      assert.equal(sites.length, 35);
      const ids = model.tokenizer.encode("Once upon a time, there was a dog named Zorp.", { addBos: true });
      const seq = ids.length;
      const int64 = (values: number[]) =>
        new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), [1, seq]);
      // generation path: the quantized prefill graph (MatMulNBits) with the PEFT tensors as inputs
      const prefill = await OnnxSession.create(
        buildLlamaInferenceGraph(model, { kind: "prefill", logits: "all", loraSites: sites }),
        { ep: "wasm" },
      );
      const generated = await prefill.run({
        ...loraFeeds(sites, adapter.sites),
        input_ids: int64(ids),
        position_ids: int64(ids.map((_, i) => i)),
        attention_mask: int64(ids.map(() => 1)),
      });
      // training path: the quantized training graph with the checkpoint's factors
      const state = JSON.parse(await Deno.readTextFile(`${out}/checkpoint/trainer_state.json`));
      const lora = gatedLoraHook({ sites: state.sites, trainableGates: false });
      const trainingModel = buildLlamaTrainingGraph(model, {
        batchSize: 1,
        seqLen: seq,
        adapter: lora.hook,
        outputLogits: true,
      });
      assert.ok(
        trainingModel.graph.nodes.some((n) => n.opType === "MatMulNBits"),
        "the base stays quantized",
      );
      const training = await OnnxSession.create(trainingModel, { ep: "wasm" });
      const { loadTrainingState } = await import("../../src/autodiff/checkpoint.ts");
      const { state: tensors } = await loadTrainingState(`${out}/checkpoint/training_state.safetensors`);
      const feeds: Record<string, ort.Tensor> = {
        input_ids: int64(ids),
        labels: int64(ids),
        attention_mask: int64(ids.map(() => 1)),
      };
      for (const [name, x] of Object.entries(tensors.tensors)) {
        if (name.startsWith("model.")) feeds[name] = new ort.Tensor("float32", x.data, x.shape);
      }
      const trained = await training.run(feeds);
      const a = generated.logits.data as Float32Array, b = trained.logits.data as Float32Array;
      assert.equal(a.length, b.length);
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
      assert.ok(diff < 1e-4, `max |Δlogit| ${diff}`);
      await Promise.all([prefill.release(), training.release()]);
      await Deno.remove(dir, { recursive: true });
    });
  }
});

Deno.test("same seed and EP give identical adapter bytes; WeightLoRA+ halves K on schedule", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const data = parseJsonl(dogRows(16), "dogs.jsonl", { tokenizer: model.tokenizer, seqLen: 24 });
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const summaries = [];
  for (const dir of dirs) {
    summaries.push(
      await train({ model, train: data }, options(dir, { method: "weightlora-plus", steps: 14 })),
    );
  }
  const bytes = await Promise.all(dirs.map((d) => Deno.readFile(`${d}/adapter_model.safetensors`)));
  assert.deepEqual(bytes[0], bytes[1]);
  const phases = summaries[0].phases.map((p) => [p.from_step, p.activeSites]);
  assert.deepEqual(phases, [[1, 35], [7, 17], [13, 8]]);
  assert.ok(Object.values(summaries[0].ranks).every((r) => r === 16), "rank 4 doubled twice");
  for (const dir of dirs) await Deno.remove(dir, { recursive: true });
});

function cli(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../src/cli/train.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { WEIGHTLORA_WASM_THREADS: "1" },
  }).spawn();
}

Deno.test("a run killed with SIGKILL resumes from its checkpoint to the same adapter", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/dogs.jsonl`, dogRows(32));
  const common = [
    "--model",
    model.dir,
    "--data",
    `${dir}/dogs.jsonl`,
    "--rank",
    "4",
    "--k",
    "5",
    "--steps",
    "150",
    "--select-steps",
    "6",
    "--batch-size",
    "8",
    "--lr",
    "0.003",
    "--seed",
    "9",
    "--ep",
    "wasm",
    "--save-every",
    "4",
  ];
  const straight = await (cli([...common, "--out", `${dir}/straight`])).output();
  assert.equal(straight.code, 0, new TextDecoder().decode(straight.stderr));

  const victim = cli([...common, "--out", `${dir}/killed`]);
  let killedAt = -1;
  for (let i = 0; i < 600 && killedAt < 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const state = JSON.parse(await Deno.readTextFile(`${dir}/killed/checkpoint/trainer_state.json`));
      if (state.step >= 8) {
        victim.kill("SIGKILL");
        killedAt = state.step;
      }
    } catch {
      // no checkpoint yet
    }
  }
  const status = await victim.status;
  await victim.stdout.cancel();
  await victim.stderr.cancel();
  assert.ok(killedAt > 0 && killedAt < 150, `killed after checkpoint ${killedAt}`);
  assert.equal(status.signal, "SIGKILL");
  const resumed = await (cli([...common, "--out", `${dir}/killed`, "--resume", `${dir}/killed/checkpoint`]))
    .output();
  const log = new TextDecoder().decode(resumed.stderr);
  assert.equal(resumed.code, 0, log);
  assert.match(log, /Resuming at step \d+/);
  assert.deepEqual(
    await Deno.readFile(`${dir}/killed/adapter_model.safetensors`),
    await Deno.readFile(`${dir}/straight/adapter_model.safetensors`),
  );
  const steps = (await Deno.readTextFile(`${dir}/killed/train_log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step
  );
  assert.deepEqual(steps, Array.from({ length: 150 }, (_, i) => i + 1));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad input fails with clear messages", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"text": "ok"}\n{"text": oops}\n');
  await Deno.writeTextFile(`${dir}/empty.jsonl`, "\n");
  await Deno.writeTextFile(`${dir}/good.jsonl`, dogRows(4));
  // an adapter whose lora_A has the wrong width for the base model
  await Deno.mkdir(`${dir}/bad_adapter`);
  await Deno.writeTextFile(
    `${dir}/bad_adapter/adapter_config.json`,
    JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q_proj"] }),
  );
  const { encodeSafetensors } = await import("../../src/io/safetensors.ts");
  await Deno.writeFile(
    `${dir}/bad_adapter/adapter_model.safetensors`,
    encodeSafetensors([
      {
        name: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        dtype: "float32",
        dims: [2, 60],
        data: new Uint8Array(480),
      },
      {
        name: "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
        dtype: "float32",
        dims: [64, 2],
        data: new Uint8Array(512),
      },
    ]),
  );
  const cases: [string[], RegExp][] = [
    [["--data", `${dir}/bad.jsonl`], /bad\.jsonl:2: invalid JSON/],
    [["--data", `${dir}/empty.jsonl`], /it has no usable rows/],
    [["--data", `${dir}/good.jsonl`, "--k", "36"], /K must be an integer in 1\.\.35/],
    [
      ["--data", `${dir}/good.jsonl`, "--target-modules", "q_proj,qkv"],
      /Invalid --target-modules .*unknown qkv/,
    ],
    [
      ["--data", `${dir}/good.jsonl`, "--init-adapter", `${dir}/bad_adapter`],
      /\[2, 60\].*\[2, 64\]|\[2, 64\].*\[2, 60\]/,
    ],
    [["--data", `${dir}/good.jsonl`, "--lr", "fast"], /Invalid --lr "fast"/],
    [
      ["--data", `${dir}/good.jsonl`, "--steps", "5", "--select-steps", "1"],
      /Cannot select: B starts at zero, so every gate gradient is 0 at step 1.*--select-steps ≥ 2/,
    ],
    [["--data", `${dir}/good.jsonl`, "--k", "3", "--budget", "5000"], /--k and --budget exclude each other/],
    [["--data", `${dir}/good.jsonl`, "--budget", "10"], /--budget 10: the smallest candidate adapter has/],
    [
      ["--data", `${dir}/good.jsonl`, "--select-steps", "sometimes"],
      /Invalid --select-steps "sometimes": expected "all" or an integer/,
    ],
    [["--data", `${dir}/good.jsonl`, "--method", "lora", "--k", "3"], /--k does not apply to --method lora/],
    [
      ["--data", `${dir}/good.jsonl`, "--method", "weightlora-plus", "--steps", "20"],
      /growth rounds every 10 steps end at step 20/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const steps = args.includes("--steps") ? [] : ["--steps", "2"];
    const result = await (cli(["--model", model.dir, "--out", `${dir}/out`, ...steps, ...args]))
      .output();
    const stderr = new TextDecoder().decode(result.stderr);
    assert.notEqual(result.code, 0, args.join(" "));
    assert.match(stderr, pattern);
  }
  const help = await (cli(["--help"])).output();
  assert.equal(help.code, 0);
  assert.match(
    new TextDecoder().decode(help.stdout),
    /--select-steps T\|all [^]*Default: max\(2, steps \/ 10\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LoRA dropout trains, is seeded (identical bytes twice) and is recorded in the adapter config", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const data = parseJsonl(dogRows(16), "dogs.jsonl", { tokenizer: model.tokenizer, seqLen: 24 });
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir(), await Deno.makeTempDir()];
  const run = (dir: string, dropout: number) =>
    train({ model, train: data, eval: data }, options(dir, { method: "lora", steps: 6, dropout }));
  const [a] = [await run(dirs[0], 0.3), await run(dirs[1], 0.3), await run(dirs[2], 0)];
  const bytes = await Promise.all(dirs.map((d) => Deno.readFile(`${d}/adapter_model.safetensors`)));
  assert.deepEqual(bytes[0], bytes[1]);
  assert.notDeepEqual(bytes[0], bytes[2]);
  assert.ok(Number.isFinite(a.final_eval_loss));
  assert.equal(JSON.parse(await Deno.readTextFile(`${dirs[0]}/adapter_config.json`)).lora_dropout, 0.3);
  for (const dir of dirs) await Deno.remove(dir, { recursive: true });
});

Deno.test("a NaN/Inf loss stops the run with an error and keeps the last good checkpoint", async (t) => {
  const model = await stories260k(t);
  if (!model) return;
  const data = parseJsonl(dogRows(16), "dogs.jsonl", { tokenizer: model.tokenizer, seqLen: 24 });
  const out = await Deno.makeTempDir();
  // an absurd learning rate blows B up after the first step
  await assert.rejects(
    train(
      { model, train: data },
      options(out, { method: "lora", steps: 10, lr: 1e30, maxGradNorm: 0, saveEvery: 1 }),
    ),
    /Training stopped: the loss is (NaN|Infinity|-Infinity) at step (\d+); the last good checkpoint is in/,
  );
  const state = JSON.parse(await Deno.readTextFile(`${out}/checkpoint/trainer_state.json`));
  const log = (await Deno.readTextFile(`${out}/train_log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(state.step, log.length, "the checkpoint is the last step that was logged");
  assert.ok(log.every((r) => Number.isFinite(r.loss)));
  await Deno.remove(out, { recursive: true });
});
