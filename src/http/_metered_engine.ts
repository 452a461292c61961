// The engine and the metrics that watch it, made together: the metrics read the engine at scrape time
// and the engine reports every forward pass to the metrics.

import { ServeEngine, type ServeEngineOptions } from "../serve/engine.ts";
import { ServeMetrics } from "./metrics.ts";

/**
 * Loads the engine with its forward passes observed by new metrics, which also read its adapter cache
 * and active rows.
 *
 * @param options The engine's options, less `onStep` (the metrics take it).
 * @returns The engine and its metrics.
 */
export async function createMeteredEngine(
  options: Omit<ServeEngineOptions, "onStep">,
): Promise<{ engine: ServeEngine; metrics: ServeMetrics }> {
  const ref: { engine?: ServeEngine } = {};
  const metrics = new ServeMetrics({
    cacheStats: () => ref.engine!.cache.stats,
    activeRows: () => ref.engine?.activeRows ?? 0,
    waits: () => ref.engine!.waits,
  });
  const engine = ref.engine = await ServeEngine.create({
    ...options,
    onStep: (info) => metrics.observeStep(info),
  });
  return { engine, metrics };
}
