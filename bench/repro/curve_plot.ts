/**
 * The step-budget curve's figures as SVG (hand-written, no plotting dependency):
 *
 * - {@linkcode curveLossSvg}: eval loss (mean ± std over seeds) against adapter parameters (log scale), one
 *   panel per task (columns) and budget (rows); each group its colour and marker, K values of a group joined.
 * - {@linkcode sitesHeatmapSvg}: which sites each method kept, per seed, at one budget: one panel per task,
 *   sites down, methods × seeds across.
 *
 * @example
 * ```ts
 * import { curveLossSvg } from "./curve_plot.ts";
 * import assert from "node:assert/strict";
 * assert.ok(curveLossSvg([], { budgets: [60] }).startsWith("<svg"));
 * ```
 *
 * @module
 */

import type { CurveGroup } from "./curve_plan.ts";
import type { CurveRow } from "./curve_summary.ts";
import { compact, escapeXml, logTicks, niceTicks } from "./plot.ts";

const STYLE: Record<
  CurveGroup,
  { color: string; name: string; shape: "square" | "circle" | "triangle" | "diamond" }
> = {
  lora: { color: "#222222", name: "LoRA (all sites)", shape: "square" },
  random: { color: "#8c8c8c", name: "Random sites (K)", shape: "triangle" },
  weightlora: { color: "#1f6fd1", name: "WeightLoRA (K), freeze", shape: "circle" },
  "weightlora-all": { color: "#2ca02c", name: "WeightLoRA (K), all steps", shape: "circle" },
  "weightlora-norm": { color: "#9467bd", name: "WeightLoRA (K), norm", shape: "circle" },
  "weightlora-warm-norm": { color: "#e377c2", name: "WeightLoRA (K), warmup + norm", shape: "circle" },
  "weightlora-budget": { color: "#17becf", name: "WeightLoRA, parameter budget", shape: "circle" },
  "weightlora-plus": { color: "#d1401f", name: "WeightLoRA+", shape: "diamond" },
};

const PANEL = { width: 330, height: 250, left: 58, right: 12, top: 30, bottom: 40 };
const LEGEND_ITEM = 220;

function marker(group: CurveGroup, x: number, y: number): string {
  const { color: c, shape } = STYLE[group];
  const X = x.toFixed(1), Y = y.toFixed(1);
  switch (shape) {
    case "square":
      return `<rect x="${(x - 5).toFixed(1)}" y="${(y - 5).toFixed(1)}" width="10" height="10" fill="${c}"/>`;
    case "triangle":
      return `<path d="M${X},${(y - 6).toFixed(1)} l6,10.4 h-12 z" fill="${c}"/>`;
    case "circle":
      return `<circle cx="${X}" cy="${Y}" r="5" fill="${c}"/>`;
    case "diamond":
      return `<path d="M${X},${(y - 7).toFixed(1)} l7,7 l-7,7 l-7,-7 z" fill="${c}"/>`;
  }
}

function panel(rows: readonly CurveRow[], title: string, dx: number, dy: number): string {
  const trained = rows.filter((r) => r.group !== "base" && r.parameters > 0);
  const out: string[] = [`<g transform="translate(${dx},${dy})">`];
  const { width, height, left, right, top, bottom } = PANEL;
  const plotW = width - left - right, plotH = height - top - bottom;
  out.push(
    `<text x="${left + plotW / 2}" y="18" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`,
  );
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  if (trained.length === 0) return out.concat("</g>").join("\n");
  const xs = trained.map((r) => r.parameters);
  // a run that blew up (far above the rest) is drawn at the top edge with its value, not on the scale
  const means = trained.map((r) => r.evalLoss.mean).sort((a, b) => a - b);
  const cap = 2 * means[Math.floor((means.length - 1) / 2)] + 0.5;
  const inRange = trained.filter((r) => r.evalLoss.mean <= cap);
  const ys = inRange.flatMap((
    r,
  ) => [r.evalLoss.mean - r.evalLoss.std, Math.min(cap, r.evalLoss.mean + r.evalLoss.std)]);
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
      height - 6
    }" text-anchor="middle" font-size="11">adapter parameters (log)</text>`,
  );
  out.push(
    `<text transform="translate(14,${
      top + plotH / 2
    }) rotate(-90)" text-anchor="middle" font-size="11">eval loss</text>`,
  );
  for (const group of Object.keys(STYLE) as CurveGroup[]) {
    const line = inRange.filter((r) => r.group === group && r.k !== null).sort((a, b) =>
      a.parameters - b.parameters
    );
    if (line.length > 1) {
      const d = line.map((r, i) =>
        `${i ? "L" : "M"}${px(r.parameters).toFixed(1)},${py(r.evalLoss.mean).toFixed(1)}`
      );
      out.push(
        `<path d="${d.join(" ")}" fill="none" stroke="${
          STYLE[group].color
        }" stroke-width="1.5" opacity="0.7"/>`,
      );
    }
  }
  for (const r of trained.filter((r) => r.evalLoss.mean > cap)) {
    const group = r.group as CurveGroup;
    const x = px(r.parameters), y = top + 6;
    out.push(marker(group, x, y));
    out.push(
      `<text x="${(x + 8).toFixed(1)}" y="${y + 4}" font-size="9" fill="${STYLE[group].color}">↑ ${
        r.evalLoss.mean.toFixed(2)
      }</text>`,
    );
  }
  for (const r of inRange) {
    const group = r.group as CurveGroup;
    const x = px(r.parameters), y = py(r.evalLoss.mean);
    if (r.evalLoss.std > 0) {
      const y1 = py(r.evalLoss.mean - r.evalLoss.std).toFixed(1),
        y2 = py(Math.min(cap, r.evalLoss.mean + r.evalLoss.std)).toFixed(1);
      out.push(
        `<line x1="${x.toFixed(1)}" y1="${y1}" x2="${x.toFixed(1)}" y2="${y2}" stroke="${
          STYLE[group].color
        }"/>`,
      );
    }
    out.push(marker(group, x, y));
  }
  return out.concat("</g>").join("\n");
}

function legend(groups: readonly CurveGroup[], width: number, y0: number): { svg: string[]; height: number } {
  const perRow = Math.max(1, Math.floor(width / LEGEND_ITEM));
  const svg = groups.flatMap((group, i) => {
    const x = 20 + (i % perRow) * LEGEND_ITEM, y = y0 + 14 + 22 * Math.floor(i / perRow);
    return [
      marker(group, x, y),
      `<text x="${x + 12}" y="${y}" dominant-baseline="middle">${escapeXml(STYLE[group].name)}</text>`,
    ];
  });
  return { svg, height: 22 * Math.ceil(groups.length / perRow) + 8 };
}

/**
 * Eval loss against adapter parameters, one panel per task (columns) and budget (rows).
 *
 * @param rows The curve's rows (base rows are skipped).
 * @param options Budgets (rows of panels) and panel titles per task.
 * @returns An SVG document.
 */
export function curveLossSvg(
  rows: readonly CurveRow[],
  options: { budgets: readonly number[]; titles?: Record<string, string> },
): string {
  const tasks = [...new Set(rows.map((r) => r.task))];
  const groups = (Object.keys(STYLE) as CurveGroup[]).filter((g) => rows.some((r) => r.group === g));
  const width = Math.max(1, tasks.length) * PANEL.width;
  const panelsH = options.budgets.length * PANEL.height;
  const leg = legend(groups, width, panelsH);
  const height = panelsH + leg.height;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  options.budgets.forEach((budget, j) =>
    tasks.forEach((task, i) =>
      out.push(
        panel(
          rows.filter((r) => r.task === task && r.budget === budget),
          `${options.titles?.[task] ?? task}, ${budget} steps`,
          i * PANEL.width,
          j * PANEL.height,
        ),
      )
    )
  );
  out.push(...leg.svg, "</svg>");
  return out.join("\n") + "\n";
}

/**
 * Kept sites at one budget: per task a panel with one row per site (with its adapter parameters) and one column
 * per method and seed; a filled cell is a kept site.
 *
 * @param rows The curve's rows (those with kept sites, at `budget`, are drawn).
 * @param options The budget, every site in model order with its parameters, and the seeds' labels.
 * @returns An SVG document.
 */
export function sitesHeatmapSvg(
  rows: readonly CurveRow[],
  options: { budget: number; sites: readonly { name: string; label: string; parameters: number }[] },
): string {
  const drawn = rows.filter((r) => r.budget === options.budget && r.keptSets.length > 0);
  const tasks = [...new Set(drawn.map((r) => r.task))];
  const methods = [...new Set(drawn.map((r) => r.methodId))];
  const seeds = Math.max(1, ...drawn.map((r) => r.keptSets.length));
  const cell = 9, gap = 5, labelW = 92, headH = 150, titleH = 22;
  const panelW = Math.max(220, labelW + methods.length * (seeds * cell + gap) + 16);
  const width = Math.max(680, Math.max(1, tasks.length) * panelW);
  const height = titleH + headH + options.sites.length * cell + 30;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="10">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  tasks.forEach((task, ti) => {
    const dx = ti * panelW;
    out.push(`<g transform="translate(${dx},0)">`);
    out.push(
      `<text x="${labelW}" y="15" font-weight="bold" font-size="12">${
        escapeXml(task)
      }, ${options.budget} steps</text>`,
    );
    options.sites.forEach((s, si) => {
      const y = titleH + headH + si * cell;
      out.push(
        `<text x="${labelW - 4}" y="${y + cell - 1.5}" text-anchor="end" font-size="8">${
          escapeXml(`${s.label} (${s.parameters})`)
        }</text>`,
      );
    });
    methods.forEach((id, mi) => {
      const row = drawn.find((r) => r.task === task && r.methodId === id);
      const x0 = labelW + mi * (seeds * cell + gap);
      const label = row?.label ?? id;
      out.push(
        `<text transform="translate(${x0 + (seeds * cell) / 2 + 3},${
          titleH + headH - 4
        }) rotate(-90)" font-size="8">${escapeXml(label)}</text>`,
      );
      for (let seed = 0; seed < seeds; seed++) {
        const kept = new Set(row?.keptSets[seed] ?? []);
        options.sites.forEach((s, si) => {
          const y = titleH + headH + si * cell;
          const fill = !row ? "#fff" : kept.has(s.name) ? "#1f6fd1" : "#f0f0f0";
          out.push(
            `<rect x="${x0 + seed * cell}" y="${y}" width="${cell - 1}" height="${
              cell - 1
            }" fill="${fill}"/>`,
          );
        });
      }
    });
    out.push("</g>");
  });
  out.push(
    `<text x="8" y="${
      height - 10
    }" font-size="10">Blue: kept. Columns: the seeds of each method at its chosen ` +
      `learning rate. Row labels: site (adapter parameters at rank 4).</text>`,
  );
  out.push("</svg>");
  return out.join("\n") + "\n";
}
