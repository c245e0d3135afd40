// The attention explorer: one sentence, two models side by side, attention drawn as a table.
// Plain DOM, no libraries and no build step; every text from the server goes in as textContent.
"use strict";

const NONE = "";  // the right pane's "no model" choice
const COLORS = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#be123c", "#0f766e"];
const state = { runs: [], limits: {} };

// --- small helpers ---------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let answer = null;
  try { answer = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) throw new Error((answer && answer.error) || `HTTP ${response.status}`);
  return answer;
}

function runByName(name) { return state.runs.find((run) => run.name === name); }

function panes() { return Array.from(document.querySelectorAll(".pane")); }

function paneRun(pane) { return pane.querySelector(".run-select").value; }

// --- runs and their summaries ----------------------------------------------------------------

function describeRun(run) {
  const config = run.config;
  const model = config.model || {};
  const parts = [run.kind + modelShape(run.kind, model)];
  if (config.parameters) parts.push(`${(config.parameters / 1e6).toFixed(1)}M parameters`);
  parts.push(config.has_attention ? "attention" : "no attention: one fixed vector");
  for (const score of run.scores.slice(0, 2)) {
    parts.push(`${score.split || score.file} BLEU ${Number(score.bleu).toFixed(1)} (beam ${score.beam})`);
  }
  return parts.join(" · ");
}

// "(gru)" or "(3 layers × 4 heads)"; the config nests RNN and Transformer settings (or, in
// round-1 runs, keeps the cell flat under model).
function modelShape(kind, model) {
  const transformer = model.transformer;
  if (kind === "transformer" && transformer) {
    return ` (${transformer.decoder_layers} layers × ${transformer.heads} heads)`;
  }
  const cell = (model.rnn && model.rnn.cell) || model.cell;
  return cell ? ` (${cell})` : "";
}

function fillRunSelects() {
  panes().forEach((pane, index) => {
    const select = pane.querySelector(".run-select");
    select.replaceChildren();
    if (index > 0) select.append(new Option("(no second model)", NONE));
    for (const run of state.runs) select.append(new Option(run.name, run.name));
    // The point of the page: a different model on each side, when there are two.
    const pick = state.runs[Math.min(index, state.runs.length - 1)];
    select.value = index > 0 && state.runs.length < 2 ? NONE : pick.name;
    select.addEventListener("change", () => { showSummary(pane); loadCurves(); });
    showSummary(pane);
  });
}

function showSummary(pane) {
  const run = runByName(paneRun(pane));
  pane.querySelector(".run-summary").textContent = run ? describeRun(run) : "";
  pane.querySelector(".output").replaceChildren();
  pane.classList.toggle("empty", !run);
}

// --- translating -----------------------------------------------------------------------------

function sentences() {
  return document.getElementById("source").value.split("\n").filter((line) => line.trim());
}

function setError(pane, message) {
  const box = pane.querySelector(".error");
  box.hidden = !message;
  box.textContent = message || "";
}

async function translatePane(pane, text, beam, nbest) {
  const name = paneRun(pane);
  pane.dataset.state = "busy";
  setError(pane, "");
  if (!name) { pane.dataset.state = "done"; return; }
  try {
    const answer = await api("/translate", { text, beam, nbest, attention: true, run: name });
    pane.querySelector(".output").replaceChildren(...answer.translations.map(renderSentence));
  } catch (error) {
    pane.querySelector(".output").replaceChildren();
    setError(pane, error.message);
  }
  pane.dataset.state = "done";
}

async function translateAll(event) {
  if (event) event.preventDefault();
  const text = sentences();
  const status = document.getElementById("status");
  if (!text.length) { status.textContent = "type a sentence first"; return; }
  const beam = Number(document.getElementById("beam").value) || 1;
  const nbest = Math.min(Number(document.getElementById("nbest").value) || 1, beam);
  const button = document.getElementById("translate");
  button.disabled = true;
  status.textContent = "translating…";
  const started = performance.now();
  await Promise.all(panes().map((pane) => translatePane(pane, text, beam, nbest)));
  status.textContent = `${((performance.now() - started) / 1000).toFixed(2)} s`;
  button.disabled = false;
}

// --- one translated sentence -----------------------------------------------------------------

function renderSentence(t) {
  const card = el("article", "sentence");
  card.append(el("p", "translation", t.text || "(empty)"));
  card.append(el("p", "score", `score ${t.score === null ? "–" : t.score.toFixed(3)}`));
  if (t.nbest.length > 1) {
    const list = el("ol", "nbest");
    for (const option of t.nbest) {
      const item = el("li", "", option.text);
      item.prepend(el("span", "nbest-score", option.score === null ? "–" : option.score.toFixed(3)));
      list.append(item);
    }
    card.append(list);
  }
  if (t.attention === null) {
    card.append(el("p", "no-attention", "No attention: this model's decoder sees the source only " +
      "through one fixed-size vector, so no output piece looks at any source piece."));
    return card;
  }
  const view = el("div", "attention-view");
  card.append(attentionChooser(t, view), view);
  view.replaceChildren(...attentionView(t.attention, t.src_pieces, t.tgt_pieces));
  if (t.alignment) card.append(el("p", "alignment", `alignment: ${t.alignment}`));
  return card;
}

// The attention to draw: the model's own summary, one layer's mean over heads, or one head.
function attentionChooser(t, view) {
  const box = el("div", "layer-head-box");
  const layers = t.attention_layers;  // [layers][heads][tgt][src], Transformer-style models only
  if (!layers || !layers.length) return box;
  const select = el("select", "layer-head");
  select.setAttribute("aria-label", "attention layer and head");
  select.append(new Option("model's attention", "summary"));
  layers.forEach((heads, l) => {
    select.append(new Option(`layer ${l + 1}, mean of ${heads.length} heads`, `${l}:mean`));
    heads.forEach((_, h) => select.append(new Option(`layer ${l + 1}, head ${h + 1}`, `${l}:${h}`)));
  });
  select.addEventListener("change", () => {
    const matrix = chooseMatrix(t, select.value);
    view.replaceChildren(...attentionView(matrix, t.src_pieces, t.tgt_pieces));
  });
  box.append(el("label", "", "attention "), select);
  return box;
}

function chooseMatrix(t, choice) {
  if (choice === "summary") return t.attention;
  const [layer, head] = choice.split(":");
  const heads = t.attention_layers[Number(layer)];
  if (head !== "mean") return heads[Number(head)];
  return heads[0].map((row, j) => row.map((_, i) =>
    heads.reduce((sum, matrix) => sum + matrix[j][i], 0) / heads.length));
}

// --- the heatmap -----------------------------------------------------------------------------

// Pieces as strips (hover an output piece: its source pieces light up) and the full matrix.
function attentionView(matrix, srcPieces, tgtPieces) {
  const srcStrip = el("p", "pieces src-pieces");
  srcStrip.append(el("span", "strip-label", "source"));
  srcPieces.forEach((piece) => srcStrip.append(el("span", "piece", piece)));
  const tgtStrip = el("p", "pieces tgt-pieces");
  tgtStrip.append(el("span", "strip-label", "output"));
  const table = heatmap(matrix, srcPieces, tgtPieces);
  const light = (j) => highlight(matrix, j, srcStrip, tgtStrip, table);
  tgtPieces.forEach((piece, j) => {
    const span = el("span", "piece", piece);
    span.addEventListener("mouseenter", () => light(j));
    span.addEventListener("click", () => light(j));  // phones: a tap instead of hover
    tgtStrip.append(span);
  });
  table.querySelectorAll("tbody tr").forEach((row, j) => {
    row.addEventListener("mouseenter", () => light(j));
    row.addEventListener("click", () => light(j));
  });
  const wrap = el("div", "heatmap-wrap");
  wrap.append(table);
  wrap.addEventListener("mouseleave", () => light(-1));
  tgtStrip.addEventListener("mouseleave", () => light(-1));
  return [srcStrip, tgtStrip, wrap];
}

function heatmap(matrix, srcPieces, tgtPieces) {
  const table = el("table", "heatmap");
  const head = el("tr");
  head.append(el("th", "corner"));
  srcPieces.forEach((piece) => head.append(el("th", "src-piece", piece)));
  table.append(el("thead"));
  table.tHead.append(head);
  const body = el("tbody");
  matrix.forEach((row, j) => {
    const tr = el("tr", "tgt-row");
    tr.append(el("th", "tgt-piece", tgtPieces[j]));
    row.forEach((weight, i) => {
      const cell = el("td", "cell");
      cell.style.backgroundColor = `rgba(29, 78, 216, ${weight})`;
      cell.title = `${tgtPieces[j]} → ${srcPieces[i]}: ${weight.toFixed(2)}`;
      tr.append(cell);
    });
    body.append(tr);
  });
  table.append(body);
  return table;
}

// Light the source pieces that output piece j attended to, in proportion to the weight.
function highlight(matrix, j, srcStrip, tgtStrip, table) {
  const weights = j >= 0 ? matrix[j] : null;
  const srcSpans = srcStrip.querySelectorAll(".piece");
  const heads = table.querySelectorAll("th.src-piece");
  srcSpans.forEach((span, i) => {
    const color = weights ? `rgba(245, 158, 11, ${weights[i]})` : "";
    span.style.backgroundColor = color;
    heads[i].style.backgroundColor = color;
    span.classList.toggle("lit", Boolean(weights) && weights[i] >= 0.2);
  });
  tgtStrip.querySelectorAll(".piece").forEach((span, k) => span.classList.toggle("active", k === j));
  table.querySelectorAll("tbody tr").forEach((row, k) => row.classList.toggle("active", k === j));
}

// --- learning curves -------------------------------------------------------------------------

async function loadCurves() {
  const names = [...new Set(panes().map(paneRun).filter(Boolean))];
  const charts = document.querySelector("#curves .charts");
  const curves = [];
  for (const name of names) {
    try { curves.push(await api(`/runs/${encodeURIComponent(name)}/curves`)); } catch (_) { /* none */ }
  }
  charts.replaceChildren(
    chart("training loss", curves, "train", "loss"),
    chart("dev BLEU (greedy)", curves, "valid", "bleu"));
}

function chart(title, curves, part, key) {
  const width = 360, height = 200, pad = 34;
  const series = curves.map((run, n) => ({
    name: run.name, color: COLORS[n % COLORS.length],
    points: run[part].steps.map((x, k) => [x, run[part][key][k]]).filter((p) => p[1] !== null),
  })).filter((s) => s.points.length);
  const figure = el("figure", "chart");
  figure.append(el("figcaption", "", title + (series.length ? "" : " (no data)")));
  if (!series.length) return figure;
  const all = series.flatMap((s) => s.points);
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const sx = (x) => pad + (x - x0) / ((x1 - x0) || 1) * (width - 2 * pad);
  const sy = (y) => height - pad + (y0 - y) / ((y1 - y0) || 1) * (height - 2 * pad);
  const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(svgNode("path", { d: `M${pad},${pad / 2}V${height - pad}H${width - pad / 2}`, class: "axis" }));
  svgText(svg, pad - 4, sy(y1) + 4, y1.toFixed(1), "end");
  svgText(svg, pad - 4, sy(y0), y0.toFixed(1), "end");
  svgText(svg, sx(x0), height - pad + 14, String(x0), "start");
  svgText(svg, sx(x1), height - pad + 14, `${x1} steps`, "end");
  series.forEach((s, n) => {
    const d = s.points.map((p, k) => `${k ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`);
    svg.append(svgNode("path", { d: d.join(""), stroke: s.color, class: "line" }));
    svgText(svg, width - pad / 2, pad / 2 + 12 * (n + 1), s.name, "end").style.fill = s.color;
  });
  figure.append(svg);
  return figure;
}

function svgNode(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function svgText(svg, x, y, text, anchor) {
  const node = svgNode("text", { x, y, "text-anchor": anchor });
  node.textContent = text;
  svg.append(node);
  return node;
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  const status = document.getElementById("status");
  try {
    const answer = await api("/runs");
    state.runs = answer.runs;
    state.limits = answer.limits;
  } catch (error) {
    status.textContent = `cannot list the models: ${error.message}`;
    return;
  }
  for (const id of ["beam", "nbest"]) document.getElementById(id).max = state.limits.max_beam;
  fillRunSelects();
  document.getElementById("input-form").addEventListener("submit", translateAll);
  document.getElementById("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) translateAll(event);
  });
  document.body.dataset.ready = "true";
  loadCurves();
}

start();
