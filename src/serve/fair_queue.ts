/**
 * {@linkcode FairQueue}: a queue shared by tenants that hands out items by the work each tenant was
 * already given (start-time fair queueing over a per-tenant virtual clock), not by arrival. Each item has
 * a cost (for rows of generation: prompt tokens + most new tokens); the next item comes from the eligible
 * tenant whose clock is lowest, and taking it advances that clock by the cost. A tenant that was idle
 * joins at the lowest clock of the tenants waiting, so idleness earns no credit. Within one tenant, items
 * keep their order.
 *
 * @module
 */

/** Options of {@linkcode FairQueue.take}. */
export interface FairTakeOptions<T> {
  /** Whether an item may run now (items not ready are skipped, their tenant's later items may go). */
  ready?: (item: T) => boolean;
  /** Whether a tenant may be given an item now (e.g. it is under its share of the runners). */
  eligible?: (tenant: string) => boolean;
}

/**
 * Items of many tenants, handed out fairly by cost.
 *
 * @example
 * ```ts
 * import { FairQueue } from "./fair_queue.ts";
 * const q = new FairQueue<string>((item) => item.length);
 * for (let i = 0; i < 4; i++) q.push("greedy", "xxxxxxxx");
 * q.push("polite", "y");
 * q.take(); // "xxxxxxxx": greedy came first
 * console.assert(q.take() === "y"); // polite has been given less work
 * ```
 */
export class FairQueue<T> {
  #cost: (item: T) => number;
  #queues = new Map<string, T[]>();
  #clock = new Map<string, number>();
  #size = 0;

  /** @param cost The work an item stands for (≥ 0). */
  constructor(cost: (item: T) => number) {
    this.#cost = cost;
  }

  /** Items waiting. */
  get size(): number {
    return this.#size;
  }

  /**
   * Items waiting for one tenant.
   *
   * @param tenant The tenant.
   * @returns How many.
   */
  sizeOf(tenant: string): number {
    return this.#queues.get(tenant)?.length ?? 0;
  }

  /**
   * Adds an item at the end of its tenant's queue.
   *
   * @param tenant The tenant.
   * @param item The item.
   */
  push(tenant: string, item: T): void {
    let queue = this.#queues.get(tenant);
    if (!queue) {
      // an idle tenant joins at the lowest clock of those waiting: no credit for idleness
      let floor = Infinity;
      for (const other of this.#queues.keys()) floor = Math.min(floor, this.#clock.get(other) ?? 0);
      const own = this.#clock.get(tenant) ?? 0;
      this.#clock.set(tenant, floor === Infinity ? own : Math.max(own, floor));
      queue = [];
      this.#queues.set(tenant, queue);
    }
    queue.push(item);
    this.#size++;
  }

  /**
   * Takes the next item: the first ready one of the eligible tenant that was given the least work.
   *
   * @param options Which items and tenants may go now.
   * @returns The item, or `undefined` when none may go.
   */
  take(options: FairTakeOptions<T> = {}): T | undefined {
    let best: { tenant: string; at: number; clock: number } | undefined;
    for (const [tenant, queue] of this.#queues) {
      const clock = this.#clock.get(tenant) ?? 0;
      if (best && clock >= best.clock) continue;
      if (options.eligible && !options.eligible(tenant)) continue;
      const at = options.ready ? queue.findIndex(options.ready) : 0;
      if (at < 0) continue;
      best = { tenant, at, clock };
    }
    if (!best) return undefined;
    const queue = this.#queues.get(best.tenant)!;
    const [item] = queue.splice(best.at, 1);
    this.#size--;
    this.#clock.set(best.tenant, best.clock + Math.max(0, this.#cost(item)));
    if (queue.length === 0) this.#queues.delete(best.tenant);
    return item;
  }

  /**
   * Removes the items that match.
   *
   * @param match Which items to remove.
   * @returns The removed items.
   */
  remove(match: (item: T) => boolean): T[] {
    const removed: T[] = [];
    for (const [tenant, queue] of this.#queues) {
      const kept = queue.filter((item) => {
        if (!match(item)) return true;
        removed.push(item);
        return false;
      });
      if (kept.length === 0) this.#queues.delete(tenant);
      else this.#queues.set(tenant, kept);
    }
    this.#size -= removed.length;
    return removed;
  }
}
