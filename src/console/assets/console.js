// weightlora console: the live parts of the job page (loss curve from the job's event stream, phase markers,
// stats, gate heatmap refreshes) and the playground's side-by-side streaming. Everything else is plain HTML
// forms that work without this script. Talks only to the console's own origin.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function formatNumber(value, key) {
  if (value === undefined || value === null) return "–";
  if (key === "learning_rate") return Number(value).toExponential(2);
  if (key === "tokens_per_s") return String(Math.round(value));
  if (key === "train_loss" || key === "valid_loss") return Number(value).toFixed(4);
  return String(value);
}

/** The loss chart: train and validation loss by step, with vertical phase markers. */
function drawChart(box, state) {
  const W = 640;
  const H = 240;
  const L = 48;
  const R = 12;
  const T = 14;
  const B = 26;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: "none",
    role: "img",
    "data-points": state.train.length,
    "data-eval-points": state.eval.length,
    "data-markers": state.markers.length,
    "aria-label": `Loss curve: ${state.train.length} training points, ${state.eval.length} validation points`,
  });
  const all = state.train.concat(state.eval).map((p) => p[1]);
  const maxStep = Math.max(state.total, ...state.train.map((p) => p[0]), 1);
  let lo = all.length ? Math.min(...all) : 0;
  let hi = all.length ? Math.max(...all) : 1;
  if (hi - lo < 1e-6) {
    hi += 0.5;
    lo -= 0.5;
  }
  const pad = (hi - lo) * 0.06;
  lo -= pad;
  hi += pad;
  const x = (s) => L + ((W - L - R) * s) / maxStep;
  const y = (v) => T + ((H - T - B) * (hi - v)) / (hi - lo);
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v.toFixed(2)));
  }
  // step ticks at a round interval (1, 2 or 5 × a power of ten), about four of them
  const raw = maxStep / 4;
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  const every = [1, 2, 5, 10].map((m) => m * power).find((v) => v >= raw) ?? 10 * power;
  for (let s = 0; s <= maxStep; s += every) {
    svg.append(svgEl("text", { x: x(s), y: H - 8, "text-anchor": "middle", class: "axis" }, String(s)));
  }
  for (const m of state.markers) {
    svg.append(svgEl("line", { x1: x(m.step), x2: x(m.step), y1: T, y2: H - B, class: "marker" }));
    svg.append(svgEl("text", { x: x(m.step) + 3, y: T + 10, class: "marker-label" }, m.label));
  }
  const line = (points, cls) => {
    if (points.length === 0) return;
    svg.append(
      svgEl("polyline", { points: points.map((p) => `${x(p[0])},${y(p[1])}`).join(" "), class: cls }),
    );
  };
  line(state.train, "train");
  line(state.eval, "eval");
  for (const p of state.eval) svg.append(svgEl("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: "eval" }));
  box.replaceChildren(svg);
}

function jobPage(figure) {
  const box = figure.querySelector(".chart");
  const stats = document.getElementById("stats");
  const markerList = document.getElementById("markers");
  const gates = document.getElementById("gates");
  const state = { train: [], eval: [], markers: [], total: Number(figure.dataset.total) || 1, phase: null };
  // a job that had ended when the page was made: its events replay, its state and gates are final already
  const endedAtLoad = gates?.dataset.done === "true";
  let drawQueued = false;
  const redraw = () => {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      drawChart(box, state);
    });
  };
  const addMarker = (step, label) => {
    if (state.markers.some((m) => m.label === label)) return;
    state.markers.push({ step, label });
    const li = document.createElement("li");
    li.textContent = `Step ${step}: ${label}`;
    markerList.append(li);
    redraw();
  };
  let lastGates = 0;
  let gatesTimer = null;
  const refreshGates = async (force) => {
    if (!gates || endedAtLoad) return;
    const wait = 1500 - (Date.now() - lastGates);
    if (!force && wait > 0) {
      gatesTimer ??= setTimeout(() => {
        gatesTimer = null;
        refreshGates(true);
      }, wait);
      return;
    }
    lastGates = Date.now();
    const url = new URL(gates.dataset.src, location.href);
    const frame = new URL(location.href).searchParams.get("frame");
    if (frame) url.searchParams.set("frame", frame);
    const res = await fetch(url, { headers: { accept: "text/html" } });
    if (!res.ok) return;
    const html = await res.text();
    remember(html);
    if (viewing === null) gates.innerHTML = html;
    gates.dataset.refreshed = String(Number(gates.dataset.refreshed ?? 0) + 1);
  };

  // the gates seen while the job runs (one frame per checkpoint), to step back through selection
  const history = new Map();
  let viewing = null;
  const historyBar = document.createElement("p");
  historyBar.id = "gate-history";
  historyBar.hidden = true;
  gates?.before(historyBar);
  const renderHistory = () => {
    const buttons = [...history.keys()].map((label) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chip";
      b.textContent = label;
      b.setAttribute("aria-pressed", String(viewing === label));
      b.addEventListener("click", () => {
        viewing = label;
        gates.innerHTML = history.get(label);
        renderHistory();
      });
      return b;
    });
    const latest = document.createElement("button");
    latest.type = "button";
    latest.className = "chip";
    latest.textContent = "latest";
    latest.setAttribute("aria-pressed", String(viewing === null));
    latest.addEventListener("click", () => {
      viewing = null;
      renderHistory();
      refreshGates(true);
    });
    historyBar.replaceChildren("Seen live: ", ...buttons, latest);
    historyBar.hidden = history.size === 0;
  };
  function remember(html) {
    const box = document.createElement("template");
    box.innerHTML = html;
    const map = box.content.querySelector(".heatmap");
    if (!map || map.dataset.source !== "checkpoint" || history.has(map.dataset.frame)) return;
    history.set(map.dataset.frame, html);
    renderHistory();
  }
  if (gates) remember(gates.innerHTML);
  const refreshStatus = async () => {
    const res = await fetch(figure.dataset.statusUrl, { headers: { accept: "application/json" } });
    if (!res.ok) return;
    const s = await res.json();
    const status = document.getElementById("job-status");
    status.textContent = s.status;
    status.className = `status ${s.status}`;
    document.getElementById("job-progress").textContent = `${s.step} / ${s.total_steps} steps`;
    if (s.fine_tuned_model) {
      const a = document.createElement("a");
      a.href = `/console/playground?adapter=${encodeURIComponent(s.fine_tuned_model)}`;
      a.textContent = s.fine_tuned_model;
      document.getElementById("job-adapter").replaceChildren(a);
    }
    if (s.finished_at) {
      const iso = new Date(s.finished_at * 1000).toISOString();
      const time = document.createElement("time");
      time.dateTime = iso;
      time.textContent = iso.slice(0, 16).replace("T", " ");
      document.getElementById("job-finished").replaceChildren(time);
    }
    if (s.done) document.querySelectorAll("form[action$='/cancel']").forEach((f) => f.remove());
  };
  const onEvent = (event) => {
    if (event.type === "metrics" && event.data) {
      const d = event.data;
      state.total = d.total_steps || state.total;
      state.train.push([d.step, d.train_loss]);
      if (d.valid_loss !== undefined) state.eval.push([d.step, d.valid_loss]);
      if (state.phase !== null && d.phase !== state.phase) {
        addMarker(d.step, state.phase === "select" ? "selection end" : `${state.phase} → ${d.phase}`);
      }
      state.phase = d.phase;
      for (const dd of stats.querySelectorAll("dd[data-stat]")) {
        const key = dd.dataset.stat;
        if (key === "valid_loss" && d.valid_loss === undefined) continue;
        dd.textContent = formatNumber(d[key], key);
      }
      document.getElementById("job-progress").textContent = `${d.step} / ${d.total_steps} steps`;
      redraw();
      refreshGates(false);
    } else if (event.type === "message") {
      const sel = /Selection done at step (\d+)/.exec(event.message);
      if (sel) addMarker(Number(sel[1]), "selection end");
      const grow = /Growth round (\d+) at step (\d+).*ranks doubled/.exec(event.message);
      if (grow) addMarker(Number(grow[2]), `rank doubling ${grow[1]}`);
    }
  };
  drawChart(box, state);
  let lastId = "";
  const listen = () => {
    const url = new URL(figure.dataset.events, location.href);
    if (lastId) url.searchParams.set("after", lastId);
    const source = new EventSource(url);
    source.onmessage = (m) => {
      if (m.lastEventId) lastId = m.lastEventId;
      if (m.data === "[DONE]") {
        source.close();
        figure.dataset.streamDone = "true";
        if (!endedAtLoad) {
          refreshStatus();
          refreshGates(true);
        }
        return;
      }
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        return; // not an event
      }
      if (data.error) {
        // the request's deadline ended the stream: go on from the last event seen
        source.close();
        if (data.error.code === "request_timeout") setTimeout(listen, 500);
        return;
      }
      onEvent(data);
    };
  };
  listen();
}

/** Reads an SSE response, calling `onData` with each `data:` payload. */
async function readSse(response, onData) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) if (line.startsWith("data:")) onData(line.slice(5).trim());
    }
  }
}

function playground(form) {
  const base = document.getElementById("out-base");
  const adapterOut = document.getElementById("out-adapter");
  const stream = async (model, out, values, token) => {
    out.textContent = "";
    out.dataset.state = "streaming";
    try {
      const res = await fetch(form.dataset.stream, {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": token },
        body: JSON.stringify({ ...values, model }),
      });
      if (!res.ok) {
        out.textContent = await res.text();
        out.dataset.state = "error";
        return;
      }
      await readSse(res, (data) => {
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) {
          out.textContent += `\n[${chunk.error.message}]`;
          return;
        }
        out.textContent += chunk.choices?.[0]?.text ?? "";
      });
      out.dataset.state = "done";
    } catch (e) {
      out.textContent += `\n[${e.message}]`;
      out.dataset.state = "error";
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const values = {
      prompt: fd.get("prompt"),
      mode: fd.get("mode"),
      temperature: fd.get("temperature"),
      max_tokens: fd.get("max_tokens"),
    };
    const adapter = String(fd.get("adapter") ?? "");
    document.getElementById("adapter-name").textContent = adapter;
    const token = String(fd.get("_csrf"));
    stream(base.dataset.model, base, values, token);
    stream(adapter, adapterOut, values, token);
  });
}

// destructive forms (delete, cancel) ask first; without script they submit at once
document.addEventListener("submit", (e) => {
  const message = e.target instanceof HTMLFormElement ? e.target.dataset.confirm : undefined;
  if (message && !confirm(message)) e.preventDefault();
});

document.addEventListener("DOMContentLoaded", () => {
  const figure = document.getElementById("loss");
  if (figure) jobPage(figure);
  const form = document.getElementById("playground");
  if (form) playground(form);
});
