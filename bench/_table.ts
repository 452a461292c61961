/**
 * Printing helpers shared by the bench scripts: Markdown tables for side-by-side figures.
 *
 * @example
 * ```ts
 * import { figure, markdownTable } from "./_table.ts";
 * console.log(markdownTable(["op", "ms"], [["MatMul 512²", figure(3.14159)]]));
 * ```
 *
 * @module
 */

/** A table cell: text as given, numbers printed with {@linkcode figure}. */
export type Cell = string | number;

/**
 * Formats a measured figure with three significant digits (no exponent for ordinary magnitudes).
 *
 * @param value The figure.
 * @returns `"—"` for NaN, otherwise the rounded number as text (`0.0123`, `4.57`, `1,234`).
 */
export function figure(value: number): string {
  if (Number.isNaN(value)) return "—";
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en-US");
  return Number(value.toPrecision(3)).toString();
}

/**
 * Renders a Markdown table; columns whose cells are all numbers are right-aligned.
 *
 * @param header Column titles.
 * @param rows Rows of cells, each as long as the header.
 * @returns The table, one line per row, without a trailing newline.
 * @throws {RangeError} When a row's length differs from the header's.
 */
export function markdownTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  rows.forEach((row, i) => {
    if (row.length !== header.length) {
      throw new RangeError(`Row ${i} of the table has ${row.length} cells, expected ${header.length}`);
    }
  });
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((row) => typeof row[c] === "number"));
  const text = rows.map((row) => row.map((cell) => (typeof cell === "number" ? figure(cell) : cell)));
  const widths = header.map((title, c) => Math.max(3, title.length, ...text.map((row) => row[c].length)));
  const line = (cells: readonly string[]) =>
    `| ${
      cells.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join(" | ")
    } |`;
  const rule = `| ${
    widths.map((w, c) => (numeric[c] ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")
  } |`;
  return [line(header), rule, ...text.map(line)].join("\n");
}
