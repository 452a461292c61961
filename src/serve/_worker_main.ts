// The body of workers/inference_worker.ts: one BatchRunner with its own single-threaded wasm sessions,
// driven by worker_runner.ts (see its message types).

/// <reference lib="deno.worker" />

import { loadModelFolder } from "../io/model_folder.ts";
import { BatchRunner } from "./batch_runner.ts";
import { preloadOrtWasm } from "./ort_wasm.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";
import type { StepInfo } from "./runner_types.ts";
import type { WorkerReply, WorkerRequest } from "./worker_runner.ts";

let runner: BatchRunner | undefined;
let step: StepInfo | undefined;
/** The adapters the engine sent, by key (rows name them by key after the first). */
const adapters = new Map<string, PreparedAdapter>();

function reply(message: WorkerReply): void {
  self.postMessage(message);
}

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const msg = e.data;
  try {
    switch (msg.type) {
      case "init": {
        await preloadOrtWasm("wasm");
        const model = await loadModelFolder(msg.dir);
        if (JSON.stringify(model.config) !== JSON.stringify(msg.config)) {
          throw new Error(
            `Cannot start an inference worker: the model folder ${msg.dir} changed since the server loaded it`,
          );
        }
        runner = await BatchRunner.create({
          model,
          tokenizer: model.tokenizer,
          ep: "wasm",
          maxBatch: msg.maxBatch,
          variantLayout: msg.variantLayout,
          // a pass's figures travel with its events: one message per pass
          onEvents: (events) => {
            reply({ type: "events", events, step });
            step = undefined;
          },
          onStep: (info) => (step = info),
        });
        reply({ type: "ready" });
        break;
      }
      case "submit":
        try {
          let adapter = msg.adapter;
          if (adapter) adapters.set(adapter.key, adapter);
          else if (msg.adapterKey !== undefined) {
            adapter = adapters.get(msg.adapterKey) ?? null;
            if (!adapter) {
              throw new Error(`Cannot run rows: adapter ${msg.adapterKey} was never sent to this worker`);
            }
          }
          runner!.submit(msg.rows, adapter);
        } catch (error) {
          const message = (error as Error).message;
          reply({
            type: "events",
            events: msg.rows.map((r) => ({ id: r.id, text: "", finishReason: "error", error: message })),
          });
        }
        break;
      case "cancel":
        runner?.cancel(msg.ids);
        break;
      case "evict":
        adapters.delete(msg.key);
        runner?.evict(msg.key);
        break;
      case "close":
        await runner?.close();
        runner = undefined;
        reply({ type: "closed" });
        break;
    }
  } catch (error) {
    reply({ type: "error", message: (error as Error).message });
  }
};
