/**
 * Training-state checkpoints as safetensors: parameters and optimizer state as float32 tensors, the step
 * count in `__metadata__`. Written atomically (temp file + rename), so a crash never leaves half a file.
 *
 * @module
 */

import { encodeSafetensors, parseSafetensors, readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import type { TrainingState } from "./training_session.ts";
import type { TensorData } from "../onnx/types.ts";

/**
 * Encodes a training state as safetensors tensors.
 *
 * @param state The state from `TrainingSession.state()`.
 * @returns Tensors named as in the state, float32.
 */
export function trainingStateTensors(state: TrainingState): TensorData[] {
  return Object.entries(state.tensors).map(([name, { shape, data }]) => ({
    name,
    dtype: "float32",
    dims: shape,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  }));
}

/**
 * Saves a training state to a safetensors file, atomically.
 *
 * @param path Destination file.
 * @param state The state.
 * @param metadata Extra string metadata stored beside the step.
 */
export async function saveTrainingState(
  path: string,
  state: TrainingState,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeSafetensors(path, trainingStateTensors(state), { metadata: stateMetadata(state, metadata) });
}

/**
 * Encodes a training state as safetensors bytes, as {@linkcode saveTrainingState} writes them (for callers
 * that place the file themselves, e.g. inside an atomically written checkpoint folder).
 *
 * @param state The state.
 * @param metadata Extra string metadata stored beside the step.
 * @returns The file's bytes.
 */
export function encodeTrainingState(state: TrainingState, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(trainingStateTensors(state), { metadata: stateMetadata(state, metadata) });
}

function stateMetadata(state: TrainingState, metadata: Record<string, string>): Record<string, string> {
  return { ...metadata, format: "weightlora-training-state", step: String(state.step) };
}

/**
 * Reads a training state written by {@linkcode saveTrainingState}.
 *
 * @param pathOrBytes The file path, or its bytes.
 * @returns The state (copies of the tensors) and the file's metadata.
 * @throws {Error} When the file is not a training state or holds a non-float32 tensor.
 */
export async function loadTrainingState(
  pathOrBytes: string | Uint8Array,
): Promise<{ state: TrainingState; metadata: Record<string, string> }> {
  const file = typeof pathOrBytes === "string"
    ? await readSafetensors(pathOrBytes)
    : parseSafetensors(pathOrBytes, { file: "training state" });
  const where = typeof pathOrBytes === "string" ? `"${pathOrBytes}"` : "training state bytes";
  const step = Number(file.metadata.step);
  if (file.metadata.format !== "weightlora-training-state" || !Number.isInteger(step) || step < 0) {
    throw new Error(`Cannot load training state from ${where}: it has no weightlora-training-state metadata`);
  }
  const tensors: TrainingState["tensors"] = {};
  for (const [name, t] of file.tensors) {
    if (t.dtype !== "float32") {
      throw new Error(`Cannot load training state from ${where}: tensor "${name}" is ${t.dtype}`);
    }
    const data = new Float32Array(t.data.length / 4);
    new Uint8Array(data.buffer).set(t.data);
    tensors[name] = { shape: [...t.dims], data };
  }
  return { state: { step, tensors }, metadata: file.metadata };
}
