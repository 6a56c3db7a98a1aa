// Slipway's web UI: hash-routed pages over the native API. DOM is built with textContent only,
// never innerHTML from data.
"use strict";

const STAGES = [
  { id: "data", phase: "Experimental", title: "Datasets", built: true,
    what: "Ingest a sample of raw data, version it, profile it and hand it to training." },
  { id: "label", phase: "Experimental", title: "Labeling", built: false,
    what: "Mark up items with classes, time segments and regions, with model pre-labels." },
  { id: "experiments", phase: "Experimental", title: "Experiments", built: true,
    what: "Track every attempt: data version, parameters, code version, metrics, artifacts." },
  { id: "tune", phase: "Experimental", title: "Tuning", built: true,
    what: "Search hyperparameters, prune bad trials early, run trials in parallel." },
  { id: "pipelines", phase: "Production", title: "Pipelines", built: false,
    what: "Re-run the chosen recipe on the full data as a cached, resumable pipeline." },
  { id: "models", phase: "Production", title: "Models", built: true,
    what: "Register model versions with lineage, aliases and signatures." },
  { id: "serving", phase: "Production", title: "Serving", built: false,
    what: "Online and batch prediction, A/B tests, canary rollouts with automatic rollback.",
    // Parts of a stage that are built before the stage is; listed under it in the navigation.
    pages: [{ id: "endpoints", title: "Endpoints", what: "online prediction with dynamic batching, live counts and latency" }] },
  { id: "monitoring", phase: "Production", title: "Monitoring", built: false,
    what: "Infrastructure, training–serving skew, data drift, performance and alerts.",
    pages: [{ id: "monitors", title: "Monitors", what: "skew and drift of each endpoint's logged windows, per feature, over time" },
      { id: "alerts", title: "Alerts", what: "alerts raised by rules on monitors and gauges, and their webhooks" },
      { id: "gauges", title: "Gauges", what: "numbers a deployment pushes about itself, kept over time" }] },
];
const SYSTEM = [
  { id: "jobs", title: "Jobs", built: true },
  { id: "server", title: "Server", built: true },
];

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const token = sessionStorage.getItem("slipway-token");
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const err = new Error((body && body.message) || response.statusText);
    err.status = response.status;
    err.code = body && body.error_code;
    throw err;
  }
  return body;
}

function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

function tokenForm() {
  const input = h("input", { type: "password", placeholder: "Bearer token", "aria-label": "token" });
  return h("div", {},
    h("h1", {}, "Sign in"),
    h("p", { class: "lede" }, "This server requires a token. It is kept for this browser tab only."),
    h("form", { class: "token", onsubmit: (e) => {
      e.preventDefault();
      sessionStorage.setItem("slipway-token", input.value.trim());
      render();
    } }, input, h("button", { type: "submit" }, "Continue")));
}

const PAGES = {
  "": async () => {
    const cards = STAGES.map((s) => h("a", { class: "card", href: "#/" + s.id },
      h("div", { class: "phase" }, s.phase),
      h("h3", {}, s.title, " ", h("span", { class: "badge" + (s.built ? " ready" : "") }, s.built ? "ready" : "not built yet")),
      h("p", {}, s.what)));
    return h("div", {},
      h("h1", {}, "The lifecycle"),
      h("p", { class: "lede" }, "From a sample of raw data to a monitored model in production, and back to retraining."),
      h("div", { class: "cards" }, cards));
  },
  jobs: async () => {
    const { jobs } = await api("/api/v1/jobs?limit=100");
    const body = jobs.length === 0
      ? h("div", { class: "empty" }, "No jobs yet. Long work — batch prediction, drift reports, tuning trials, pipeline steps — runs here.")
      : h("table", {},
          h("thead", {}, h("tr", {}, ["Job", "Kind", "Status", "Attempts", "Worker", "Created", "Finished"].map((c) => h("th", {}, c)))),
          h("tbody", {}, jobs.map((j) => h("tr", {},
            h("td", {}, h("code", {}, j.id.slice(-12))),
            h("td", {}, j.kind),
            h("td", {}, h("span", { class: "badge " + j.status }, j.status)),
            h("td", { class: "num" }, `${j.attempts}/${j.max_attempts}`),
            h("td", {}, j.worker || "—"),
            h("td", {}, time(j.created_at)),
            h("td", {}, time(j.finished_at))))));
    return h("div", {},
      h("h1", {}, "Jobs"),
      h("p", { class: "lede" }, "The durable queue every long piece of work runs through."),
      body);
  },
  server: async () => {
    const v = await api("/api/v1/version");
    const ready = await api("/ready").catch((e) => ({ status: e.message }));
    const fact = (k, val) => [h("dt", {}, k), h("dd", {}, val)];
    return h("div", {},
      h("h1", {}, "Server"),
      h("p", { class: "lede" }, "How this Slipway is set up."),
      h("dl", { class: "facts" },
        fact("Version", v.version),
        fact("Metadata store", v.metadata_store),
        fact("Blob store", v.blob_store),
        fact("Authentication", v.auth_required ? "bearer token required" : "off (loopback only)"),
        fact("Readiness", ready ? ready.status : "unknown"),
        fact("API", h("a", { href: "/api/openapi.json" }, "OpenAPI document")),
        fact("Metrics", h("a", { href: "/metrics" }, "Prometheus text"))));
  },
};

// --- tracking pages ----------------------------------------------------------------------

function num(v) {
  if (typeof v === "number") return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(+v.toFixed(4));
  return v === undefined || v === null ? "—" : String(v);
}

function duration(r) {
  if (!r.end_time) return r.status === "RUNNING" ? "running" : "—";
  const s = (r.end_time - r.start_time) / 1000;
  return s < 60 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element, as h() makes HTML ones: attributes, then children (nodes or text). */
function el(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function sparkline(points, width = 120, height = 28) {
  const ys = points.map((p) => (typeof p.value === "number" ? p.value : NaN)).filter((v) => isFinite(v));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "spark");
  if (ys.length < 2) return svg;
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const d = ys.map((y, i) => `${i ? "L" : "M"}${(i / (ys.length - 1)) * (width - 2) + 1},${height - 1 - ((y - lo) / span) * (height - 2)}`).join(" ");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function lineChart(series, xKey, { width = 640, height = 260 } = {}) {
  const svg = el("svg", { width, height, class: "chart", viewBox: `0 0 ${width} ${height}` });
  const pts = series.flatMap((s) => s.points.filter((p) => typeof p.value === "number" && isFinite(p.value)));
  if (!pts.length) { const t = el("text", { x: 10, y: 20 }); t.textContent = "no finite values"; svg.append(t); return svg; }
  const xs = pts.map((p) => p[xKey]), ys = pts.map((p) => p.value);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = 44, sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - pad - 10), sy = (y) => height - 24 - ((y - y0) / (y1 - y0 || 1)) * (height - 40);
  svg.append(el("line", { x1: pad, y1: height - 24, x2: width - 10, y2: height - 24, class: "axis" }));
  svg.append(el("line", { x1: pad, y1: 10, x2: pad, y2: height - 24, class: "axis" }));
  for (const [v, y] of [[y0, height - 24], [y1, 16]]) { const t = el("text", { x: 2, y, class: "tick" }); t.textContent = num(v); svg.append(t); }
  const xl = el("text", { x: width - 10, y: height - 6, class: "tick", "text-anchor": "end" }); xl.textContent = xKey === "step" ? `step ${num(x1)}` : "time"; svg.append(xl);
  series.forEach((s, i) => {
    const p = s.points.filter((q) => typeof q.value === "number" && isFinite(q.value));
    if (!p.length) return;
    const d = p.map((q, j) => `${j ? "L" : "M"}${sx(q[xKey]).toFixed(1)},${sy(q.value).toFixed(1)}`).join(" ");
    svg.append(el("path", { d, stroke: PALETTE[i % PALETTE.length], class: "series", "data-run": s.name }));
  });
  return svg;
}

function searchForm(values, onSubmit) {
  const filter = h("input", { name: "filter", value: values.filter || "", placeholder: "metrics.f1 > 0.8 and params.model = 'gbt'", "aria-label": "filter", class: "grow" });
  const columns = h("input", { name: "columns", value: values.columns || "", placeholder: "params.lr, metrics.f1", "aria-label": "columns" });
  return h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); onSubmit({ filter: filter.value.trim(), columns: columns.value.trim() }); } },
    filter, columns, h("button", { type: "submit" }, "Search"));
}

PAGES.experiments = async (segments, query) => {
  if (segments[0] && segments[1] === "runs" && segments[2]) return runPage(segments[0], segments[2]);
  if (segments[0]) return experimentPage(segments[0], query);
  const { experiments } = await api("/api/v1/experiments");
  return h("div", {},
    h("h1", {}, "Experiments"),
    h("p", { class: "lede" }, "Every attempt, with its data, parameters, code version, metrics and artifacts. Log with the mlflow client or `slipway run -- CMD`."),
    h("table", { class: "experiments" },
      h("thead", {}, h("tr", {}, ["Name", "ID", "Created", "Tags"].map((c) => h("th", {}, c)))),
      h("tbody", {}, experiments.map((e) => h("tr", {},
        h("td", {}, h("a", { href: `#/experiments/${e.experiment_id}` }, e.name)),
        h("td", { class: "num" }, e.experiment_id),
        h("td", {}, time(e.creation_time)),
        h("td", {}, Object.entries(e.tags).map(([k, v]) => h("span", { class: "badge" }, `${k}=${v}`))))))));
};

async function experimentPage(id, query) {
  const { experiments } = await api("/api/v1/experiments?view=all");
  const exp = experiments.find((e) => e.experiment_id === id);
  if (!exp) throw new Error(`no experiment ${id}`);
  const filter = query.get("filter") || "";
  const columns = (query.get("columns") || "").split(",").map((c) => c.trim()).filter(Boolean);
  const order = query.get("order_by") || "";
  const token = query.get("page_token") || "";
  const params = new URLSearchParams({ experiment: id, filter, max_results: "50" });
  if (order) params.set("order_by", order);
  if (token) params.set("page_token", token);
  const { runs, next_page_token } = await api("/api/v1/runs?" + params);
  const shown = columns.length ? columns : [
    ...new Set(runs.flatMap((r) => Object.keys(r.metrics).map((k) => "metrics." + k)).slice(0, 4)),
    ...new Set(runs.flatMap((r) => Object.keys(r.params).map((k) => "params." + k)).slice(0, 3)),
  ];
  const nav = (changes) => {
    const q = new URLSearchParams({ filter, columns: columns.join(","), order_by: order, ...changes });
    for (const [k, v] of [...q]) if (!v) q.delete(k);
    location.hash = `#/experiments/${id}?` + q;
  };
  const value = (r, col) => { const [sec, ...rest] = col.split("."); const k = rest.join("."); return (r[sec] || {})[k]; };
  const sortable = (label, key) => h("th", { class: "sortable", onclick: () => nav({ order_by: order === `${key} DESC` ? `${key} ASC` : `${key} DESC` }) },
    label, order.startsWith(key + " ") ? (order.endsWith("DESC") ? " ▾" : " ▴") : "");
  const selected = new Set();
  const compare = h("button", { type: "button", disabled: true, onclick: () => { location.hash = "#/compare?runs=" + [...selected].join(","); } }, "Compare");
  const body = runs.length === 0
    ? h("div", { class: "empty" }, filter ? "No runs match this filter." : "No runs yet in this experiment.")
    : h("table", { class: "runs" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), sortable("Run", "attributes.run_name"), h("th", {}, "Status"), sortable("Started", "attributes.start_time"), h("th", {}, "Duration"), shown.map((c) => sortable(c, c)))),
        h("tbody", {}, runs.map((r) => h("tr", {},
          h("td", {}, h("input", { type: "checkbox", "aria-label": "select " + r.name, onchange: (e) => { e.target.checked ? selected.add(r.run_id) : selected.delete(r.run_id); compare.disabled = selected.size < 2; } })),
          h("td", {}, h("a", { href: `#/experiments/${id}/runs/${r.run_id}` }, r.name)),
          h("td", {}, h("span", { class: "badge " + r.status.toLowerCase() }, r.status.toLowerCase())),
          h("td", {}, time(r.start_time)),
          h("td", {}, duration(r)),
          shown.map((c) => h("td", { class: c.startsWith("metrics.") ? "num" : null }, num(value(r, c))))))));
  return h("div", {},
    h("h1", {}, exp.name),
    h("p", { class: "lede" }, `Experiment ${exp.experiment_id} · created ${time(exp.creation_time)}`),
    searchForm({ filter, columns: columns.join(", ") }, (v) => nav({ filter: v.filter, columns: v.columns, page_token: "" })),
    h("div", { class: "toolbar" }, compare,
      token ? h("button", { type: "button", onclick: () => history.back() }, "← Previous") : null,
      next_page_token ? h("button", { type: "button", onclick: () => nav({ page_token: next_page_token }) }, "Next →") : null),
    body);
}

async function runPage(expId, runId) {
  const r = await api(`/api/v1/runs/${encodeURIComponent(runId)}`);
  const histories = await Promise.all(Object.keys(r.metrics).map(async (k) => [k, await api(`/api/v1/runs/${encodeURIComponent(runId)}/metrics?key=${encodeURIComponent(k)}`)]));
  const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const kvTable = (obj, empty) => Object.keys(obj).length === 0 ? h("div", { class: "empty" }, empty)
    : h("table", {}, h("tbody", {}, Object.entries(obj).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, String(v))))));
  const root = r.artifact_uri.replace(/^mlflow-artifacts:\//, "");
  const preview = h("div", { class: "preview" });
  const browser = h("div", { class: "artifacts" });
  async function openDir(sub, into) {
    const listing = await api("/api/2.0/mlflow-artifacts/artifacts?path=" + encodeURIComponent(root + (sub ? "/" + sub : "")));
    const files = listing.files || [];
    into.replaceChildren(files.length === 0 ? h("div", { class: "empty" }, "No artifacts.") : h("ul", {}, files.map((f) => {
      const path = (sub ? sub + "/" : "") + f.path;
      if (f.is_dir) {
        const child = h("div", { class: "nested" });
        return h("li", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); child.childElementCount ? child.replaceChildren() : openDir(path, child); } }, "📁 " + f.path + "/"), child);
      }
      return h("li", {}, h("a", { href: "#", "data-artifact": path, onclick: (e) => { e.preventDefault(); showArtifact(path, f.file_size); } }, "📄 " + f.path), h("span", { class: "size" }, ` ${f.file_size} B`));
    })));
  }
  async function showArtifact(path, size) {
    const url = "/api/2.0/mlflow-artifacts/artifacts/" + root + "/" + path.split("/").map(encodeURIComponent).join("/");
    await previewFile(url, path, size, preview);
  }
  await openDir("", browser);
  return h("div", {},
    h("h1", {}, r.name, " ", h("span", { class: "badge " + r.status.toLowerCase() }, r.status.toLowerCase())),
    h("p", { class: "lede" }, h("a", { href: `#/experiments/${expId}` }, "← experiment"), " · run ", h("code", {}, r.run_id)),
    h("dl", { class: "facts" }, fact("Started", time(r.start_time)), fact("Duration", duration(r)), fact("User", r.user_id || "—"),
      fact("Source", r.tags["mlflow.source.name"] || "—"), fact("Git commit", r.tags["mlflow.source.git.commit"] || "—"), fact("Artifacts", r.artifact_uri)),
    h("section", {}, h("h2", {}, "Metrics"), histories.length === 0 ? h("div", { class: "empty" }, "No metrics.") :
      h("table", { class: "metrics" }, h("thead", {}, h("tr", {}, ["Metric", "Latest", "Points", "History"].map((c) => h("th", {}, c)))),
        h("tbody", {}, histories.map(([k, pts]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, num(r.metrics[k])), h("td", { class: "num" }, pts.length), h("td", {}, sparkline(pts))))))),
    h("section", {}, h("h2", {}, "Parameters"), kvTable(r.params, "No parameters.")),
    h("section", {}, h("h2", {}, "Datasets"), r.inputs.length === 0 ? h("div", { class: "empty" }, "No dataset inputs.") :
      h("table", { class: "inputs" }, h("thead", {}, h("tr", {}, ["Dataset", "Context", "Digest"].map((c) => h("th", {}, c)))),
        h("tbody", {}, r.inputs.map((i) => h("tr", {},
          h("td", {}, i.version ? h("a", { href: "#/data/" + i.version.split("@").map(encodeURIComponent).join("/") }, i.version) : i.name),
          h("td", {}, i.context || "—"),
          h("td", {}, h("code", {}, i.digest.slice(0, 12)))))))),
    h("section", {}, h("h2", {}, "Tags"), kvTable(r.tags, "No tags.")),
    h("section", {}, h("h2", {}, "Artifacts"), h("div", { class: "split" }, browser, preview)));
}

PAGES.compare = async (segments, query) => {
  const ids = (query.get("runs") || "").split(",").filter(Boolean);
  const xKey = query.get("x") === "time" ? "timestamp" : "step";
  const runs = await Promise.all(ids.map((id) => api(`/api/v1/runs/${encodeURIComponent(id)}`)));
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const charts = await Promise.all(keys.map(async (k) => {
    const series = await Promise.all(runs.map(async (r) => ({ name: r.name, points: r.metrics[k] === undefined ? [] : await api(`/api/v1/runs/${encodeURIComponent(r.run_id)}/metrics?key=${encodeURIComponent(k)}`) })));
    return h("div", { class: "chart-box" }, h("h3", {}, k), lineChart(series, xKey));
  }));
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  return h("div", {},
    h("h1", {}, "Compare runs"),
    h("p", { class: "lede" }, runs.map((r, i) => h("span", { class: "legend" }, h("i", { "data-color": i }), r.name + " ")),
      " · x axis: ", h("a", { href: "#/compare?runs=" + ids.join(",") + "&x=step" }, "step"), " / ", h("a", { href: "#/compare?runs=" + ids.join(",") + "&x=time" }, "time")),
    h("section", {}, h("h2", {}, "Parameters"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Parameter"), runs.map((r) => h("th", {}, r.name)))),
        h("tbody", {}, paramKeys.map((k) => { const vals = runs.map((r) => r.params[k]); const differs = new Set(vals).size > 1;
          return h("tr", { class: differs ? "differs" : null }, h("td", {}, k), vals.map((v) => h("td", {}, v === undefined ? "—" : v))); })))),
    h("section", {}, h("h2", {}, "Metrics"), h("div", { class: "charts" }, charts)));
};

/** Shows a file's content in `into`: images, JSON (pretty), CSV (a table), text. */
async function previewFile(url, path, size, into) {
  const token = sessionStorage.getItem("slipway-token");
  const response = await fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {} });
  const ext = path.split(".").pop().toLowerCase();
  const title = h("h3", {}, path, " ", h("a", { href: url, download: path.split("/").pop() }, "download"));
  if (!response.ok) { into.replaceChildren(title, h("div", { class: "error" }, "Could not load: " + response.statusText)); return; }
  if (["png", "jpg", "jpeg", "gif", "webp"].includes(ext)) {
    const blob = await response.blob();
    into.replaceChildren(title, h("img", { src: URL.createObjectURL(blob), alt: path, class: "artifact-image" }));
    return;
  }
  if (size > 2_000_000) { into.replaceChildren(title, h("p", {}, "Too large to preview.")); return; }
  const text = await response.text();
  if (ext === "json") {
    let value, pretty = text; try { value = JSON.parse(text); pretty = JSON.stringify(value, null, 2); } catch {}
    into.replaceChildren(title, isClip(value) ? clipPlayer(value) : h("pre", {}, pretty));
  } else if (ext === "csv") {
    const rows = text.trim().split("\n").slice(0, 200).map((l) => l.split(","));
    into.replaceChildren(title, h("table", { class: "csv" }, h("thead", {}, h("tr", {}, rows[0].map((c) => h("th", {}, c)))), h("tbody", {}, rows.slice(1).map((row) => h("tr", {}, row.map((c) => h("td", {}, c)))))));
  } else if (/^[\x09\x0a\x0d\x20-\x7e\u00a0-\uffff]*$/.test(text.slice(0, 4096))) {
    into.replaceChildren(title, h("pre", {}, text));
  } else {
    into.replaceChildren(title, h("p", {}, `Binary content, ${bytes(size)}.`));
  }
}

// --- pose clip preview -------------------------------------------------------------------

/** COCO-17 limbs by keypoint name: shoulders, arms, torso sides, hips, legs and the face. */
const LIMBS = [
  ["left_shoulder", "right_shoulder"],
  ["left_shoulder", "left_elbow"], ["left_elbow", "left_wrist"],
  ["right_shoulder", "right_elbow"], ["right_elbow", "right_wrist"],
  ["left_shoulder", "left_hip"], ["right_shoulder", "right_hip"],
  ["left_hip", "right_hip"],
  ["left_hip", "left_knee"], ["left_knee", "left_ankle"],
  ["right_hip", "right_knee"], ["right_knee", "right_ankle"],
  ["nose", "left_eye"], ["nose", "right_eye"], ["left_eye", "left_ear"], ["right_eye", "right_ear"],
];
const LOW_CONFIDENCE = 0.5;

/** A pose clip: keypoint names and frames of [x, y, confidence] per keypoint. */
function isClip(v) {
  return !!v && typeof v === "object" && Array.isArray(v.keypoints) && Array.isArray(v.frames) && v.frames.length > 0;
}

/** The clip as an SVG skeleton in the camera's pixels, animated at its fps with play/pause and a
 *  frame slider. The timer stops on the next route change or once the player leaves the page. */
function clipPlayer(clip) {
  const width = Number(clip.width) || 1280, height = Number(clip.height) || 720;
  const fps = Number(clip.fps) > 0 ? Number(clip.fps) : 10, n = clip.frames.length;
  const index = new Map(clip.keypoints.map((k, i) => [k, i]));
  const pairs = LIMBS.map(([a, b]) => [index.get(a), index.get(b)]).filter(([a, b]) => a !== undefined && b !== undefined);
  const limbs = pairs.map(() => el("line", { class: "limb" }));
  const joints = clip.keypoints.map((k) => el("circle", { class: "joint", r: Math.max(width, height) / 160, "data-keypoint": k }, el("title", {}, k)));
  const svg = el("svg", { class: "clip", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "pose clip " + (clip.clip_id || "") },
    el("rect", { class: "stage", x: 0, y: 0, width, height }), limbs, joints);
  const slider = h("input", { type: "range", name: "frame", min: 0, max: n - 1, value: 0, step: 1, "aria-label": "frame",
    oninput: () => { pause(); draw(Number(slider.value)); } });
  const counter = h("span", { class: "frame-no" });
  const button = h("button", { type: "button", class: "play", onclick: () => (timer ? pause() : play()) }, "Play");
  let frame = 0, timer = null;

  const point = (i) => {
    const p = (clip.frames[frame] || [])[i];
    return Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]) ? p : null;
  };
  const faint = (p) => typeof p[2] === "number" && p[2] < LOW_CONFIDENCE;
  function draw(f) {
    frame = f;
    slider.value = f;
    counter.textContent = `frame ${f + 1} / ${n}`;
    joints.forEach((c, i) => {
      const p = point(i);
      c.setAttribute("class", "joint" + (!p ? " missing" : faint(p) ? " low" : ""));
      if (p) { c.setAttribute("cx", p[0]); c.setAttribute("cy", p[1]); }
    });
    limbs.forEach((line, j) => {
      const [a, b] = [point(pairs[j][0]), point(pairs[j][1])];
      line.setAttribute("class", "limb" + (!a || !b ? " missing" : faint(a) || faint(b) ? " low" : ""));
      if (a && b) for (const [k, v] of [["x1", a[0]], ["y1", a[1]], ["x2", b[0]], ["y2", b[1]]]) line.setAttribute(k, v);
    });
  }
  function tick() {
    if (!svg.isConnected) { pause(); return; }
    draw((frame + 1) % n);
  }
  function play() {
    if (timer) return;
    timer = setInterval(tick, 1000 / fps);
    button.textContent = "Pause";
    window.addEventListener("hashchange", pause);
  }
  function pause() {
    clearInterval(timer);
    timer = null;
    button.textContent = "Play";
    window.removeEventListener("hashchange", pause);
  }

  draw(0);
  if (n > 1 && !matchMedia("(prefers-reduced-motion: reduce)").matches) play();
  const fact = (k, v) => v === undefined || v === null ? null : h("span", {}, h("b", {}, k), " ", String(v));
  return h("div", { class: "clip-player" }, svg,
    h("div", { class: "clip-controls" }, button, slider, counter),
    h("p", { class: "clip-caption" },
      fact("activity", clip.activity), fact("subject", clip.subject), fact("camera", clip.camera), fact("room", clip.room),
      fact("frames", `${n} at ${fps} fps (${(n / fps).toFixed(1)} s)`),
      h("span", { class: "muted" }, `points with confidence < ${LOW_CONFIDENCE} are faded`)));
}

// --- data pages --------------------------------------------------------------------------

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

const enc = encodeURIComponent;

PAGES.data = async (segments, query) => {
  if (segments[0] && segments[1] === "diff") return datasetDiff(segments[0], query);
  if (segments[0] && segments[1]) return versionPage(segments[0], segments[1], query);
  if (segments[0]) return datasetPage(segments[0]);
  const { datasets } = await api("/api/v1/datasets");
  const body = datasets.length === 0
    ? h("div", { class: "empty" }, "No datasets yet. Version a folder with `slipway data add clips/ --dataset falls`.")
    : h("table", { class: "datasets" },
        h("thead", {}, h("tr", {}, ["Name", "Latest", "Created", "Description"].map((c) => h("th", {}, c)))),
        h("tbody", {}, datasets.map((d) => h("tr", {},
          h("td", {}, h("a", { href: `#/data/${enc(d.name)}` }, d.name)),
          h("td", { class: "num" }, d.latest ? h("a", { href: `#/data/${enc(d.name)}/${d.latest}` }, `v${d.latest}`) : "—"),
          h("td", {}, time(d.created_at)),
          h("td", {}, d.description || "")))));
  return h("div", {},
    h("h1", {}, "Datasets"),
    h("p", { class: "lede" }, "Immutable versions of folders and tables, content in the blob store, lineage to every run that used them."),
    body);
};

async function datasetPage(name) {
  const { dataset, versions } = await api(`/api/v1/datasets/${enc(name)}`);
  return h("div", {},
    h("h1", {}, dataset.name),
    h("p", { class: "lede" }, h("a", { href: "#/data" }, "← datasets"), dataset.description ? " · " + dataset.description : ""),
    h("table", { class: "versions" },
      h("thead", {}, h("tr", {}, ["Version", "Created", "Items", "Size", "Author", "Message", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, versions.map((v) => h("tr", {},
        h("td", {}, h("a", { href: `#/data/${enc(name)}/${v.version}` }, `v${v.version}`)),
        h("td", {}, time(v.created_at)),
        h("td", { class: "num" }, v.items),
        h("td", { class: "num" }, bytes(v.bytes)),
        h("td", {}, v.author),
        h("td", {}, v.message),
        h("td", {}, v.parent ? h("a", { href: `#/data/${enc(name)}/diff?from=${v.parent}&to=${v.version}` }, `diff v${v.parent}`) : ""))))));
}

async function versionPage(name, version, query) {
  const prefix = query.get("prefix") || "";
  const offset = Number(query.get("offset") || 0);
  const limit = 200;
  const page = await api(`/api/v1/datasets/${enc(name)}/versions/${enc(version)}?limit=${limit}&offset=${offset}&prefix=${enc(prefix)}`);
  const v = page.version, table = page.table;
  const base = `/api/v1/datasets/${enc(name)}/versions/${v.version}`;
  const [{ runs }, rows, profile] = await Promise.all([
    api(`${base}/runs`),
    table ? rowsSection(base, table.columns) : null,
    v.has_profile ? profileSection(base) : null,
  ]);
  const preview = h("div", { class: "preview" });
  const go = (o, p) => { location.hash = `#/data/${enc(name)}/${v.version}?` + new URLSearchParams({ prefix: p, offset: o }); };
  const filter = h("input", { name: "prefix", value: prefix, placeholder: "folder/ or file name prefix", "aria-label": "prefix", class: "grow" });
  const fact = (k, val) => [h("dt", {}, k), h("dd", {}, val)];
  const fileUrl = (path) => `/api/v1/datasets/${enc(name)}/versions/${v.version}/files/` + path.split("/").map(enc).join("/");
  return h("div", {},
    h("h1", {}, `${v.dataset} v${v.version}`),
    h("p", { class: "lede" }, h("a", { href: `#/data/${enc(name)}` }, "← versions"), " · ", v.message || "no message"),
    h("dl", { class: "facts" },
      fact("Kind", v.kind), fact("Items", `${v.items} (${bytes(v.bytes)})`), fact("Created", time(v.created_at)),
      fact("Author", v.author), fact("Source", v.source),
      fact("Parent", v.parent ? h("a", { href: `#/data/${enc(name)}/${v.parent}` }, `v${v.parent}`) : "—"),
      v.derived_from ? fact("Derived from", h("a", { href: "#/data/" + v.derived_from.split("@").map(enc).join("/") }, v.derived_from)) : null,
      table ? fact("Table", `${table.format}, ${table.rows} rows × ${table.columns.length} columns`) : null,
      fact("Manifest", h("code", {}, v.manifest))),
    table ? h("section", {}, h("h2", {}, "Schema"), schemaTable(table.columns)) : null,
    table ? h("section", {}, h("h2", {}, "Rows"), rows) : null,
    profile ? h("section", {}, h("h2", {}, "Profile"), profile) : null,
    h("section", {},
      h("h2", {}, "Used by runs"),
      runs.length === 0 ? h("div", { class: "empty" }, `No run has read this version yet (slipway run --input ${v.dataset}@${v.version} -- CMD).`)
        : h("table", { class: "used-by" },
            h("thead", {}, h("tr", {}, ["Run", "Status", "Started"].map((c) => h("th", {}, c)))),
            h("tbody", {}, runs.map((r) => h("tr", {},
              h("td", {}, h("a", { href: `#/experiments/${r.experiment_id}/runs/${r.run_id}` }, r.name)),
              h("td", {}, h("span", { class: "badge " + r.status.toLowerCase() }, r.status.toLowerCase())),
              h("td", {}, time(r.start_time))))))),
    h("section", {},
      h("h2", {}, "Items"),
      h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); go(0, filter.value.trim()); } }, filter, h("button", { type: "submit" }, "Filter")),
      h("table", { class: "items" },
        h("thead", {}, h("tr", {}, ["Path", "Size", "Metadata", "BLAKE3"].map((c) => h("th", {}, c)))),
        h("tbody", {}, page.items.map((i) => h("tr", {},
          h("td", {}, h("a", { href: "#", "data-item": i.path, onclick: async (e) => {
            e.preventDefault();
            await previewFile(fileUrl(i.path), i.path, i.size, preview);
            preview.scrollIntoView({ block: "nearest" });
          } }, i.path)),
          h("td", { class: "num" }, bytes(i.size)),
          h("td", {}, Object.entries(i.meta || {}).map(([k, v]) => h("span", { class: "badge" }, `${k}=${v}`))),
          h("td", {}, h("code", {}, i.hash.slice(0, 12))))))),
      h("p", { class: "pager" }, `${page.total === 0 ? 0 : offset + 1}–${offset + page.items.length} of ${page.total}`,
        offset > 0 ? h("button", { type: "button", onclick: () => go(Math.max(0, offset - limit), prefix) }, "Previous") : null,
        offset + limit < page.total ? h("button", { type: "button", onclick: () => go(offset + limit, prefix) }, "Next") : null),
      preview));
}

const NUMERIC = new Set(["integer", "float"]);

function schemaTable(columns) {
  return h("table", { class: "schema" },
    h("thead", {}, h("tr", {}, ["Column", "Type", "Arrow type", "Nullable"].map((c) => h("th", {}, c)))),
    h("tbody", {}, columns.map((c) => h("tr", { "data-column": c.name },
      h("td", {}, c.name),
      h("td", {}, h("span", { class: "badge dtype" }, c.dtype)),
      h("td", {}, h("code", {}, c.arrow)),
      h("td", {}, c.nullable ? "yes" : "no")))));
}

/** A table's rows, 50 a page; Previous/Next fetch the next page in place, leaving the rest of the
 *  version page (and its profile) as it is. */
async function rowsSection(base, columns) {
  const limit = 50;
  const numeric = new Set(columns.filter((c) => NUMERIC.has(c.dtype)).map((c) => c.name));
  const box = h("div", { class: "rows-box" });
  const cell = (value, isNum) => value === null
    ? h("td", { class: "null" + (isNum ? " num" : "") }, "null")
    : h("td", { class: isNum ? "num" : "text", title: !isNum && value.length > 40 ? value : null }, value);
  const show = (page) => {
    const isNum = page.columns.map((c) => numeric.has(c));
    box.replaceChildren(
      h("div", { class: "scroll" }, h("table", { class: "rows" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), page.columns.map((c, i) => h("th", { class: isNum[i] ? "num" : null }, c)))),
        h("tbody", {}, page.rows.map((row, r) => h("tr", {},
          h("th", { scope: "row", class: "num row-no" }, page.offset + r + 1),
          row.map((value, i) => cell(value, isNum[i]))))))),
      h("p", { class: "pager" }, `${page.total === 0 ? 0 : page.offset + 1}–${page.offset + page.rows.length} of ${page.total}`,
        page.offset > 0 ? h("button", { type: "button", onclick: () => load(Math.max(0, page.offset - limit)) }, "Previous") : null,
        page.offset + limit < page.total ? h("button", { type: "button", onclick: () => load(page.offset + limit) }, "Next") : null));
  };
  const load = async (offset) => {
    try {
      show(await api(`${base}/rows?offset=${offset}&limit=${limit}`));
    } catch (e) {
      box.replaceChildren(h("div", { class: "error" }, "Could not load the rows: " + (e.message || "unauthorized")));
    }
  };
  await load(0);
  return box;
}

/** One card per column of the version's profile (a table's columns or its items' metadata). */
async function profileSection(base) {
  let p;
  try {
    p = await api(`${base}/profile?bins=20&top=10`);
  } catch (e) {
    return h("div", { class: "error" }, "Could not load the profile: " + (e.message || "unauthorized"));
  }
  return [
    h("p", { class: "note" }, `${p.rows} rows, ${p.columns.length} columns.`),
    h("div", { class: "profile" }, p.columns.map(profileCard)),
  ];
}

function profileCard(c) {
  const stat = (k, v, cls) => v === null || v === undefined ? null : h("div", { class: cls }, h("dt", {}, k), h("dd", { title: String(v) }, v));
  const numeric = NUMERIC.has(c.dtype);
  const plot = c.histogram.length ? histogram(c) : c.top.length ? topValues(c) : h("p", { class: "note" }, "No values to plot.");
  return h("div", { class: "profile-card", "data-column": c.name, "data-dtype": c.dtype },
    h("div", { class: "profile-head" }, h("h3", { title: c.name }, c.name), h("span", { class: "badge dtype" }, c.dtype)),
    h("dl", { class: "stats" },
      stat("count", c.count), stat("nulls", c.nulls), stat("distinct", (c.distinct_exact ? "" : "~") + c.distinct),
      c.nan ? stat("NaN", c.nan) : null, c.infinite ? stat("infinite", c.infinite) : null,
      stat("min", c.min === null ? null : num(c.min), "new-row"),
      numeric ? [stat("mean", c.mean === null ? null : num(c.mean)), stat("std", c.std === null ? null : num(c.std))] : null,
      stat("max", c.max === null ? null : num(c.max))),
    plot);
}

/** Bars of a numeric column's histogram; each bin carries its range and count (title, data-*). */
function histogram(c, width = 300, height = 120) {
  const bins = c.histogram, most = Math.max(1, ...bins.map((b) => b.count));
  const left = 4, right = 4, top = 16, bottom = 18, plotH = height - top - bottom, baseline = top + plotH;
  const bw = (width - left - right) / bins.length;
  const bars = bins.map((b, i) => {
    const x = left + i * bw, bh = b.count ? Math.max(1, (b.count / most) * plotH) : 0;
    return el("g", { class: "bin", "data-lo": b.lo, "data-hi": b.hi, "data-count": b.count },
      el("title", {}, `${num(b.lo)} to ${num(b.hi)}: ${b.count}`),
      el("rect", { class: "hit", x, y: top, width: bw, height: plotH }),
      el("rect", { class: "bar", x: x + 0.5, y: baseline - bh, width: Math.max(0.5, bw - 1), height: bh }));
  });
  return el("svg", { class: "hist", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "histogram of " + c.name },
    bars,
    el("line", { class: "axis", x1: left, x2: width - right, y1: baseline, y2: baseline }),
    el("text", { class: "tick", x: left, y: 10 }, `tallest bin ${most}`),
    el("text", { class: "tick", x: left, y: height - 4 }, num(c.min ?? bins[0].lo)),
    el("text", { class: "tick", x: width - right, y: height - 4, "text-anchor": "end" }, num(c.max ?? bins[bins.length - 1].hi)));
}

/** Horizontal bars of a column's most frequent values, each as long as its share of the rows. */
function topValues(c, width = 300) {
  const row = 18, label = 104, countW = 64, barW = width - label - countW - 8;
  const total = Math.max(1, c.count, ...c.top.map((t) => t.count));
  const short = (s) => (s.length > 16 ? s.slice(0, 15) + "…" : s);
  const bars = c.top.map((t, i) => {
    const value = String(t.value ?? "null"), w = Math.max(1, (t.count / total) * barW);
    return el("g", { class: "top", "data-value": value, "data-count": t.count, transform: `translate(0 ${i * row})` },
      el("title", {}, `${value}: ${t.count} (${((100 * t.count) / total).toFixed(1)}%)`),
      el("text", { class: "label", x: label - 6, y: 13, "text-anchor": "end" }, short(value)),
      el("rect", { class: "bar", x: label, y: 3, width: w, height: row - 6 }),
      el("text", { class: "tick", x: label + w + 4, y: 13 }, t.count));
  });
  const shown = c.top.length < c.distinct ? `top ${c.top.length} of ${c.distinct_exact ? "" : "~"}${c.distinct} values` : null;
  return h("div", { class: "top-values" },
    el("svg", { class: "topbars", viewBox: `0 0 ${width} ${c.top.length * row}`, role: "img", "aria-label": "top values of " + c.name }, bars),
    shown || c.top_error ? h("p", { class: "note" }, [shown, c.top_error ? `counts may be over by up to ${c.top_error}` : null].filter(Boolean).join("; ")) : null);
}

/** The table part of a diff: schema changes, row counts and example rows. */
function tableDiff(t) {
  const type = (c) => `${c.dtype} (${c.arrow})`;
  const schema = [
    ...t.columns_added.map((c) => ["added", "added", c.name, type(c)]),
    ...t.columns_removed.map((c) => ["removed", "removed", c.name, type(c)]),
    ...t.columns_changed.map((c) => ["changed", "type changed", c.after.name, `${type(c.before)} → ${type(c.after)}`]),
  ];
  const examples = [...t.removed_examples.map((r) => ["removed", "−", r]), ...t.added_examples.map((r) => ["added", "+", r])];
  const n = t.compared_on.length;
  const more = t.rows_removed > t.removed_examples.length || t.rows_added > t.added_examples.length;
  return [
    h("section", {}, h("h2", {}, "Schema changes"),
      schema.length === 0 ? h("div", { class: "empty" }, "Same columns, same types.")
        : h("table", { class: "schema-diff" },
            h("thead", {}, h("tr", {}, ["Change", "Column", "Type"].map((c) => h("th", {}, c)))),
            h("tbody", {}, schema.map(([cls, kind, col, ty]) => h("tr", { class: cls }, h("td", {}, kind), h("td", {}, col), h("td", {}, ty)))))),
    h("section", {}, h("h2", {}, "Rows"),
      h("p", { class: "row-counts" }, `rows: ${t.rows_before} → ${t.rows_after}: ${t.rows_added} added, ${t.rows_removed} removed, ` +
        `${t.rows_unchanged} unchanged, compared on ${n} column${n === 1 ? "" : "s"}`),
      examples.length === 0 ? null : h("div", { class: "scroll" }, h("table", { class: "examples" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), t.compared_on.map((c) => h("th", {}, c)))),
        h("tbody", {}, examples.map(([cls, sign, cells]) => h("tr", { class: cls },
          h("td", { class: "sign", title: cls }, sign), cells.map((v) => h("td", { class: v === null ? "null" : null }, v === null ? "null" : v))))))),
      more ? h("p", { class: "note" }, `Showing the first ${t.removed_examples.length} removed and ${t.added_examples.length} added rows.`) : null),
  ];
}

async function datasetDiff(name, query) {
  const from = query.get("from") || "1", to = query.get("to") || "latest";
  const d = await api(`/api/v1/datasets/${enc(name)}/diff?from=${enc(from)}&to=${enc(to)}`);
  const rows = [
    ...d.added.map((i) => ["added", i.path, bytes(i.size)]),
    ...d.removed.map((i) => ["removed", i.path, bytes(i.size)]),
    ...d.changed.map((c) => ["changed", c.after.path, `${bytes(c.before.size)} → ${bytes(c.after.size)}`]),
  ].sort((a, b) => a[1].localeCompare(b[1]));
  const files = rows.length === 0 ? h("div", { class: "empty" }, "The two versions hold the same items.")
    : h("table", { class: "diff" },
        h("thead", {}, h("tr", {}, ["Change", "Path", "Size"].map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.map(([kind, path, size]) => h("tr", { class: kind }, h("td", {}, kind), h("td", {}, path), h("td", { class: "num" }, size)))));
  return h("div", {},
    h("h1", {}, `${name}: v${d.from.version} → v${d.to.version}`),
    h("p", { class: "lede" }, h("a", { href: `#/data/${enc(name)}` }, "← versions"),
      ` · ${d.table ? "files: " : ""}${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.unchanged} unchanged`),
    d.table ? [...tableDiff(d.table), h("section", {}, h("h2", {}, "Files"), files)] : files);
}

// --- model registry and serving pages ---------------------------------------------------

/** Chips of aliases: a model's ({alias: version}) as `prod → v1`, a version's (a list) by name. */
function aliasChips(aliases) {
  const pairs = Array.isArray(aliases) ? aliases.map((a) => [a, null]) : Object.entries(aliases || {});
  return pairs.map(([alias, v]) => h("span", { class: "badge alias", "data-alias": alias }, v === null ? alias : `${alias} → v${v}`));
}

function tagChips(tags) {
  return Object.entries(tags || {}).map(([k, v]) => h("span", { class: "badge" }, `${k}=${v}`));
}

/** A tensor's dimensions: sizes, symbolic names (`N`) as they are, `?` where the graph leaves one open. */
function shapeText(spec) {
  if (Array.isArray(spec.shape)) return "[" + spec.shape.map((d) => (d === null || d === undefined ? "?" : String(d))).join(", ") + "]";
  return spec.elem_type ? "any rank" : "—";
}

function signatureTable(title, specs) {
  return h("div", { class: "sig-box" },
    h("h4", {}, title),
    specs.length === 0 ? h("div", { class: "empty" }, "None declared.")
      : h("table", { class: "signature " + title.toLowerCase() },
          h("thead", {}, h("tr", {}, ["Name", "Type", "Shape"].map((c) => h("th", {}, c)))),
          h("tbody", {}, specs.map((s) => h("tr", { "data-name": s.name },
            h("td", {}, h("code", {}, s.name)),
            h("td", {}, h("span", { class: "badge dtype" }, s.elem_type || s.kind || "—")),
            h("td", {}, h("code", {}, shapeText(s))))))));
}

PAGES.models = async (segments, query) => {
  if (segments[0]) return modelPage(segments[0], query);
  const filter = query.get("filter") || "";
  const token = query.get("page_token") || "";
  const params = new URLSearchParams({ max_results: "100" });
  if (filter) params.set("filter", filter);
  if (token) params.set("page_token", token);
  const { models, next_page_token } = await api("/api/v1/models?" + params);
  const nav = (changes) => {
    const q = new URLSearchParams({ filter, ...changes });
    for (const [k, v] of [...q]) if (!v) q.delete(k);
    location.hash = "#/models" + (String(q) ? "?" + q : "");
  };
  const input = h("input", { name: "filter", value: filter, placeholder: "name LIKE 'fall%' and tags.team = 'vision'", "aria-label": "filter", class: "grow" });
  const counted = models.some((m) => typeof m.version_count === "number");
  const body = models.length === 0
    ? h("div", { class: "empty" }, filter ? "No models match this filter."
        : "No models registered yet. Register a version with `slipway models register falls model.onnx` or, from a run, `mlflow.register_model(\"runs:/RUN_ID/model\", \"falls\")`.")
    : h("table", { class: "models" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Latest"), counted ? h("th", { class: "num" }, "Versions") : null,
          h("th", {}, "Aliases"), h("th", {}, "Description"), h("th", {}, "Updated"))),
        h("tbody", {}, models.map((m) => h("tr", { "data-model": m.name },
          h("td", {}, h("a", { href: `#/models/${enc(m.name)}` }, m.name)),
          h("td", { class: "num" }, m.latest_version == null ? "—" : h("a", { href: `#/models/${enc(m.name)}?version=${m.latest_version}` }, `v${m.latest_version}`)),
          counted ? h("td", { class: "num" }, num(m.version_count)) : null,
          h("td", {}, aliasChips(m.aliases)),
          h("td", { class: "desc", title: m.description || null }, m.description || ""),
          h("td", {}, time(m.updated_ms))))));
  return h("div", {},
    h("h1", {}, "Models"),
    h("p", { class: "lede" }, "Registered models: numbered versions with their signatures, aliases and lineage to the run and the data that made them."),
    h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); nav({ filter: input.value.trim(), page_token: "" }); } },
      input, h("button", { type: "submit" }, "Search")),
    token || next_page_token ? h("div", { class: "toolbar" },
      token ? h("button", { type: "button", onclick: () => history.back() }, "← Previous") : null,
      next_page_token ? h("button", { type: "button", onclick: () => nav({ page_token: next_page_token }) }, "Next →") : null) : null,
    body);
};

/** A model: its aliases and tags, its versions, and one version (`?version=N`, else the newest)
 *  in detail. Choosing another version swaps the detail in place and rewrites the address. */
async function modelPage(name, query) {
  const { model, versions } = await api(`/api/v1/models/${enc(name)}`);
  const detail = h("section", { class: "version-detail" });
  const rows = new Map();
  let latestPick = 0;
  const select = async (n, rewriteUrl) => {
    const mine = ++latestPick;
    for (const [v, tr] of rows) tr.classList.toggle("selected", v === n);
    if (rewriteUrl) history.replaceState(null, "", `#/models/${enc(name)}?version=${n}`);
    let content;
    try {
      content = await versionDetail(name, n);
    } catch (e) {
      content = h("div", { class: "error" }, `Could not load version ${n}: ` + (e.message || "unauthorized"));
    }
    if (mine === latestPick) detail.replaceChildren(content);
  };
  const table = versions.length === 0
    ? h("div", { class: "empty" }, "No versions yet.")
    : h("table", { class: "model-versions" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Version"),
          ["Aliases", "Stage", "Format", "Servable", "Run", "Created"].map((c) => h("th", {}, c)))),
        h("tbody", {}, versions.map((v) => {
          const tr = h("tr", { class: "selectable", "data-version": v.version, onclick: (e) => {
            if (e.target.closest("a:not(.pick)")) return; // the run link navigates as usual
            e.preventDefault();
            select(v.version, true);
          } },
            h("td", { class: "num" }, h("a", { class: "pick", href: `#/models/${enc(name)}?version=${v.version}` }, `v${v.version}`)),
            h("td", {}, aliasChips(v.aliases)),
            h("td", {}, v.stage === "None" ? "—" : v.stage),
            h("td", {}, h("span", { class: "badge dtype" }, v.format)),
            h("td", {}, v.servable ? h("span", { class: "badge ready" }, "servable") : h("span", { class: "badge" }, "not servable")),
            h("td", {}, v.run_id ? h("a", { href: `#/runs/${enc(v.run_id)}`, "data-run": v.run_id }, h("code", {}, v.run_id.slice(0, 12))) : "—"),
            h("td", {}, time(v.created_ms)));
          rows.set(v.version, tr);
          return tr;
        })));
  const wanted = Number(query.get("version")) || (versions.length ? versions[0].version : null);
  if (wanted) await select(wanted, false);
  const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  return h("div", {},
    h("h1", {}, model.name),
    h("p", { class: "lede" }, h("a", { href: "#/models" }, "← models"), " · ", model.description || "no description"),
    h("dl", { class: "facts" },
      fact("Aliases", Object.keys(model.aliases).length ? aliasChips(model.aliases) : "—"),
      fact("Tags", Object.keys(model.tags).length ? tagChips(model.tags) : "—"),
      fact("Latest", model.latest_version == null ? "—" : `v${model.latest_version}`),
      fact("Created", time(model.created_ms)),
      fact("Updated", time(model.updated_ms))),
    h("section", {}, h("h2", {}, "Versions"), table),
    detail);
}

/** One version: where its files are, its lineage and its signature. */
async function versionDetail(name, n) {
  const { version: v, run, datasets } = await api(`/api/v1/models/${enc(name)}/versions/${enc(n)}/lineage`);
  const fact = (k, val) => [h("dt", {}, k), h("dd", {}, val)];
  const code = (s) => (s ? h("code", {}, s) : "—");
  return h("div", { "data-version": v.version },
    h("h2", {}, `${v.name} v${v.version}`, " ", aliasChips(v.aliases)),
    v.description ? h("p", { class: "note" }, v.description) : null,
    h("dl", { class: "facts" },
      fact("Source", code(v.source)),
      fact("Storage", code(v.storage)),
      fact("ONNX file", code(v.onnx_path)),
      fact("Digest", code(v.digest)),
      fact("Format", v.format + (v.flavors.length ? ` (MLflow flavors: ${v.flavors.join(", ")})` : "")),
      fact("Servable", v.servable ? "yes" : "no: Slipway serves ONNX models"),
      fact("Stage", v.stage),
      fact("Created", time(v.created_ms)),
      Object.keys(v.tags).length ? fact("Tags", tagChips(v.tags)) : null),
    h("h3", {}, "Lineage"),
    lineageChain(v, run, datasets),
    h("h3", {}, "Signature"),
    v.signature
      ? h("div", { class: "signature-pair" }, signatureTable("Inputs", v.signature.inputs), signatureTable("Outputs", v.signature.outputs))
      : h("div", { class: "empty" }, "No signature: this version holds no ONNX model."));
}

/** dataset version(s) → training run → model version, left to right, each a link where it can be. */
function lineageChain(v, run, datasets) {
  const node = (cls, kind, body, note) => h("div", { class: "node " + cls },
    h("div", { class: "kind" }, kind), h("div", { class: "what" }, body), note ? h("div", { class: "note" }, note) : null);
  const dataset = (d) => d.version == null
    ? node("dataset unlinked", "dataset", h("span", { title: d.digest }, `${d.name} ${(d.digest || "").slice(0, 8)}`),
        [d.context, "not a Slipway version"].filter(Boolean).join(" · "))
    : node("dataset", "dataset", h("a", { href: `#/data/${enc(d.name)}/${d.version}`, "data-dataset": d.name }, `${d.name} v${d.version}`), d.context);
  const steps = [];
  if (run) {
    steps.push(datasets.length ? datasets.map(dataset) : [node("none", "dataset", "none logged", "the run logged no dataset inputs")]);
    steps.push([node("run", "run", h("a", { href: `#/experiments/${enc(run.experiment_id)}/runs/${enc(run.run_id)}`, "data-run": run.run_id }, run.name || run.run_id),
      `${run.status.toLowerCase()} · ${time(run.start_time)}`)]);
  } else {
    steps.push([v.run_id ? node("none", "run", h("code", {}, v.run_id.slice(0, 12)), "no such run (deleted?)")
      : node("none", "run", "none recorded", "registered without a training run")]);
  }
  steps.push([node("model", "model version", h("a", { href: `#/models/${enc(v.name)}?version=${v.version}` }, `${v.name} v${v.version}`), v.format)]);
  return h("div", { class: "lineage" },
    steps.flatMap((nodes, i) => [i ? h("span", { class: "arrow", "aria-hidden": "true" }, "→") : null, h("div", { class: "lineage-step" }, nodes)]));
}

PAGES.runs = async (segments) => {
  if (!segments[0]) { location.replace("#/experiments"); return h("div", {}); }
  const r = await api(`/api/v1/runs/${enc(segments[0])}`);
  return runPage(r.experiment_id, r.run_id);
};

const POLL_MS = 2000;

/** The endpoints with live counts, latency and queue depth, refreshed every POLL_MS while the
 *  page is shown: the timer stops on the next route change (or if the page leaves the DOM). */
/** Monitors: each with its latest verdict; one monitor's columns over its judged windows. */
PAGES.monitors = async (segments) => {
  if (segments[0]) return monitorPage(segments[0]);
  const { monitors } = await api("/api/v1/monitors");
  const page = h("div", {},
    h("h1", {}, "Monitors"),
    h("p", { class: "lede" }, "Each closed window of an endpoint's prediction log, judged against the model's training table (skew) or an earlier window (drift), column by column with Evidently's default tests."));
  if (!monitors.length) {
    page.append(h("div", { class: "empty" }, "No monitors yet. Create one with `slipway monitor create falls-skew --endpoint falls --kind skew`."));
    return page;
  }
  page.append(h("table", { class: "monitors" },
    h("thead", {}, h("tr", {}, ["Monitor", "Endpoint", "Kind", "Latest window", "Verdict", "Drifted columns"].map((c) => h("th", {}, c)))),
    h("tbody", {}, monitors.map((m) => {
      const l = m.latest;
      const drifted = l ? l.columns.filter((c) => c.drift).map((c) => c.column).join(", ") : "";
      return h("tr", { "data-monitor": m.name },
        h("td", {}, h("a", { href: `#/monitors/${enc(m.name)}` }, h("strong", {}, m.name))),
        h("td", {}, h("a", { href: `#/endpoints/${enc(m.endpoint)}` }, m.endpoint)),
        h("td", {}, m.kind.replace("_", " ")), h("td", {}, l ? time(l.window_ms) : "—"),
        h("td", { class: l && l.drift ? "alert" : null, "data-col": "verdict" }, !l ? "not judged yet" : l.drift ? "DRIFT" : "ok"),
        h("td", {}, drifted));
    }))));
  return page;
};

/** One monitor: the latest window's columns, and each column's statistic over the windows
 *  judged in the last 24 hours (a cell per window, marked where it drifted). */
async function monitorPage(name) {
  const [m, { reports }] = await Promise.all([
    api(`/api/v1/monitors/${enc(name)}`),
    api(`/api/v1/monitors/${enc(name)}/reports`),
  ]);
  const page = h("div", {}, h("h1", {}, name),
    h("p", { class: "lede" }, `${m.kind.replace("_", " ")} on endpoint ${m.endpoint}` + (m.reference ? ` against ${m.reference}` : "") + "."));
  if (!reports.length) {
    page.append(h("div", { class: "empty" }, "No window judged yet: windows are judged once they close and the log has written them."));
    return page;
  }
  const fmt = (v) => (typeof v !== "number" ? "—" : v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4) ? v.toExponential(2) : v.toFixed(4));
  const latest = reports[0];
  page.append(h("h2", {}, `Latest window, ${time(latest.window_ms)}`),
    h("p", { class: "note" + (latest.drift ? " alert" : "") },
      `${latest.drifted} of ${latest.columns.length} columns drifted (${latest.current_rows} rows against ${latest.reference}, ${latest.reference_rows} rows): ${latest.drift ? "DRIFT" : "no drift"}.`),
    h("table", { class: "monitor-latest" },
      h("thead", {}, h("tr", {}, ["Column", "Type", "Test", "Statistic", "Threshold", "Verdict"].map((c, i) => h("th", { class: i === 3 || i === 4 ? "num" : null }, c)))),
      h("tbody", {}, latest.columns.map((c) => h("tr", { "data-column": c.column },
        h("td", {}, c.column), h("td", {}, c.kind), h("td", {}, c.test),
        h("td", { class: "num" }, `${c.statistic_name} ${fmt(c.statistic)}`), h("td", { class: "num" }, fmt(c.threshold)),
        h("td", { class: c.drift ? "alert" : null }, c.drift ? "DRIFT" : "ok"))))));
  // Columns × windows, oldest first.
  const windows = [...reports].reverse();
  const columns = [...new Set(windows.flatMap((r) => r.columns.map((c) => c.column)))];
  page.append(h("h2", {}, "Over time"),
    h("div", { class: "scroll" }, h("table", { class: "drift-grid" },
      h("thead", {}, h("tr", {}, h("th", {}, "Column"), windows.map((r) => h("th", { class: "num", title: time(r.window_ms) }, new Date(r.window_ms).toLocaleTimeString())))),
      h("tbody", {},
        h("tr", { "data-row": "verdict" }, h("td", {}, h("strong", {}, "window")), windows.map((r) => h("td", { class: "num" + (r.drift ? " alert" : "") }, r.drift ? "DRIFT" : "ok"))),
        columns.map((col) => h("tr", { "data-column": col }, h("td", {}, col), windows.map((r) => {
          const c = r.columns.find((x) => x.column === col);
          return h("td", { class: "num" + (c && c.drift ? " alert" : ""), title: c ? `${c.test} ${c.statistic_name}` : "" }, c ? fmt(c.statistic) : "—");
        })))))));
  // Distributions of one window (the latest; a click on a window's time shows that one).
  const overlays = h("div", { class: "overlays" });
  const showWindow = async (r) => {
    const [full] = (await api(`/api/v1/monitors/${enc(name)}/reports?window_ms=${r.window_ms}&distributions=true`)).reports;
    overlays.replaceChildren(h("h2", {}, `Distributions, window ${time(r.window_ms)}`),
      h("p", { class: "note" }, h("span", { class: "swatch ref" }), ` reference (${full.reference}, ${full.reference_rows} rows)  `,
        h("span", { class: "swatch cur" }), ` this window (${full.current_rows} rows); shares of each side's rows per bin.`),
      h("div", { class: "overlay-grid" }, full.columns.map((c) => {
        const d = (full.distributions || {})[c.column];
        return h("figure", { class: "overlay" + (c.drift ? " drifted" : ""), "data-column": c.column },
          h("figcaption", {}, h("strong", {}, c.column), ` ${c.test} ${c.statistic_name} ${fmt(c.statistic)}`, c.drift ? h("span", { class: "alert" }, " DRIFT") : null),
          d ? overlayChart(d) : h("div", { class: "empty" }, "no distribution kept"));
      })));
  };
  page.querySelectorAll(".drift-grid thead th[title]").forEach((th, i) => {
    th.classList.add("pick");
    th.addEventListener("click", () => showWindow(windows[i]));
  });
  page.append(overlays);
  await showWindow(latest);
  return page;
}

/** Two sides' shares per bin, overlaid: the reference as grey bars, the window as outlined
 *  accent bars over them. */
function overlayChart(d, width = 280, height = 110) {
  const svg = el("svg", { width, height, class: "overlay-chart", viewBox: `0 0 ${width} ${height}` });
  const n = d.bins.length;
  if (!n) return svg;
  const top = Math.max(...d.reference, ...d.current, 1e-12);
  const bw = (width - 4) / n, base = height - 16;
  const bar = (v, i, cls) => el("rect", { x: (2 + i * bw + 1).toFixed(1), y: (base - (v / top) * (base - 4)).toFixed(1),
    width: Math.max(bw - 2, 1).toFixed(1), height: ((v / top) * (base - 4)).toFixed(1), class: cls },
    el("title", {}, `${d.bins[i]}: ${cls === "ref" ? "reference" : "window"} ${(v * 100).toFixed(1)}%`));
  d.reference.forEach((v, i) => svg.append(bar(v, i, "ref")));
  d.current.forEach((v, i) => svg.append(bar(v, i, "cur")));
  svg.append(el("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
  const first = el("text", { x: 2, y: height - 3, class: "tick" }); first.textContent = d.bins[0].split("–")[0];
  const last = el("text", { x: width - 2, y: height - 3, class: "tick", "text-anchor": "end" }); last.textContent = d.bins[n - 1].split("–").pop();
  svg.append(first, last);
  return svg;
}

/** Alerts, newest first: their state, what raised them (linked to the report), their webhooks;
 *  and the rules. */
PAGES.alerts = async () => {
  const [{ alerts }, { rules }] = await Promise.all([api("/api/v1/alerts"), api("/api/v1/alerts/rules")]);
  const page = h("div", {},
    h("h1", {}, "Alerts"),
    h("p", { class: "lede" }, "Rules on monitors' verdicts and on custom gauges; an alert fires once its condition has held for the rule's duration, and resolves when it clears."));
  const what = (c) => {
    if (!c) return "";
    if (c.monitor) return h("a", { href: `#/monitors/${enc(c.monitor)}` }, `${c.monitor}, window ${time(c.window_ms)}` + (c.drifted && c.drifted.length ? `: ${c.drifted.join(", ")}` : ""));
    if (c.endpoint) return h("a", { href: `#/endpoints/${enc(c.endpoint)}` }, `${c.endpoint} ${c.metric} over ${c.over_s} s`);
    const labels = Object.entries(c.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    return h("a", { href: "#/gauges" }, `${c.gauge}{${labels}}`);
  };
  const hooks = (ds) => ds.map((d) => `${d.event} ${d.delivered_ms ? "sent" : d.given_up ? "given up" : `retrying (${d.attempts} tries${d.last_error ? ": " + d.last_error : ""})`}`).join("; ");
  page.append(alerts.length ? h("table", { class: "alerts" },
    h("thead", {}, h("tr", {}, ["Rule", "State", "Value", "Started", "Fired", "Resolved", "What", "Webhook"].map((c) => h("th", {}, c)))),
    h("tbody", {}, alerts.map((a) => h("tr", { "data-alert": a.id, "data-state": a.state },
      h("td", {}, a.rule), h("td", { class: a.state === "firing" ? "alert" : null, "data-col": "state" }, a.state),
      h("td", { class: "num" }, a.value.toPrecision(4)), h("td", {}, time(a.started_ms)), h("td", {}, a.fired_ms ? time(a.fired_ms) : "—"),
      h("td", {}, a.resolved_ms ? time(a.resolved_ms) : "—"), h("td", {}, what(a.context)), h("td", { class: "muted" }, hooks(a.deliveries))))))
    : h("div", { class: "empty" }, "No alerts."));
  page.append(h("h2", {}, "Rules"), rules.length ? h("table", { class: "alert-rules" },
    h("thead", {}, h("tr", {}, ["Rule", "On", "Condition", "For", "Webhook"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rules.map((r) => h("tr", { "data-rule": r.name },
      h("td", {}, r.name), h("td", {}, r.monitor ? `monitor ${r.monitor}` : r.endpoint ? `endpoint ${r.endpoint} ${r.metric}` : `gauge ${r.gauge}`),
      h("td", {}, r.op ? `${r.op} ${r.threshold}` : "drift"), h("td", { class: "num" }, `${r.for_s} s`),
      h("td", {}, r.webhook ? r.webhook.url : "—")))))
    : h("div", { class: "empty" }, "No rules yet. Create one with `slipway alerts create skew --monitor falls-skew --webhook URL`."));
  return page;
};

// --- tuning pages ------------------------------------------------------------------------

/** What the studies list says once, after a study page deleted its study. */
let studyDeletedNotice = null;

/** Tuning: every study with its trial counts. */
PAGES.tune = async (segments) => {
  if (segments[0]) return studyPage(segments[0]);
  const notice = studyDeletedNotice;
  studyDeletedNotice = null;
  const { studies } = await api("/api/v1/studies");
  const page = h("div", {},
    h("h1", {}, "Tuning"),
    h("p", { class: "lede" }, "Hyperparameter studies: each trial a tracked run under its study's run; TPE (Optuna 5's), random or grid sampling; median, percentile, ASHA or Hyperband pruning."),
    notice ? h("p", { class: "notice", role: "status" }, notice) : null);
  if (!studies.length) {
    page.append(h("div", { class: "empty" }, "No studies yet. Run one with `slipway tune run study.toml`, or from Python: `client.study(\"name\")` then `study.optimize(objective, n_trials=100)`."));
    return page;
  }
  const c = (s, k) => String(s.counts[k] || 0);
  page.append(h("table", { class: "studies" },
    h("thead", {}, h("tr", {}, ["Study", "Direction", "Metric", "Complete", "Pruned", "Failed", "Running", "Queued", "Target", "Updated"].map((t, i) => h("th", { class: i >= 3 && i <= 8 ? "num" : null }, t)))),
    h("tbody", {}, studies.map((s) => h("tr", { "data-study": s.name },
      h("td", {}, h("a", { href: `#/tune/${enc(s.name)}` }, h("strong", {}, s.name))),
      h("td", {}, (s.directions || [s.direction]).join(", ")), h("td", {}, (s.metrics || [s.metric]).join(", ")),
      h("td", { class: "num" }, c(s, "COMPLETE")), h("td", { class: "num" }, c(s, "PRUNED")), h("td", { class: "num" }, c(s, "FAIL")),
      h("td", { class: "num" }, c(s, "RUNNING")), h("td", { class: "num" }, String(s.queued_jobs || 0)),
      h("td", { class: "num" }, s.n_trials == null ? "—" : String(s.n_trials)), h("td", {}, time(s.updated_ms)))))));
  return page;
};

/** Scales for a plot area: pads and maps data to pixels (a flat range is widened). */
function scale(lo, hi, a, b) {
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  return (v) => a + ((v - lo) / (hi - lo)) * (b - a);
}

function frame(width, height, cls, label) {
  return el("svg", { width, height, class: "chart " + cls, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
}

function tickText(x, y, text, anchor) {
  const t = el("text", { x, y, class: "tick", "text-anchor": anchor || "start" });
  t.textContent = text;
  return t;
}

/** Every complete trial's value by trial number, and the best so far as a line. */
function historyPlot(trials, maximize) {
  const width = 640, height = 260, pad = 48;
  const svg = frame(width, height, "history", "optimisation history");
  const done = trials.filter((t) => t.state === "COMPLETE" && typeof t.value === "number");
  if (!done.length) { svg.append(tickText(10, 20, "no complete trial yet")); return svg; }
  const vals = done.map((t) => t.value);
  const sx = scale(0, Math.max(1, trials.length - 1), pad, width - 10);
  const sy = scale(Math.min(...vals), Math.max(...vals), height - 24, 12);
  svg.append(el("line", { x1: pad, y1: height - 24, x2: width - 10, y2: height - 24, class: "axis" }),
    el("line", { x1: pad, y1: 10, x2: pad, y2: height - 24, class: "axis" }),
    tickText(2, height - 24, num(Math.min(...vals))), tickText(2, 16, num(Math.max(...vals))),
    tickText(width - 10, height - 6, `trial ${trials.length - 1}`, "end"));
  let best = null;
  const line = [];
  for (const t of done) {
    best = best === null ? t.value : maximize ? Math.max(best, t.value) : Math.min(best, t.value);
    line.push(`${line.length ? "L" : "M"}${sx(t.number).toFixed(1)},${sy(best).toFixed(1)}`);
    const dot = el("circle", { cx: sx(t.number).toFixed(1), cy: sy(t.value).toFixed(1), r: 3, class: "trial", "data-trial": t.number });
    dot.append(el("title", {}, `trial ${t.number}: ${num(t.value)}`));
    svg.append(dot);
  }
  svg.append(el("path", { d: line.join(" "), class: "best" }));
  return svg;
}

/** A parameter's values against the objective, one dot per complete trial (log axis for log ranges). */
function paramPlot(name, dist, trials, objective = "the objective") {
  const width = 300, height = 190, pad = 40;
  const svg = frame(width, height, "scatter", `${name} against ${objective}`);
  svg.setAttribute("data-param", name);
  const done = trials.filter((t) => t.state === "COMPLETE" && name in t.params);
  if (!done.length) return svg;
  const cat = dist.type === "categorical";
  const xOf = (t) => cat ? dist.choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(t.params[name])) : (dist.log ? Math.log10(t.params[name]) : t.params[name]);
  const xs = done.map(xOf), ys = done.map((t) => t.value);
  const sx = cat ? scale(-0.5, dist.choices.length - 0.5, pad, width - 8) : scale(Math.min(...xs), Math.max(...xs), pad, width - 8);
  const sy = scale(Math.min(...ys), Math.max(...ys), height - 22, 10);
  svg.append(el("line", { x1: pad, y1: height - 22, x2: width - 8, y2: height - 22, class: "axis" }),
    tickText(width - 8, height - 6, name + (dist.log ? " (log)" : ""), "end"), tickText(2, 14, num(Math.max(...ys))), tickText(2, height - 22, num(Math.min(...ys))));
  if (cat) dist.choices.forEach((c, i) => svg.append(tickText(sx(i), height - 6, String(c), "middle")));
  done.forEach((t, i) => svg.append(el("circle", { cx: sx(xs[i]).toFixed(1), cy: sy(ys[i]).toFixed(1), r: 2.5, class: "trial" })));
  return svg;
}

/** Parallel coordinates: an axis per parameter and one for the objective (labelled `objective`);
 * a line per complete trial, darker the better. */
function parallelPlot(names, dists, trials, maximize, objective = "objective") {
  const width = 720, height = 280, top = 24, bottom = height - 28;
  const svg = frame(width, height, "parallel", "parallel coordinates");
  const done = trials.filter((t) => t.state === "COMPLETE");
  const axes = [...names, "objective"];
  const ax = scale(0, axes.length - 1, 40, width - 40);
  const value = (t, a) => a === "objective" ? t.value
    : dists[a].type === "categorical" ? dists[a].choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(t.params[a]))
    : dists[a].log ? Math.log10(t.params[a]) : t.params[a];
  const ys = Object.fromEntries(axes.map((a) => {
    const vs = done.filter((t) => a === "objective" || a in t.params).map((t) => value(t, a));
    return [a, scale(Math.min(...vs), Math.max(...vs), bottom, top)];
  }));
  const vals = done.map((t) => t.value);
  const lo = Math.min(...vals), hi = Math.max(...vals);
  for (const t of done) {
    const goodness = hi > lo ? (maximize ? (t.value - lo) / (hi - lo) : (hi - t.value) / (hi - lo)) : 1;
    const pts = axes.filter((a) => a === "objective" || a in t.params).map((a) => `${ax(axes.indexOf(a)).toFixed(1)},${ys[a](value(t, a)).toFixed(1)}`);
    svg.append(el("polyline", { points: pts.join(" "), class: "trial", "stroke-opacity": (0.15 + 0.85 * goodness).toFixed(2), "data-trial": t.number }));
  }
  axes.forEach((a, i) => svg.append(el("line", { x1: ax(i), y1: top, x2: ax(i), y2: bottom, class: "axis" }),
    tickText(ax(i), height - 8, i === axes.length - 1 ? objective : a, "middle")));
  return svg;
}

/** Two objectives against each other, a dot per complete trial: the Pareto front's trials
 * highlighted over the faint dominated ones and, when `stairs`, the front joined as the
 * staircase that bounds what it dominates. */
function paretoPlot(done, onFront, metrics, directions, xi, yi, stairs) {
  const width = 640, height = 300, left = 64, bottom = height - 36;
  const label = (i) => `${metrics[i]} (${directions[i]})`;
  const svg = frame(width, height, "pareto", `Pareto front: ${label(yi)} against ${label(xi)}`);
  const xs = done.map((t) => t.values[xi]), ys = done.map((t) => t.values[yi]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = scale(x0, x1, left + 6, width - 14), sy = scale(y0, y1, bottom - 6, 14);
  svg.append(el("line", { x1: left, y1: bottom, x2: width - 8, y2: bottom, class: "axis" }),
    el("line", { x1: left, y1: 8, x2: left, y2: bottom, class: "axis" }),
    tickText(left - 4, sy(y0) + 3, num(y0), "end"), y1 > y0 ? tickText(left - 4, sy(y1) + 3, num(y1), "end") : null,
    tickText(sx(x0), bottom + 14, num(x0), x1 > x0 ? "start" : "middle"), x1 > x0 ? tickText(sx(x1), bottom + 14, num(x1), "end") : null,
    el("text", { x: (left + width) / 2, y: height - 4, class: "axis-label", "text-anchor": "middle" }, label(xi)),
    el("text", { x: -bottom / 2, y: 14, class: "axis-label", "text-anchor": "middle", transform: "rotate(-90)" }, label(yi)));
  const at = (x, y) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
  if (stairs) {
    // Between neighbours along the front, the corner is the worse of the two on each objective.
    const worse = (i, a, b) => directions[i] === "maximize" ? Math.min(a, b) : Math.max(a, b);
    const pts = done.filter((t) => onFront.has(t.number)).map((t) => [t.values[xi], t.values[yi]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const d = pts.map(([x, y], j) => j === 0 ? `M${at(x, y)}`
      : `L${at(worse(xi, pts[j - 1][0], x), worse(yi, pts[j - 1][1], y))} L${at(x, y)}`);
    if (pts.length) svg.append(el("path", { d: d.join(" "), class: "front" }));
  }
  const dominated = done.filter((t) => !onFront.has(t.number)), front = done.filter((t) => onFront.has(t.number));
  for (const t of [...dominated, ...front]) {
    const best = onFront.has(t.number);
    svg.append(el("circle", { cx: sx(t.values[xi]).toFixed(1), cy: sy(t.values[yi]).toFixed(1), r: best ? 4 : 3,
      class: "trial " + (best ? "front" : "dominated"), "data-trial": t.number },
      el("title", {}, `trial ${t.number}${best ? " (on the front)" : ""}: ` + metrics.map((m, i) => `${m} ${num(t.values[i])}`).join(", "))));
  }
  return svg;
}

/** Registers a trial's model (logged to its run under model/) as a new version of `model`. */
async function registerTrial(trial, model, into, description, from) {
  into.textContent = "registering…";
  try {
    const v = await api(`/api/v1/models/${enc(model)}/versions`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ source: `runs:/${trial.run_id}/model`, run_id: trial.run_id, description }) });
    into.replaceChildren(h("a", { href: `#/models/${enc(v.name)}?version=${v.version}` }, `${v.name} v${v.version}`), " registered" + (from ? " from " + from : ""));
  } catch (err) { into.textContent = "not registered: " + err.message; }
}

/** A multi-objective study's Pareto front: the trials no other trial beats on every objective,
 * plotted (two objectives at a time, chosen when there are more) and listed, each one's model
 * registered in one click. Built once with its controls (the axis picks, the model name);
 * `update` redraws the rest from fresh data and leaves the controls as the user left them. */
function paretoSection(study, runLink, paramText, register) {
  const { metrics, directions } = study;
  const heading = h("h2", {}, "Pareto front");
  const section = h("section", { class: "pareto" }, heading);
  const empty = h("div", { class: "empty" }, "No complete trial yet.");
  const note = h("p", { class: "note" });
  const box = h("div", { class: "pareto-plot" });
  let done = [], onFront = new Set(), shown = null;
  const axis = (i, which) => h("select", { name: which, "aria-label": `objective on the ${which} axis`, onchange: () => draw() },
    metrics.map((m, j) => h("option", { value: j, selected: i === j }, m)));
  const xAxis = metrics.length > 2 ? axis(0, "x") : null, yAxis = metrics.length > 2 ? axis(1, "y") : null;
  const draw = () => box.replaceChildren(paretoPlot(done, onFront, metrics, directions, xAxis ? +xAxis.value : 0, yAxis ? +yAxis.value : 1, metrics.length === 2));
  const registered = h("span", { class: "register-result" });
  const modelName = h("input", { name: "model", value: study.name, "aria-label": "model name" });
  const parts = [note, xAxis ? h("div", { class: "toolbar" }, h("label", {}, "x ", xAxis), h("label", {}, "y ", yAxis)) : null, box,
    h("form", { class: "register", onsubmit: (e) => e.preventDefault() }, "Register a front trial's model as ", modelName, " ", registered),
    h("table", { class: "pareto-front" })].filter(Boolean);
  const update = (study, trials) => {
    const front = study.best_trials || [];
    onFront = new Set(front.map((t) => t.number));
    done = trials.filter((t) => t.state === "COMPLETE" && Array.isArray(t.values) && t.values.length === metrics.length);
    const any = done.length > 0 && front.length > 0;
    // Only when the front first appears do the controls join the page; after that they stay put.
    if (any !== shown) section.replaceChildren(heading, ...(any ? parts : [empty]));
    shown = any;
    if (!any) return;
    note.textContent = `The ${front.length} of ${done.length} complete trials that no other trial beats on every objective, highlighted; faint dots are dominated trials` +
      (metrics.length === 2 ? "; the line bounds what the front dominates." : ". The plot shows two objectives at a time.");
    draw();
    const table = h("table", { class: "pareto-front" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Trial"), metrics.map((m, i) => h("th", { class: "num", title: directions[i] }, m)),
        h("th", {}, "Params"), h("th", {}, "Run"), h("th", {}, "Model"))),
      h("tbody", {}, front.map((t) => h("tr", { "data-trial": t.number },
        h("td", { class: "num" }, String(t.number)),
        metrics.map((m, i) => h("td", { class: "num", "data-metric": m }, num(t.values[i]))),
        h("td", {}, paramText(t)), h("td", {}, runLink(t, 8)),
        h("td", {}, h("button", { type: "button", class: "register-trial", "aria-label": `register trial ${t.number}'s model`,
          onclick: () => register(t, modelName.value.trim(), registered, `Pareto-front trial ${t.number} of study ${study.name}`, `trial ${t.number}`) }, "Register"))))));
    parts[parts.length - 1].replaceWith(table);
    parts[parts.length - 1] = table;
  };
  return { section, update };
}

/** A study page's "Delete study" button and the confirmation it opens: whether to delete the
 *  study's runs too (else they stay in its experiment). While trials run the server refuses
 *  (409) with its message, and the confirmation becomes "Delete anyway" (forced: the running
 *  trials fail). `busy(on)` holds the page's refresh while the request is out; `deleted(result,
 *  withRuns)` is called once the study is gone. */
function deleteStudyControl(name, currentStudy, busy, deleted) {
  let force = false;
  const message = h("p", {});
  const runs = h("input", { type: "checkbox", name: "runs" });
  const result = h("p", { class: "delete-result", role: "alert" });
  const confirm = h("button", { type: "submit", class: "danger solid confirm-delete" }, "Delete");
  const cancel = h("button", { type: "button", class: "secondary cancel-delete", onclick: () => close() }, "Cancel");
  const button = h("button", { type: "button", class: "danger delete-study", "aria-expanded": "false", onclick: () => (panel.hidden ? open() : close()) }, "Delete study");
  const reset = () => {
    force = false;
    confirm.textContent = "Delete";
    result.className = "delete-result";
    result.textContent = "";
  };
  const open = () => {
    const study = currentStudy(), n = Object.values(study.counts).reduce((a, b) => a + b, 0);
    message.textContent = `Delete study ${name} and its ${n} trial${n === 1 ? "" : "s"}? Its name can be used again. ` +
      `Its runs stay in experiment ${study.experiment_id} unless you delete them too.`;
    reset();
    runs.checked = false;
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    cancel.focus();
  };
  const close = () => {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    reset();
  };
  const setDisabled = (on) => { for (const c of [confirm, cancel, runs, button]) c.disabled = on; };
  const panel = h("form", { class: "delete-study-panel", hidden: true, "aria-label": `delete study ${name}`, onsubmit: async (e) => {
    e.preventDefault();
    const withRuns = runs.checked;
    setDisabled(true);
    result.className = "delete-result note";
    result.textContent = "deleting…";
    busy(true);
    try {
      const r = await api(`/api/v1/studies/${enc(name)}?runs=${withRuns}&force=${force}`, { method: "DELETE" });
      deleted(r, withRuns);
      return;
    } catch (err) {
      result.className = "delete-result error";
      if (err.status === 409 && !force) {
        force = true;
        confirm.textContent = "Delete anyway";
        result.textContent = err.message.replace(/\.$/, "") + ". Delete anyway to fail the running trials now.";
      } else {
        result.textContent = "Not deleted: " + (err.message || "unauthorized");
      }
    }
    busy(false);
    setDisabled(false);
  } }, message, h("label", {}, runs, " Also delete its runs (soft-deleted: restorable)"), h("div", { class: "toolbar" }, confirm, cancel), result);
  return { button, panel };
}

/** How often a study page refreshes while its study is in progress. */
const STUDY_POLL_MS = 5000;

/** A study in progress: a trial running, or fewer trials ended than its target. */
function studyInProgress(study) {
  const c = (k) => study.counts[k] || 0;
  return c("RUNNING") > 0 || (!!study.n_trials && c("COMPLETE") + c("PRUNED") + c("FAIL") < study.n_trials);
}

/** One study: its counts, best trial (or Pareto front), plots and trials. While the study is in
 *  progress the page refreshes in place every STUDY_POLL_MS (not while the tab is hidden or a
 *  model is being registered), keeping the user's picks, the model name being typed and the
 *  scroll position; it stops on the next route change, after the refresh that finds the study
 *  finished, or when the study is deleted from its "Delete study" button. */
async function studyPage(name) {
  let timer = null, stopped = false, waitingForTab = false;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    window.removeEventListener("hashchange", stop);
    document.removeEventListener("visibilitychange", onVisibility);
  };
  const onVisibility = () => {
    if (!waitingForTab || document.visibilityState === "hidden") return;
    waitingForTab = false;
    tick();
  };
  window.addEventListener("hashchange", stop);
  const load = (objective) => Promise.all([
    api(`/api/v1/studies/${enc(name)}`), api(`/api/v1/studies/${enc(name)}/trials`),
    api(`/api/v1/studies/${enc(name)}/importance` + (objective ? `?objective=${objective}` : ""))]);
  let first;
  try {
    first = await load(0);
  } catch (e) {
    stop();
    throw e;
  }
  const study0 = first[0];
  const directions = study0.directions || [study0.direction], metrics = study0.metrics || [study0.metric];
  const multi = metrics.length > 1;
  // A trial's value on objective i (a running trial has none yet).
  const valueOf = (t, i) => Array.isArray(t.values) && t.values.length > i ? t.values[i] : i === 0 ? t.value : null;
  const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const show = (x) => typeof x === "string" ? x : JSON.stringify(x);
  const paramText = (t) => Object.entries(t.params).map(([k, v]) => `${k}=${show(v)}`).join(" ");
  const runLink = (t, n) => h("a", { href: `#/experiments/${enc(study0.experiment_id)}/runs/${enc(t.run_id)}` }, h("code", {}, t.run_id.slice(0, n)));
  // Registrations in flight: the page does not refresh under them.
  let registering = 0;
  const register = async (...args) => {
    registering++;
    try { await registerTrial(...args); } finally { registering--; }
  };
  // The data shown, replaced by each refresh.
  let cur = { study: study0, trials: [], dists: {}, names: [] };

  const live = h("span", { class: "live-status", title: `Refreshed every ${STUDY_POLL_MS / 1000} s while the study is in progress` });
  let facts = h("dl", { class: "facts" });
  // A delete in flight holds the refresh; once the study is gone, the page stops and leaves.
  let deleting = false;
  const del = deleteStudyControl(name, () => cur.study, (on) => { deleting = on; }, (r, withRuns) => {
    stop();
    const trials = `${r.trials} trial${r.trials === 1 ? "" : "s"}`;
    studyDeletedNotice = `Deleted study ${r.name} and its ${trials}` + (r.running ? ` (${r.running} running, failed)` : "") +
      (withRuns ? `; ${r.runs_deleted} run${r.runs_deleted === 1 ? "" : "s"} deleted (restorable).` : `; its runs stay in experiment ${cur.study.experiment_id}.`) +
      (r.jobs_cancelled ? ` ${r.jobs_cancelled} trial job${r.jobs_cancelled === 1 ? "" : "s"} cancelled.` : "");
    location.hash = "#/tune";
  });
  const page = h("div", {},
    h("div", { class: "page-head" }, h("h1", {}, study0.name), del.button),
    h("p", { class: "lede" }, h("a", { href: "#/tune" }, "← studies"), " · " + directions.map((d, i) => `${d} ${metrics[i]}`).join(" · "), live),
    del.panel,
    facts);

  // Single objective: the best trial and its register form (kept in place across refreshes).
  let updateBest;
  if (multi) {
    const pareto = paretoSection({ ...study0, directions, metrics }, runLink, paramText, register);
    page.append(pareto.section);
    updateBest = (study, trials) => pareto.update({ ...study, directions, metrics }, trials);
  } else {
    let best = null, shown = null;
    const registered = h("span", { class: "register-result" });
    const modelName = h("input", { name: "model", value: study0.name, "aria-label": "model name" });
    const form = h("form", { class: "register", onsubmit: (e) => {
      e.preventDefault();
      if (best) register(best, modelName.value.trim(), registered, `best trial ${best.number} of study ${study0.name}`);
    } }, "Model ", modelName, " ", h("button", { type: "submit" }, "Register its model"), " ", registered);
    const bestBox = h("div", {});
    const heading = h("h2", {}, "Best trial");
    const section = h("section", { class: "best" }, heading);
    page.append(section);
    updateBest = (study) => {
      best = study.best;
      if (!!best !== shown) section.replaceChildren(heading, ...(best ? [bestBox, form] : [h("div", { class: "empty" }, "No complete trial yet.")]));
      shown = !!best;
      if (best) bestBox.replaceChildren(h("p", {}, `Trial ${best.number}: `, h("strong", { "data-best": "" }, num(best.value)), " · run ", runLink(best, 12)),
        h("table", { class: "best-params" }, h("tbody", {}, Object.entries(best.params).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, show(v)))))));
    };
  }

  // The history, importance and per-parameter plots, for one objective at a time.
  const plots = h("div", { class: "objective-plots" });
  const drawPlots = (i, imp) => {
    const { trials, names, dists } = cur;
    const maximize = directions[i] === "maximize";
    const obj = multi ? metrics[i] : "objective";
    const shown = multi ? trials.map((t) => ({ ...t, value: valueOf(t, i) })) : trials;
    plots.dataset.objective = i;
    plots.replaceChildren(h("section", {}, h("h2", {}, "Optimisation history"),
      h("p", { class: "note" }, `Each complete trial's ${obj} by trial number; the line is the best so far.`), historyPlot(shown, maximize)));
    if (!names.length) return;
    plots.append(h("section", {}, h("h2", {}, "Parameter importance"), !imp || imp.error
      ? h("div", { class: "error" }, "Could not compute the importance: " + (imp ? imp.error : "not loaded"))
      : [h("p", { class: "note" }, "Method: " + imp.method + "."),
        h("table", { class: "importance" }, h("tbody", {}, imp.importances.map((p) => h("tr", { "data-param": p.param },
          h("td", {}, p.param), h("td", { class: "num" }, (100 * p.importance).toFixed(1) + "%"),
          h("td", {}, el("svg", { width: 240, height: 10, class: "bar" }, el("rect", { width: Math.round(240 * p.importance), height: 10 })))))))]));
    plots.append(h("section", {}, h("h2", {}, multi ? `Parameters against ${obj}` : "Parameters against the objective"),
      h("div", { class: "charts" }, names.map((n) => paramPlot(n, dists[n], shown, multi ? obj : undefined)))));
    plots.append(h("section", {}, h("h2", {}, "Parallel coordinates"),
      h("p", { class: "note" }, `One line per complete trial through its parameters to its ${obj}; darker is better.`), parallelPlot(names, dists, shown, maximize, obj)));
  };
  let picks = 0;
  const pick = multi ? h("select", { name: "objective", "aria-label": "objective to plot", onchange: async () => {
    const i = +pick.value, mine = ++picks;
    const imp = cur.names.length ? await api(`/api/v1/studies/${enc(name)}/importance?objective=${i}`).catch((err) => ({ error: err.message || "unauthorized" })) : null;
    if (mine === picks) drawPlots(i, imp);
  } }, metrics.map((m, i) => h("option", { value: i }, `${directions[i]} ${m}`))) : null;
  if (pick) page.append(h("div", { class: "toolbar objective-pick" }, h("label", {}, "Plots below for ", pick)));
  page.append(plots);

  let trialsTable = h("table", { class: "trials" });
  page.append(h("section", {}, h("h2", {}, "Trials"), trialsTable));
  const secs = (t) => t.finished_ms ? ((t.finished_ms - t.started_ms) / 1000).toFixed(1) : "—";

  /** Shows fresh data; the plots only when `imp` is for the objective still picked. */
  const apply = (study, trials, imp, objective) => {
    const dists = {};
    for (const t of trials) for (const [k, d] of Object.entries(t.distributions)) dists[k] = dists[k] || d;
    cur = { study, trials, dists, names: Object.keys(dists).sort() };
    const [sx, sy] = [window.scrollX, window.scrollY];
    const c = (k) => String(study.counts[k] || 0);
    const nextFacts = h("dl", { class: "facts" },
      fact("Trials", `${c("COMPLETE")} complete, ${c("PRUNED")} pruned, ${c("FAIL")} failed, ${c("RUNNING")} running` + (study.n_trials ? ` of ${study.n_trials}` : "") +
        (study.queued_jobs ? `; ${study.queued_jobs} queued for a worker` : "")),
      fact("Sampler", show(study.sampler.type)), fact("Pruner", show(study.pruner.type)), fact("Seed", String(study.seed)),
      fact("Runs", h("a", { href: `#/experiments/${enc(study.experiment_id)}` }, "experiment " + study.experiment_id)),
      fact("Study run", h("a", { href: `#/experiments/${enc(study.experiment_id)}/runs/${enc(study.parent_run_id)}` }, h("code", {}, study.parent_run_id.slice(0, 12)))));
    facts.replaceWith(nextFacts);
    facts = nextFacts;
    updateBest(study, trials);
    if (objective !== null) drawPlots(objective, imp);
    const nextTrials = h("table", { class: "trials" },
      h("thead", {}, h("tr", {}, ["Trial", "State", ...(multi ? metrics : ["Value"]), "Steps", "Seconds", "Params", "Run", "Error"].map((t, i) =>
        h("th", multi && i >= 2 && i < 2 + metrics.length ? { title: directions[i - 2], "data-metric": t } : {}, t)))),
      h("tbody", {}, trials.map((t) => h("tr", { "data-trial": t.number },
        h("td", { class: "num" }, String(t.number)), h("td", {}, h("span", { class: "badge " + t.state.toLowerCase() }, t.state.toLowerCase())),
        multi ? metrics.map((m, i) => h("td", { class: "num", "data-metric": m }, num(valueOf(t, i)))) : h("td", { class: "num" }, num(t.value)),
        h("td", { class: "num" }, String(t.intermediate.length)), h("td", { class: "num" }, secs(t)),
        h("td", {}, paramText(t)), h("td", {}, runLink(t, 8)),
        h("td", { class: "error" }, t.error || "")))));
    trialsTable.replaceWith(nextTrials);
    trialsTable = nextTrials;
    if (page.isConnected && (window.scrollX !== sx || window.scrollY !== sy)) window.scrollTo(sx, sy);
  };

  const clock = () => new Date().toTimeString().slice(0, 8);
  /** After showing `study`: another refresh in STUDY_POLL_MS while it is in progress, else none. */
  const schedule = (study) => {
    if (stopped) return;
    if (studyInProgress(study)) {
      live.className = "live-status";
      live.textContent = `live · updated ${clock()}`;
      timer = setTimeout(tick, STUDY_POLL_MS);
    } else {
      stop();
      live.remove();
    }
  };
  const tick = async () => {
    timer = null;
    if (stopped || !page.isConnected) { stop(); return; }
    if (document.visibilityState === "hidden") { waitingForTab = true; return; }
    if (registering || deleting) { timer = setTimeout(tick, 1000); return; }
    const objective = pick ? +pick.value : 0, picked = picks;
    let study, trials, imp;
    try {
      [study, { trials }, imp] = await load(objective);
    } catch (e) {
      if (stopped) return;
      if (deleting) { timer = setTimeout(tick, 1000); return; }
      live.className = "live-status bad";
      live.textContent = "live · could not refresh: " + (e.message || "unauthorized");
      timer = setTimeout(tick, STUDY_POLL_MS);
      return;
    }
    if (stopped || !page.isConnected) { stop(); return; }
    // A register (or delete) request started meanwhile: try again once it is done.
    if (registering || deleting) { timer = setTimeout(tick, 1000); return; }
    // An objective picked meanwhile draws its own plots (over the data shown by then).
    apply(study, trials, imp, picked === picks ? objective : null);
    schedule(study);
  };
  document.addEventListener("visibilitychange", onVisibility);
  apply(first[0], first[1].trials, first[2], 0);
  schedule(first[0]);
  return page;
}

/** Custom gauges: every series' latest value and its last 24 hours. */
PAGES.gauges = async () => {
  const { gauges } = await api("/api/v1/gauges");
  const page = h("div", {},
    h("h1", {}, "Gauges"),
    h("p", { class: "lede" }, "Numbers a deployment pushes about itself (a camera's power state, a ward's bandwidth), kept as time series and scraped on /metrics."));
  // Slipway's own series (each server's CPU and memory) in a table of their own.
  const own = gauges.filter((g) => g.name.startsWith("slipway_"));
  const pushed = gauges.filter((g) => !g.name.startsWith("slipway_"));
  const since = Date.now() - 24 * 3600 * 1000;
  const names = [...new Set(gauges.map((g) => g.name))];
  const histories = Object.fromEntries(await Promise.all(names.map(async (n) =>
    [n, (await api(`/api/v1/gauges/${enc(n)}?since_ms=${since}`)).series])));
  const key = (labels) => JSON.stringify(Object.entries(labels).sort());
  const labelText = (labels) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(", ");
  const table = (rows, cls) => h("table", { class: cls },
    h("thead", {}, h("tr", {}, ["Gauge", "Labels", "Value", "At", "Points", "Last 24 hours"].map((c, i) => h("th", { class: i >= 2 && i <= 4 ? "num" : null }, c)))),
    h("tbody", {}, rows.map((g) => {
      const series = (histories[g.name] || []).find((s) => key(s.labels) === key(g.labels));
      const points = series ? series.points.map(([, value]) => ({ value })) : [];
      return h("tr", { "data-gauge": g.name },
        h("td", {}, g.name), h("td", {}, labelText(g.labels)), h("td", { class: "num", "data-col": "value" }, String(g.value)),
        h("td", { class: "num" }, time(g.at_ms)), h("td", { class: "num" }, String(g.points)), h("td", {}, sparkline(points)));
    })));
  page.append(pushed.length ? table(pushed, "gauges")
    : h("div", { class: "empty" }, "No gauges yet. Push one with `slipway gauges push camera_power_state 1 --label camera=ward3-2`, or POST /api/v1/gauges."));
  if (own.length) {
    page.append(h("h2", {}, "Slipway's own"),
      h("p", { class: "note" }, "Each server's CPU (cores busy) and resident memory, every 15 s, by replica; alert rules can watch them like any gauge."),
      table(own, "own-gauges"));
  }
  return page;
};

PAGES.endpoints = async (segments) => {
  if (segments[0]) return endpointPage(segments[0]);
  let timer = null, stopped = false;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    window.removeEventListener("hashchange", stop);
  };
  window.addEventListener("hashchange", stop);
  let first;
  try {
    first = await api("/api/v1/endpoints");
  } catch (e) {
    stop();
    throw e;
  }
  const box = h("div", { class: "endpoints-box" });
  const status = h("p", { class: "note poll-status" }, `Refreshed every ${POLL_MS / 1000} s.`);
  const page = h("div", {},
    h("h1", {}, "Endpoints"),
    h("p", { class: "lede" }, "Registered versions served online, by version number or by alias (an alias that moves is followed within a second)."),
    status, box);
  let last = null;
  const show = (endpoints) => {
    const at = performance.now();
    const totals = new Map(endpoints.map((e) => [e.name, requestTotal(e)]));
    const rates = new Map();
    for (const [name, now] of totals) {
      const before = last && last.totals.get(name);
      // Counts start again when another version goes live; skip that interval.
      if (before && now && before.version === now.version && now.total >= before.total) {
        rates.set(name, (now.total - before.total) / ((at - last.at) / 1000));
      }
    }
    last = { at, totals };
    box.replaceChildren(endpointsTable(endpoints, rates));
  };
  const tick = async () => {
    if (stopped || !page.isConnected) { stop(); return; }
    try {
      const { endpoints } = await api("/api/v1/endpoints");
      if (stopped) return;
      show(endpoints);
      status.className = "note poll-status";
      status.textContent = `Refreshed every ${POLL_MS / 1000} s; last at ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      if (stopped) return;
      status.className = "error poll-status";
      status.textContent = "Could not refresh: " + (e.message || "unauthorized");
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  show(first.endpoints);
  timer = setTimeout(tick, POLL_MS);
  return page;
};

/** One endpoint: its traffic, its rollouts with the latest one's timeline (steps, each
 *  decision with its reason and figures), and the A/B report of its variants. */
async function endpointPage(name) {
  const [e, { rollouts }, ab, log, { windows }] = await Promise.all([
    api(`/api/v1/endpoints/${enc(name)}`),
    api(`/api/v1/rollouts?endpoint=${enc(name)}`),
    api(`/api/v1/endpoints/${enc(name)}/abtest`),
    api(`/api/v1/endpoints/${enc(name)}/log`),
    api(`/api/v1/endpoints/${enc(name)}/windows`),
  ]);
  const pct = (v) => (typeof v !== "number" ? "—" : (100 * v).toFixed(2) + "%");
  const num = (v, d = 2) => (typeof v !== "number" ? "—" : v.toFixed(d));
  // Outcome columns shown when some variant has a figure: rates in percent, the rest as numbers.
  const outcomes = [["accuracy", "Accuracy", pct], ["precision", "Precision", pct], ["recall", "Recall", pct],
    ["f1", "F1", (v) => num(v, 3)], ["roc_auc", "ROC AUC", (v) => num(v, 3)], ["mae", "MAE", (v) => num(v, 4)],
    ["rmse", "RMSE", (v) => num(v, 4)]].filter(([k]) => ab.variants.some((v) => typeof v[k] === "number"));
  const variants = h("table", { class: "abtest" },
    h("thead", {}, h("tr", {}, ["Variant", "Weight", "Requests", "Error rate", "p99 ms", "Truth rows", ...outcomes.map((o) => o[1])]
      .map((c, i) => h("th", { class: i ? "num" : null }, c)))),
    h("tbody", {}, ab.variants.map((v) => h("tr", { "data-variant": v.name },
      h("td", {}, v.name), h("td", { class: "num" }, `${v.weight}%`), h("td", { class: "num" }, String(v.requests)),
      h("td", { class: "num" }, pct(v.error_rate)), h("td", { class: "num" }, num(v.p99_ms)),
      h("td", { class: "num" }, String(v.feedback_rows)),
      ...outcomes.map(([k, , show]) => h("td", { class: "num", "data-col": k }, show(v[k])))))));
  const signed = (x, f) => (x >= 0 ? "+" : "") + f(x);
  const comparisons = ab.comparisons.flatMap((c) => c.metrics.map((m) => h("li", { "data-metric": m.metric },
    m.interval == null
      ? `${c.variant} vs ${c.against}, ${m.metric}: difference ${signed(m.effect, (x) => x.toFixed(4))}`
      : `${c.variant} vs ${c.against}, ${m.metric}: effect ${signed(m.effect, (x) => (100 * x).toFixed(2))} points ` +
        `(95% ${(100 * m.interval[0]).toFixed(2)} to ${(100 * m.interval[1]).toFixed(2)}), ` +
        `always-valid p ${m.always_valid_p.toPrecision(2)} (fixed-sample p ${m.p_value.toPrecision(2)})`)));
  const srm = ab.sample_ratio.p_value == null ? "not enough traffic to check the split"
    : ab.sample_ratio.mismatch ? `sample ratio MISMATCH (p ${ab.sample_ratio.p_value.toExponential(1)}): the split is not what it says`
      : `sample ratio ok (p ${ab.sample_ratio.p_value.toFixed(3)})`;
  const latest = rollouts[0] ? await api(`/api/v1/rollouts/${enc(rollouts[0].id)}`) : null;
  return h("div", {},
    h("h1", {}, name),
    h("p", { class: "lede" }, `${e.model}@${e.reference}, version ${e.version ?? "—"}; routing key header ${e.key_header}.`),
    h("h2", {}, "Traffic"), trafficCell(e),
    h("h2", {}, "Rollout"), latest ? rolloutTimeline(latest) : h("div", { class: "empty" }, "No rollout yet. Start one with `slipway rollout start rollout.toml`."),
    rollouts.length > 1 ? h("p", { class: "note" }, `${rollouts.length - 1} earlier rollout(s): slipway rollout status --endpoint ${name}`) : null,
    h("h2", {}, "A/B results (last 24 hours)"), variants,
    h("ul", { class: "comparisons" }, comparisons),
    h("p", { class: "note srm" + (ab.sample_ratio.mismatch ? " alert" : "") }, srm),
    h("h2", {}, "Prediction log"), predictionLog(name, log, windows));
}

/** What an endpoint logs, and each logged column over the windows of the last 24 hours (the
 *  profiles every process wrote, merged): its mean per window, and the latest window's figures. */
function predictionLog(name, log, windows) {
  const st = log.settings;
  const how = st.sample === 0 ? "Logging is off."
    : `Logs ${+(100 * st.sample).toFixed(2)}% of requests (at most ${st.max_per_second} rows/s per process), profiled per ${st.window_s} s window. ` +
      `${log.rows} rows in ${log.segments} Parquet segments over the last 30 days.`;
  const lede = h("p", { class: "note log-settings" }, how, " Rows: ", h("code", {}, `slipway endpoints predictions ${name} --out rows.parquet`), ".");
  if (!windows.length) return h("div", {}, lede, h("div", { class: "empty" }, "No logged windows in the last 24 hours."));
  // Windows of all variants merged per column, oldest first.
  const byWindow = new Map();
  for (const w of windows) {
    const at = byWindow.get(w.window_ms) || { rows: 0, columns: new Map() };
    at.rows += w.rows;
    for (const c of w.columns) {
      const prev = at.columns.get(c.name);
      // Counts add up; a mean is weighted by its count.
      if (!prev) at.columns.set(c.name, { ...c });
      else {
        const n = prev.count + c.count;
        if (typeof c.mean === "number" && typeof prev.mean === "number" && n > 0) prev.mean = (prev.mean * prev.count + c.mean * c.count) / n;
        prev.count = n; prev.nulls += c.nulls;
      }
    }
    byWindow.set(w.window_ms, at);
  }
  const order = [...byWindow.keys()].sort((a, b) => a - b);
  const last = byWindow.get(order[order.length - 1]);
  const names = [...last.columns.keys()];
  const q = (c, p) => { const f = (c.quantiles || []).find(([x]) => x === p); return f ? f[1] : null; };
  const fmt = (v) => (typeof v !== "number" ? "—" : Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toPrecision(3) : v.toFixed(3));
  const top = (c) => (c.top || []).slice(0, 3).map(([v, n]) => `${v} (${n})`).join(", ");
  return h("div", {}, lede,
    h("p", { class: "note" }, `${order.length} window(s) since ${time(order[0])}; the latest, ${time(order[order.length - 1])}, holds ${last.rows} rows.`),
    h("table", { class: "log-columns" },
      h("thead", {}, h("tr", {}, ["Column", "Mean per window", "Mean", "p5", "p50", "p95", "Nulls", "Top values"].map((c, i) => h("th", { class: i >= 2 && i <= 6 ? "num" : null }, c)))),
      h("tbody", {}, names.map((n) => {
        const c = last.columns.get(n);
        const series = order.map((w) => byWindow.get(w).columns.get(n)).filter((x) => x && typeof x.mean === "number").map((x) => ({ value: x.mean }));
        return h("tr", { "data-column": n },
          h("td", {}, n), h("td", {}, series.length ? sparkline(series) : ""),
          h("td", { class: "num", "data-col": "mean" }, fmt(c.mean)), h("td", { class: "num" }, fmt(q(c, 0.05))),
          h("td", { class: "num" }, fmt(q(c, 0.5))), h("td", { class: "num" }, fmt(q(c, 0.95))),
          h("td", { class: "num" }, String(c.nulls)), h("td", { class: "muted" }, top(c)));
      }))));
}

/** A rollout's steps (the current one marked) and its events, newest last. */
function rolloutTimeline(r) {
  const active = r.state === "running" || r.state === "paused";
  const steps = h("ol", { class: "steps" }, r.steps.map((s, i) => h("li", {
    class: (i < r.step || r.state === "promoted" ? "done" : "") + (i === r.step && active ? " current" : ""),
  }, `${s}%`)));
  const figures = (f) => {
    if (!f || !f.candidate) return "";
    const side = (x) => `${x.requests} req, errors ${x.error_rate == null ? "—" : (100 * x.error_rate).toFixed(2) + "%"}, p99 ${x.p99_ms == null ? "—" : x.p99_ms.toFixed(2) + " ms"}`;
    return `candidate ${side(f.candidate)}; baseline ${side(f.baseline)}`;
  };
  return h("div", { class: "rollout", "data-rollout": r.id, "data-state": r.state },
    h("p", {}, h("strong", {}, r.state), ` — ${r.candidate} from ${r.baseline}, candidate at ${r.weight}%. ${r.reason}`),
    steps,
    h("table", { class: "timeline" },
      h("thead", {}, h("tr", {}, ["When", "Event", "Candidate", "Reason", "Figures"].map((c) => h("th", {}, c)))),
      h("tbody", {}, r.events.map((ev) => h("tr", { "data-kind": ev.kind },
        h("td", {}, time(ev.at_ms)), h("td", {}, ev.kind), h("td", { class: "num" }, `${ev.weight}%`),
        h("td", {}, ev.reason), h("td", { class: "muted" }, figures(ev.figures)))))));
}

/** Every request an endpoint's live version has answered, whatever the outcome. */
function requestTotal(e) {
  const r = e.stats && e.stats.requests;
  return r ? { version: e.version, total: r.ok + r.bad_input + r.overloaded + r.failed } : null;
}

/** An endpoint's split as a bar of variants (width = weight), and its shadow with how often it
 *  agreed with the answering variant. */
function trafficCell(e) {
  const variants = (e.variants || []).filter((v) => v.weight > 0);
  const pct = (w) => (Number.isInteger(w) ? String(w) : w.toFixed(2)) + "%";
  const bar = h("div", { class: "split-bar", title: variants.map((v) => `${v.name} ${pct(v.weight)}`).join(", ") },
    variants.map((v, i) => {
      const seg = h("span", { class: `split-seg seg-${i % 4}`, "data-variant": v.name }, v.weight >= 12 ? `${v.name} ${pct(v.weight)}` : "");
      seg.style.width = `${v.weight}%`; // through the CSSOM: the page's CSP refuses style attributes
      return seg;
    }));
  const legend = variants.length > 1
    ? h("div", { class: "split-legend" }, variants.map((v) => `${v.name} ${pct(v.weight)}`).join(" · ")) : null;
  const sh = e.shadow;
  let shadow = null;
  if (sh) {
    const agreed = sh.compared_rows > 0 ? ` · agrees ${(100 * sh.agreed_rows / sh.compared_rows).toFixed(1)}% of ${sh.compared_rows} rows` : "";
    shadow = h("div", { class: "split-shadow", "data-shadow": sh.name }, `shadow ${sh.name}${agreed}`);
  }
  return h("div", { class: "traffic" }, bar, legend, shadow);
}

function endpointsTable(endpoints, rates) {
  if (endpoints.length === 0) {
    return h("div", { class: "empty" }, "No endpoints yet. Serve a registered version with `slipway endpoints create falls falls@champion` " +
      "or `Slipway().create_endpoint(\"falls\", \"falls@champion\")`.");
  }
  const count = (v) => (typeof v === "number" ? String(v) : "—");
  const ms = (v) => (typeof v !== "number" ? "—" : v < 1 ? v.toPrecision(2) : v < 10 ? v.toFixed(2) : v.toFixed(1));
  const cell = (col, value, alert) => h("td", { class: "num" + (alert ? " alert" : ""), "data-col": col }, value);
  const group = (label, span) => h("th", { class: "group", colspan: span, scope: "colgroup" }, label);
  const single = (label, cls) => h("th", { rowspan: 2, class: cls || null }, label);
  return h("div", { class: "scroll" }, h("table", { class: "endpoints" },
    h("thead", {},
      h("tr", {}, single("Endpoint"), single("Model"), single("Live", "num"), single("Traffic"), group("Requests", 5), group("Latency, ms", 3),
        single("Queue", "num"), group("Batching", 4)),
      h("tr", {}, ["OK", "Bad input", "Overloaded", "Failed", "Req/s", "p50", "p90", "p99", "Mean rows", "Max rows", "Max delay µs", "Max queue"]
        .map((c) => h("th", { class: "num" }, c)))),
    h("tbody", {}, endpoints.map((e) => {
      const st = e.stats || null, r = (st && st.requests) || {}, lat = (st && st.latency_ms) || {};
      const rate = rates.get(e.name);
      return h("tr", { "data-endpoint": e.name },
        h("td", {}, h("a", { href: `#/endpoints/${enc(e.name)}`, "data-endpoint-link": e.name }, h("strong", {}, e.name))),
        h("td", {}, h("a", { href: `#/models/${enc(e.model)}`, "data-model": e.model }, `${e.model}@${e.reference}`)),
        h("td", { class: "num", "data-col": "version" }, e.version == null ? h("span", { class: "muted" }, "not loaded")
          : h("a", { href: `#/models/${enc(e.model)}?version=${e.version}` }, `v${e.version}`)),
        h("td", { "data-col": "traffic" }, trafficCell(e)),
        cell("ok", count(r.ok)),
        cell("bad_input", count(r.bad_input), r.bad_input > 0),
        cell("overloaded", count(r.overloaded), r.overloaded > 0),
        cell("failed", count(r.failed), r.failed > 0),
        cell("rate", rate === undefined ? "—" : rate.toFixed(1)),
        cell("p50", ms(lat.p50)), cell("p90", ms(lat.p90)), cell("p99", ms(lat.p99)),
        cell("queue", count(st ? st.queue_depth : null)),
        cell("mean_batch", st && typeof st.mean_batch_rows === "number" ? st.mean_batch_rows.toFixed(1) : "—"),
        cell("max_batch", count(e.max_batch_size)),
        cell("max_delay", count(e.max_queue_delay_us)),
        cell("max_queue", count(e.max_queue_len)));
    }))));
}

function stagePage(stage) {
  const pages = stage.pages || [];
  return h("div", {},
    h("h1", {}, stage.title, " ", h("span", { class: "badge" }, "not built yet")),
    h("p", { class: "lede" }, stage.what),
    h("div", { class: "empty" }, `The ${stage.title.toLowerCase()} stage is not built yet. It arrives in a later release of Slipway.`),
    pages.length ? h("p", { class: "already" }, "Already here: ",
      pages.flatMap((p, i) => [i ? "; " : null, h("a", { href: "#/" + p.id }, p.title), p.what ? ` (${p.what})` : null]), ".") : null);
}

function renderNav(current) {
  const link = (s) => h("a", { href: "#/" + s.id, class: s.id === current ? "active" : null, "data-stage": s.id },
    s.title, s.built ? null : h("span", { class: "soon" }, "soon"));
  const withPages = (s) => [link(s), ...(s.pages || []).map((p) =>
    h("a", { href: "#/" + p.id, class: "sub" + (p.id === current ? " active" : ""), "data-stage": p.id }, p.title))];
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    h("a", { href: "#/", class: current === "" ? "active" : null, "data-stage": "overview" }, "Overview"),
    h("h2", {}, "Experimental"), ...STAGES.filter((s) => s.phase === "Experimental").flatMap(withPages),
    h("h2", {}, "Production"), ...STAGES.filter((s) => s.phase === "Production").flatMap(withPages),
    h("h2", {}, "System"), ...SYSTEM.map(link));
}

let renders = 0;

async function render() {
  // A page that finishes loading after a newer route change is dropped, never shown.
  const mine = ++renders;
  const [route, query] = location.hash.replace(/^#\/?/, "").split("?");
  const segments = route.split("/").filter(Boolean).map(decodeURIComponent);
  const current = segments[0] || "";
  renderNav(current === "compare" || current === "runs" ? "experiments" : current);
  const main = document.getElementById("main");
  const stage = STAGES.find((s) => s.id === current);
  try {
    let page;
    if (PAGES[current]) page = await PAGES[current](segments.slice(1), new URLSearchParams(query || ""));
    else if (stage) page = stagePage(stage);
    else page = h("div", {}, h("h1", {}, "Not found"), h("p", { class: "lede" }, "There is no page " + current + "."));
    if (mine !== renders) return;
    main.replaceChildren(page);
  } catch (e) {
    if (mine !== renders) return;
    main.replaceChildren(e instanceof Unauthorized ? tokenForm() : h("div", { class: "error" }, "Could not load this page: " + e.message));
  }
  const heading = main.querySelector("h1");
  document.title = (current === "" ? "Overview" : heading ? heading.firstChild.textContent.trim() : "Slipway") + " · Slipway";
}

async function pollStatus() {
  const el = document.getElementById("server-status");
  try {
    const token = sessionStorage.getItem("slipway-token");
    const r = await fetch("/ready", { headers: token ? { Authorization: "Bearer " + token } : {} });
    el.textContent = r.ok ? "ready" : r.status === 401 ? "signed out" : "unavailable";
    el.className = "server-status " + (r.ok ? "ok" : "bad");
  } catch {
    el.textContent = "unreachable";
    el.className = "server-status bad";
  }
}

window.addEventListener("hashchange", render);
render();
pollStatus();
setInterval(pollStatus, 10000);
