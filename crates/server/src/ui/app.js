// Slipway's web UI: hash-routed pages over the native API. DOM is built with textContent only,
// never innerHTML from data.
"use strict";

const STAGES = [
  { id: "data", phase: "Experimental", title: "Datasets", built: false,
    what: "Ingest a sample of raw data, version it, profile it and hand it to training." },
  { id: "label", phase: "Experimental", title: "Labeling", built: false,
    what: "Mark up items with classes, time segments and regions, with model pre-labels." },
  { id: "experiments", phase: "Experimental", title: "Experiments", built: false,
    what: "Track every attempt: data version, parameters, code version, metrics, artifacts." },
  { id: "tune", phase: "Experimental", title: "Tuning", built: false,
    what: "Search hyperparameters, prune bad trials early, run trials in parallel." },
  { id: "pipelines", phase: "Production", title: "Pipelines", built: false,
    what: "Re-run the chosen recipe on the full data as a cached, resumable pipeline." },
  { id: "models", phase: "Production", title: "Models", built: false,
    what: "Register model versions with lineage, aliases and signatures." },
  { id: "serving", phase: "Production", title: "Serving", built: false,
    what: "Online and batch prediction, A/B tests, canary rollouts with automatic rollback." },
  { id: "monitoring", phase: "Production", title: "Monitoring", built: false,
    what: "Infrastructure, training–serving skew, data drift, performance and alerts." },
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
  if (!response.ok) throw new Error((body && body.message) || response.statusText);
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

function stagePage(stage) {
  return h("div", {},
    h("h1", {}, stage.title, " ", h("span", { class: "badge" }, "not built yet")),
    h("p", { class: "lede" }, stage.what),
    h("div", { class: "empty" }, `The ${stage.title.toLowerCase()} stage is not built yet. It arrives in a later release of Slipway.`));
}

function renderNav(current) {
  const link = (s) => h("a", { href: "#/" + s.id, class: s.id === current ? "active" : null, "data-stage": s.id },
    s.title, s.built ? null : h("span", { class: "soon" }, "soon"));
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    h("a", { href: "#/", class: current === "" ? "active" : null, "data-stage": "overview" }, "Overview"),
    h("h2", {}, "Experimental"), ...STAGES.filter((s) => s.phase === "Experimental").map(link),
    h("h2", {}, "Production"), ...STAGES.filter((s) => s.phase === "Production").map(link),
    h("h2", {}, "System"), ...SYSTEM.map(link));
}

async function render() {
  const current = location.hash.replace(/^#\/?/, "").split("/")[0];
  renderNav(current);
  const main = document.getElementById("main");
  const stage = STAGES.find((s) => s.id === current);
  try {
    let page;
    if (PAGES[current]) page = await PAGES[current]();
    else if (stage) page = stagePage(stage);
    else page = h("div", {}, h("h1", {}, "Not found"), h("p", { class: "lede" }, "There is no page " + current + "."));
    main.replaceChildren(page);
  } catch (e) {
    main.replaceChildren(e instanceof Unauthorized ? tokenForm() : h("div", { class: "error" }, "Could not load this page: " + e.message));
  }
  document.title = (stage ? stage.title : (SYSTEM.find((s) => s.id === current) || {}).title || "Overview") + " · Slipway";
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
