/**
 * The gate heatmap: an SVG of layers (rows) × modules (columns), each candidate site coloured by its gate's
 * magnitude in the chosen frame (relative to the frame's largest), surviving sites outlined, with the
 * parameters and optimizer bytes saved against LoRA on every candidate site. Server-rendered (no script
 * needed); the job page's script re-fetches it while the job runs.
 *
 * @module
 */

import { type Child, Fragment } from "hono/jsx";
import { type JobGates, siteAt } from "../gates.ts";
import { formatBytes, formatCount } from "../layout.tsx";

/** Props of {@linkcode Heatmap}. */
export interface HeatmapProps {
  /** The job's gates. */
  gates: JobGates;
  /** The frame to draw (the last when absent or unknown). */
  frame?: string;
  /** The job page's URL (frame links). */
  href: string;
}

const CELL = 30;
const LEFT = 64;
const TOP = 22;

function mix(t: number): string {
  // from a pale grey-blue (gate 0) to a deep blue (the frame's largest gate)
  const a = [241, 245, 249];
  const b = [29, 78, 216];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * The heatmap with its frame links, legend and savings; the frame shown is `props.frame`, else
 * `after_selection` when recorded, else the latest.
 *
 * @param props Gates, frame and page URL.
 * @returns The section's content.
 */
export function Heatmap(props: HeatmapProps): Child {
  const g = props.gates;
  // by default the gates as selection left them (every candidate's value), else the latest
  const frame = g.frames.find((f) => f.label === props.frame) ??
    g.frames.find((f) => f.label === "after_selection") ?? g.frames.at(-1)!;
  const values = Object.values(frame.gates).map(Math.abs);
  const max = Math.max(1e-12, ...values);
  const survivors = new Set(g.survivors);
  const width = LEFT + g.modules.length * CELL + 2;
  const height = TOP + g.layers * CELL + 2;
  const savedParameters = g.allSitesParameters - g.keptParameters;
  const percent = g.allSitesParameters > 0 ? (100 * savedParameters) / g.allSitesParameters : 0;
  return (
    <div class="heatmap" data-frame={frame.label} data-source={g.source}>
      <p class="frames">
        Gates at: {g.frames.map((f) =>
          f.label === frame.label
            ? (
              <Fragment key={f.label}>
                <strong aria-current="true">{f.label}</strong>
              </Fragment>
            )
            : (
              <Fragment key={f.label}>
                <a href={`${props.href}?frame=${encodeURIComponent(f.label)}#gates`}>{f.label}</a>
              </Fragment>
            )
        ).flatMap((x, i) => (i === 0 ? [x] : [" · ", x]))}
        {g.source === "checkpoint" && <span class="muted">(latest checkpoint; the job is running)</span>}
      </p>
      <svg
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
        role="img"
        aria-label={`Gate values of ${g.candidates.length} candidate sites at ${frame.label}; ${g.survivors.length} survive: ${
          g.survivors.join(", ")
        }`}
      >
        {g.modules.map((m, j) => (
          <text x={LEFT + j * CELL + CELL / 2} y={TOP - 7} text-anchor="middle" class="axis">
            {m.replace(/_proj$/, "")}
          </text>
        ))}
        {Array.from({ length: g.layers }, (_, layer) => (
          <g>
            <text x={LEFT - 6} y={TOP + layer * CELL + CELL / 2 + 4} text-anchor="end" class="axis">
              layer {layer}
            </text>
            {g.modules.map((module, j) => {
              const site = siteAt(g, { layer, module });
              const x = LEFT + j * CELL + 1;
              const y = TOP + layer * CELL + 1;
              if (!site) {
                return (
                  <rect
                    x={x}
                    y={y}
                    width={CELL - 2}
                    height={CELL - 2}
                    class="none"
                    fill="#9ca3af"
                    opacity="0.3"
                  />
                );
              }
              const gate = frame.gates[site];
              const kept = survivors.has(site);
              return (
                <rect
                  class={kept ? "cell kept" : "cell"}
                  data-site={site}
                  data-gate={gate === undefined ? "" : String(gate)}
                  x={x + (kept ? 1.5 : 0)}
                  y={y + (kept ? 1.5 : 0)}
                  width={CELL - 2 - (kept ? 3 : 0)}
                  height={CELL - 2 - (kept ? 3 : 0)}
                  fill={gate === undefined ? "#e5e7eb" : mix(Math.min(1, Math.abs(gate) / max))}
                  stroke={kept ? "#f59e0b" : "none"}
                  stroke-width={kept ? 3 : 0}
                >
                  <title>
                    {`${site}: gate ${gate === undefined ? "dropped" : gate.toPrecision(4)}${
                      kept ? ` · kept, rank ${g.ranks[site] ?? "?"}` : ""
                    }`}
                  </title>
                </rect>
              );
            })}
          </g>
        ))}
      </svg>
      <p class="legend">
        <span class="swatch low"></span> gate 0 <span class="swatch high"></span>{" "}
        largest |gate| ({max.toPrecision(3)}) <span class="swatch kept"></span> surviving site
      </p>
      <dl class="savings">
        <dt>LoRA on all {g.candidates.length} candidate sites</dt>
        <dd>
          {formatCount(g.allSitesParameters)} parameters · optimizer{" "}
          {formatBytes(g.allSitesParameters * g.optimizerBytesPerParameter)}
        </dd>
        <dt>{g.survivors.length} surviving sites</dt>
        <dd>
          {formatCount(g.keptParameters)} parameters · optimizer{" "}
          {formatBytes(g.keptParameters * g.optimizerBytesPerParameter)}
        </dd>
        <dt>Saved</dt>
        <dd class="saved">
          {formatCount(savedParameters)} parameters ({percent.toFixed(1)} %) · optimizer{" "}
          {formatBytes(savedParameters * g.optimizerBytesPerParameter)}
        </dd>
      </dl>
    </div>
  );
}
