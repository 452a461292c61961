// Host-side key/value cache surgery for continuous batching. Every row of a batch cache is right-aligned:
// column `total - 1` holds each row's latest position, and row r's real positions are its last `len_r`
// columns (the rest are padding, masked out). Rows join (a merge of two caches) and leave (a pick of some
// rows) by copying each kept row's last columns into a new, right-aligned cache.

/** One layer's cache tensor on the host, `[batch, heads, width, headDim]`. */
export interface HostCache {
  /** Elements, row-major. */
  data: Float32Array;
  /** Rows. */
  batch: number;
  /** Columns (positions incl. padding). */
  width: number;
}

/** A row to copy: which source cache, which row of it, how many of its last columns are real. */
export interface RowPick {
  /** Index into the sources. */
  source: number;
  /** Row in that source. */
  row: number;
}

/**
 * Builds a cache from rows of several sources, right-aligned into `width` columns (the last `width`
 * columns of each source row are kept; a narrower source is left-padded with zeros).
 *
 * @param sources Source caches (same heads and head size).
 * @param picks Rows in output order.
 * @param shape Heads, head size and output width.
 * @returns The new cache.
 */
export function pickRows(
  sources: readonly HostCache[],
  picks: readonly RowPick[],
  shape: { heads: number; headDim: number; width: number },
): HostCache {
  const { heads, headDim, width } = shape;
  const out = new Float32Array(picks.length * heads * width * headDim);
  picks.forEach((pick, r) => {
    const src = sources[pick.source];
    const keep = Math.min(width, src.width);
    for (let h = 0; h < heads; h++) {
      const from = ((pick.row * heads + h) * src.width + (src.width - keep)) * headDim;
      const to = ((r * heads + h) * width + (width - keep)) * headDim;
      out.set(src.data.subarray(from, from + keep * headDim), to);
    }
  });
  return { data: out, batch: picks.length, width };
}

/**
 * The attention mask of right-aligned rows: row r attends its last `lengths[r]` columns.
 *
 * @param lengths Real positions per row.
 * @param width Columns.
 * @returns int64 `[rows, width]`, 1 = attend.
 */
export function rightAlignedMask(lengths: readonly number[], width: number): BigInt64Array<ArrayBuffer> {
  const mask = new BigInt64Array(lengths.length * width);
  lengths.forEach((len, r) => {
    for (let c = width - len; c < width; c++) mask[r * width + c] = 1n;
  });
  return mask;
}
