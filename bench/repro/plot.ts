/**
 * The reproduction's plot as SVG: eval loss (mean ± std over seeds) against trainable parameters (log
 * scale, final phase), one panel per task. LoRA is a square, random sites (K) triangles and WeightLoRA(K) circles
 * (each joined over K), WeightLoRA+ a diamond. Hand-written SVG: no plotting dependency.
 *
 * @example
 * ```ts
 * import { lossVsParamsSvg } from "./plot.ts";
 * import assert from "node:assert/strict";
 * assert.ok(lossVsParamsSvg([]).startsWith("<svg"));
 * ```
 *
 * @module
 */

import type { MethodFamily } from "./plan.ts";
import type { MethodRow } from "./summary.ts";

const STYLE: Record<MethodFamily, { color: string; name: string }> = {
  lora: { color: "#222222", name: "LoRA (all sites)" },
  randlora: { color: "#8c8c8c", name: "Random sites (K)" },
  weightlora: { color: "#1f6fd1", name: "WeightLoRA (K)" },
  "weightlora-plus": { color: "#d1401f", name: "WeightLoRA+" },
};

const PANEL = { width: 330, height: 260, left: 58, right: 12, top: 34, bottom: 44 };
const LEGEND_ITEM = 160;

/**
 * Escapes text for SVG.
 *
 * @param text Text.
 * @returns Escaped text.
 */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * About `count` round ticks between lo and hi.
 *
 * @param lo Low end.
 * @param hi High end.
 * @param count Ticks wanted.
 * @returns The ticks.
 */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

/**
 * Ticks 1, 2, 5 × 10ⁿ between lo and hi.
 *
 * @param lo Low end.
 * @param hi High end.
 * @returns The ticks.
 */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= lo && t <= hi) ticks.push(t);
    }
  }
  return ticks;
}

/**
 * A count in short form (`2.5k`).
 *
 * @param n The count.
 * @returns Its text.
 */
export function compact(n: number): string {
  return n >= 1000 ? `${Number((n / 1000).toPrecision(3))}k` : String(n);
}

function marker(family: MethodFamily, x: number, y: number): string {
  const c = STYLE[family].color;
  switch (family) {
    case "lora":
      return `<rect x="${(x - 5).toFixed(1)}" y="${(y - 5).toFixed(1)}" width="10" height="10" fill="${c}"/>`;
    case "randlora":
      return `<path d="M${x.toFixed(1)},${(y - 6).toFixed(1)} l6,10.4 h-12 z" fill="${c}"/>`;
    case "weightlora":
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="5" fill="${c}"/>`;
    case "weightlora-plus":
      return `<path d="M${x.toFixed(1)},${(y - 7).toFixed(1)} l7,7 l-7,7 l-7,-7 z" fill="${c}"/>`;
  }
}

function panel(rows: readonly MethodRow[], title: string, dx: number): string {
  const trained = rows.filter((r) => r.family !== "base" && r.parameters.final > 0);
  const out: string[] = [`<g transform="translate(${dx},0)">`];
  const { width, height, left, right, top, bottom } = PANEL;
  const plotW = width - left - right, plotH = height - top - bottom;
  out.push(
    `<text x="${left + plotW / 2}" y="18" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`,
  );
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  if (trained.length === 0) return out.concat("</g>").join("\n");
  const xs = trained.map((r) => r.parameters.final);
  const ys = trained.flatMap((r) => [r.evalLoss.mean - r.evalLoss.std, r.evalLoss.mean + r.evalLoss.std]);
  const xLo = Math.min(...xs) / 1.5, xHi = Math.max(...xs) * 1.5;
  const pad = (Math.max(...ys) - Math.min(...ys)) * 0.08 || 0.01;
  const yLo = Math.min(...ys) - pad, yHi = Math.max(...ys) + pad;
  const px = (v: number) =>
    left + ((Math.log10(v) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo))) * plotW;
  const py = (v: number) => top + (1 - (v - yLo) / (yHi - yLo)) * plotH;
  for (const t of logTicks(xLo, xHi)) {
    const x = px(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${top + plotH}" x2="${x}" y2="${top + plotH + 4}" stroke="#666"/>`);
    out.push(
      `<text x="${x}" y="${top + plotH + 16}" text-anchor="middle" font-size="10">${compact(t)}</text>`,
    );
  }
  for (const t of niceTicks(yLo, yHi, 5)) {
    const y = py(t).toFixed(1);
    out.push(`<line x1="${left - 4}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#eee"/>`);
    out.push(
      `<text x="${
        left - 6
      }" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="10">${t}</text>`,
    );
  }
  out.push(
    `<text x="${left + plotW / 2}" y="${
      height - 8
    }" text-anchor="middle" font-size="11">trainable parameters (log)</text>`,
  );
  out.push(
    `<text transform="translate(14,${
      top + plotH / 2
    }) rotate(-90)" text-anchor="middle" font-size="11">eval loss</text>`,
  );
  for (const family of ["randlora", "weightlora"] as const) {
    const line = trained.filter((r) => r.family === family).sort((a, b) =>
      a.parameters.final - b.parameters.final
    );
    if (line.length > 1) {
      const d = line.map((r, i) =>
        `${i ? "L" : "M"}${px(r.parameters.final).toFixed(1)},${py(r.evalLoss.mean).toFixed(1)}`
      );
      out.push(
        `<path d="${d.join(" ")}" fill="none" stroke="${
          STYLE[family].color
        }" stroke-width="1.5" opacity="0.7"/>`,
      );
    }
  }
  for (const r of trained) {
    const family = r.family as MethodFamily;
    const x = px(r.parameters.final), y = py(r.evalLoss.mean);
    if (r.evalLoss.std > 0) {
      const y1 = py(r.evalLoss.mean - r.evalLoss.std).toFixed(1),
        y2 = py(r.evalLoss.mean + r.evalLoss.std).toFixed(1);
      out.push(
        `<line x1="${x.toFixed(1)}" y1="${y1}" x2="${x.toFixed(1)}" y2="${y2}" stroke="${
          STYLE[family].color
        }"/>`,
      );
    }
    out.push(marker(family, x, y));
    if (r.k !== null && family === "weightlora") {
      out.push(
        `<text x="${(x + 7).toFixed(1)}" y="${(y - 6).toFixed(1)}" font-size="9" fill="${
          STYLE[family].color
        }">K=${r.k}</text>`,
      );
    }
  }
  return out.concat("</g>").join("\n");
}

/**
 * Draws the plot.
 *
 * @param rows The results table (base rows are skipped).
 * @param options Panel titles per task. @default the task names
 * @returns An SVG document.
 */
export function lossVsParamsSvg(
  rows: readonly MethodRow[],
  options: { titles?: Record<string, string> } = {},
): string {
  const tasks = [...new Set(rows.map((r) => r.task))];
  const families = Object.keys(STYLE) as MethodFamily[];
  const width = Math.max(1, tasks.length) * PANEL.width;
  const perRow = Math.max(1, Math.floor(width / LEGEND_ITEM));
  const height = PANEL.height + 24 * Math.ceil(families.length / perRow) + 6;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  tasks.forEach((task, i) =>
    out.push(panel(rows.filter((r) => r.task === task), options.titles?.[task] ?? task, i * PANEL.width))
  );
  families.forEach((family, i) => {
    const x = 20 + (i % perRow) * LEGEND_ITEM, y = PANEL.height + 14 + 24 * Math.floor(i / perRow);
    out.push(marker(family, x, y));
    out.push(
      `<text x="${x + 12}" y="${y}" dominant-baseline="middle">${escapeXml(STYLE[family].name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
