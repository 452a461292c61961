// The body of workers/adapter_validation_worker.ts: validates one adapter per message (see
// adapter_validator.ts for the messages).

/// <reference lib="deno.worker" />

import { parseAdapterFiles } from "./prepared_adapter.ts";
import type { ValidateRequest, ValidateResult } from "./adapter_validator.ts";

self.onmessage = async (event: MessageEvent<ValidateRequest>) => {
  const { id, config, weightsPath, model, source } = event.data;
  let result: ValidateResult;
  try {
    const weights = await Deno.readFile(weightsPath);
    const peft = parseAdapterFiles({ config, weights }, { model, source });
    const ranks = [...peft.sites.values()].map((s) => s.rank);
    result = { id, ok: true, sites: peft.sites.size, rank: Math.max(...ranks) };
  } catch (e) {
    result = {
      id,
      ok: false,
      invalid: (e as Error).name === "InvalidAdapterError",
      message: (e as Error).message,
    };
  }
  self.postMessage(result);
};
