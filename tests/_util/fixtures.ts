/**
 * Shared test helpers: where the test model lives, and whether a test that needs it (or WebGPU) can run.
 *
 * Outside CI a missing requirement skips the test with a visible message; under `CI=true` it is a
 * failure, since `.ci/run` provides both (the model folder beside the clone, lavapipe for WebGPU).
 *
 * @example
 * ```ts
 * import { requireStories260k, requireWebGpu, stories260kDir } from "./fixtures.ts";
 * Deno.test({
 *   name: "reads the model",
 *   ignore: !requireStories260k("reads the model"),
 *   fn: () => {
 *     Deno.statSync(`${stories260kDir()}/stories260K.bin`);
 *   },
 * });
 * Deno.test("runs on WebGPU", async (t) => {
 *   if (!(await requireWebGpu(t))) return;
 * });
 * ```
 *
 * @module
 */

import type { LlamaConfig } from "../../src/models/config.ts";
import { hasWebGpu } from "../../src/runtime/execution_provider.ts";

/** What a skip message names: a test context or a test name. */
export type TestLabel = Deno.TestContext | string;

/**
 * Whether tests run under CI (`CI=true`), where missing requirements are failures.
 *
 * @returns True when the `CI` environment variable is `true`.
 */
export function isCi(): boolean {
  return Deno.env.get("CI") === "true";
}

/**
 * The absolute path of the stories260K model folder, `../shared/models/stories260K` from the repo root.
 *
 * @returns The folder path (it may not exist; see {@linkcode requireStories260k}).
 */
export function stories260kDir(): string {
  return decodeURIComponent(new URL("../../../shared/models/stories260K", import.meta.url).pathname);
}

function nameOf(label: TestLabel | undefined): string {
  if (label === undefined) return "test";
  return typeof label === "string" ? `"${label}"` : `"${label.name}"`;
}

/**
 * Checks that the stories260K folder exists.
 *
 * @param label The test (context or name) for the skip message.
 * @returns True when the folder exists; false (after printing why) when it is absent outside CI.
 * @throws {Error} When it is absent under `CI=true`.
 */
export function requireStories260k(label?: TestLabel): boolean {
  const dir = stories260kDir();
  try {
    if (Deno.statSync(dir).isDirectory) return true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const why = `the stories260K model folder ${dir} is missing`;
  if (isCi()) throw new Error(`Cannot run ${nameOf(label)} under CI: ${why}`);
  console.warn(`Skipping ${nameOf(label)}: ${why}`);
  return false;
}

/**
 * Checks that WebGPU has an adapter.
 *
 * @param label The test (context or name) for the skip message.
 * @returns True when an adapter exists; false (after printing why) when none does outside CI.
 * @throws {Error} When none exists under `CI=true` (where `.ci/run` installs lavapipe).
 */
export async function requireWebGpu(label?: TestLabel): Promise<boolean> {
  if (await hasWebGpu()) return true;
  const why = "navigator.gpu yields no WebGPU adapter (install Debian's mesa-vulkan-drivers for lavapipe)";
  if (isCi()) throw new Error(`Cannot run ${nameOf(label)} under CI: ${why}`);
  console.warn(`Skipping ${nameOf(label)}: ${why}`);
  return false;
}

/** stories260K's configuration, as the llama2.c converter reads it (5 blocks of 7 adapter sites). */
export const STORIES260K_CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: 512,
  hiddenSize: 64,
  intermediateSize: 172,
  numHiddenLayers: 5,
  numAttentionHeads: 8,
  numKeyValueHeads: 4,
  headDim: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 512,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};
