// xpmstore serve: the pages, filled from the JSON API (/api/...) and kept live by server-sent
// events.  No build step, no framework: DOM built with createElement/textContent only (no
// innerHTML of data), so nothing read from the store is ever interpreted as HTML.
"use strict";

const main = document.getElementById("app");
const ARGS = main.dataset;
const ACTIONS = ARGS.actions === "yes";

// ---- small helpers ----------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the CSP
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

// replaceChildren with arrays flattened and empty children left out
function put(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false && c !== ""));
}

const enc = encodeURIComponent;
const short = (id) => (id || "").slice(0, 12);
const objectLink = (id, text) => el("a", { href: `/objects/${enc(id)}`, class: "id", title: id,
                                           text: text || short(id) });

function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function fmtElapsed(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "";
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

function fmtValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(10)));
  return String(value);
}

const badge = (status) => el("span", { class: `badge s-${status}`, text: status });

function tagList(tags) {
  const entries = Object.entries(tags || {});
  if (!entries.length) return "";
  return el("span", { class: "tags" },
            entries.map(([k, v]) => el("span", { class: "tag", text: `${k}=${fmtValue(v)}` })));
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(where, error) {
  put(where, el("p", { class: "error", role: "alert", text: error.message || String(error) }));
}

function section(title, ...children) {
  return el("section", {}, el("h2", { text: title }), ...children);
}

function table(headers, rows, attrs) {
  return el("table", attrs || {},
            el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
            el("tbody", {}, rows));
}

// ---- live updates -------------------------------------------------------------------------
const liveDot = document.getElementById("live");
const sources = [];

function live(url, onData, handlers) {
  const source = new EventSource(url);
  sources.push(source);
  source.onmessage = (event) => onData(JSON.parse(event.data));
  for (const [name, handler] of Object.entries(handlers || {})) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  source.onopen = () => { liveDot.classList.add("on"); liveDot.title = "live"; };
  source.onerror = () => { liveDot.classList.remove("on"); liveDot.title = "reconnecting"; };
  return source;
}
window.addEventListener("pagehide", () => sources.forEach((s) => s.close()));

// elapsed times of running jobs tick without a request
setInterval(() => {
  const now = Date.now() / 1000;
  for (const cell of document.querySelectorAll("[data-started]")) {
    const started = Number(cell.dataset.started);
    const ended = cell.dataset.ended ? Number(cell.dataset.ended) : now;
    cell.textContent = fmtElapsed(ended - started);
  }
}, 1000);

function elapsedCell(started, ended) {
  if (started === null || started === undefined) return el("td", {});
  const end = ended === null || ended === undefined ? Date.now() / 1000 : ended;
  return el("td", { class: "num", data: { started, ...(ended ? { ended } : {}) },
                    text: fmtElapsed(end - started) });
}

function progressBars(levels) {
  if (!levels || !levels.length) return "";
  return el("div", { class: "progress" }, levels.map((level) => {
    const fraction = level.fraction !== null && level.fraction !== undefined ? level.fraction
      : level.total ? level.step / level.total : null;
    const label = [level.desc, level.total ? `${level.step}/${level.total}` : level.step,
                   fraction !== null ? `${Math.round(fraction * 100)}%` : ""]
      .filter((x) => x !== null && x !== undefined && x !== "").join(" ");
    return el("div", { class: "level", title: label },
              el("div", { class: "bar" }, el("div", { class: "fill",
                style: `width:${Math.max(0, Math.min(1, fraction || 0)) * 100}%` })),
              el("span", { class: "label", text: label }));
  }));
}

// ---- actions --------------------------------------------------------------------------------
async function act(identifier, action, options, after) {
  const status = document.getElementById("action-status");
  try {
    const result = await api(`/api/objects/${enc(identifier)}/actions/${action}`, {
      method: "POST", headers: { "content-type": "application/json", "x-xpmstore-action": "1" },
      body: JSON.stringify(options || {}),
    });
    if (status) put(status, el("span", { class: "ok", text: result.message }));
    if (after) after(result);
  } catch (error) {
    if (status) put(status, el("span", { class: "error", text: error.message }));
  }
}

function actionButton(label, identifier, action, options, confirmText, after) {
  return el("button", { type: "button", class: `action a-${action}`, data: { action },
    onclick: () => { if (!confirmText || window.confirm(confirmText)) act(identifier, action, options, after); },
  }, label);
}

// ---- pages ----------------------------------------------------------------------------------
const COUNTS = ["done", "running", "queued", "failed", "reused"];

function experimentsPage() {
  document.title = "Experiments · xpmstore";
  const render = (experiments) => {
    if (!experiments.length) {
      put(main, el("h1", { text: "Experiments" }),
        el("p", { class: "empty", text: "No experiment has run in this workspace yet." }));
      return;
    }
    put(main, el("h1", { text: "Experiments" }), experiments.map((xp) =>
      el("section", { class: "experiment", data: { experiment: xp.name } },
         el("h2", { text: xp.name }),
         table(["run", "status", "started", "host", ...COUNTS, "jobs"], xp.runs.map((run) =>
           el("tr", { data: { run: run.run } },
              el("td", {}, el("a", { href: `/runs/${enc(run.experiment)}/${enc(run.run)}`, text: run.run })),
              el("td", {}, badge(run.status)), el("td", { text: fmtTime(run.started) }),
              el("td", { text: run.host || "" }),
              COUNTS.map((c) => el("td", { class: `num c-${c}`, text: run.counts[c] || "" })),
              el("td", { class: "num", text: run.jobs })))))));
  };
  api("/api/experiments").then(render).catch((e) => showError(main, e));
  live("/api/events/experiments", render);
}

function runPage() {
  const { experiment, run } = ARGS;
  document.title = `${run} · ${experiment} · xpmstore`;
  const render = (data) => {
    const header = el("div", { class: "summary" },
      el("span", {}, "status ", badge(data.status)), el("span", { text: `started ${fmtTime(data.started)}` }),
      data.ended ? el("span", { text: `ended ${fmtTime(data.ended)}` }) : "",
      el("span", { text: `host ${data.host || "?"}` }),
      COUNTS.map((c) => el("span", { class: `count c-${c}`, text: `${c} ${data.counts[c]}` })));
    const rows = data.jobs.map((job) => el("tr", { data: { id: job.identifier, status: job.status } },
      el("td", {}, objectLink(job.identifier)), el("td", { text: job.name }),
      el("td", { class: "status" }, badge(job.category === "queued" ? "queued" : job.status)),
      el("td", { class: "reason", text: job.reason }),
      el("td", {}, tagList(job.tags)), el("td", { text: job.launcher || "" }),
      elapsedCell(job.started, job.ended),
      el("td", {}, progressBars(job.progress), job.status === "failed" && job.failure
        ? el("span", { class: "failure", text: job.failure }) : "")));
    put(main, 
      el("h1", {}, el("a", { href: "/", text: experiment }), " / ", run), header,
      table(["identifier", "task", "state", "reason", "tags", "launcher", "elapsed", "progress"],
            rows, { id: "jobs", class: "jobs" }));
  };
  const url = `/api/runs/${enc(experiment)}/${enc(run)}`;
  api(url).then((data) => {
    render(data);
    live(`/api/events/runs/${enc(experiment)}/${enc(run)}`, render);
  }).catch((e) => showError(main, e));
}

function paramsTree(nodes) {
  if (!nodes || !nodes.length) return el("p", { class: "empty", text: "no fields" });
  return el("ul", { class: "tree" }, nodes.map((node) => {
    const kind = node.kind !== "param" ? el("span", { class: `kind k-${node.kind}`, text: node.kind }) : "";
    if (node.children) {
      const head = node.task && node.id ? objectLink(node.id, `${node.class} ${short(node.id)}`)
        : el("span", { class: "class", text: node.class });
      return el("li", { data: { field: node.name } }, el("span", { class: "field", text: node.name }),
                ": ", head, " ", kind, paramsTree(node.children));
    }
    return el("li", { data: { field: node.name, kind: node.kind } },
              el("span", { class: "field", text: node.name }), ": ",
              el("code", { class: "value", text: fmtValue(node.value) }), " ", kind);
  }));
}

const TIMES = new Set(["time", "started", "ended", "created", "heartbeat"]);

function keyValues(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return el("p", { class: "empty", text: "none" });
  return el("dl", { class: "kv" }, entries.map(([k, v]) => [el("dt", { text: k }),
    el("dd", { text: TIMES.has(k) && typeof v === "number" ? `${fmtTime(v)} (${v})` : fmtValue(v) })]));
}

function logPane(identifier, name) {
  const pre = el("pre", { class: "log", id: `log-${name.replace(/[^a-z0-9]/gi, "-")}`, data: { log: name } });
  const note = el("p", { class: "note" });
  const fileUrl = `/api/objects/${enc(identifier)}/file?path=${enc(name)}`;
  const pane = el("div", { class: "logpane" },
    el("h3", {}, name, " ", el("a", { href: fileUrl, target: "_blank", rel: "noopener", text: "raw" }),
       " ", el("a", { href: `${fileUrl}&download=1`, text: "download" })), note, pre);
  live(`/api/events/objects/${enc(identifier)}/log?name=${enc(name)}`, (chunk) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(chunk.text);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }, {
    cut: (d) => { note.textContent = `the first ${d.cut} bytes are not shown (download the whole file)`; },
    reset: () => { pre.textContent = ""; note.textContent = "a new attempt started"; },
    status: (d) => { pane.dataset.status = d.status; },
  });
  return pane;
}

function objectActions(data, remote) {
  if (!ACTIONS) return el("p", { class: "note", text: "read-only server: start it with --allow-actions to kill, pin, rm or pull" });
  const id = data.identifier;
  const refresh = () => window.location.reload();
  return el("div", { class: "actions" },
    data.status === "running" ? actionButton("kill", id, "kill", {}, `Stop job ${short(id)}?`) : "",
    data.pinned ? actionButton("unpin", id, "unpin", {}, null, refresh) : actionButton("pin", id, "pin", {}, null, refresh),
    data.status !== "running" ? actionButton("rm", id, "rm", {}, `Remove ${data.name} ${short(id)}? The next submit runs it again.`,
                                             () => { window.location.href = "/search"; }) : "",
    remote && remote.present && data.status !== "done" ? actionButton("pull", id, "pull", {}, null, refresh) : "",
    el("span", { id: "action-status" }));
}

function objectPage() {
  const ident = ARGS.ident;
  document.title = `${short(ident)} · xpmstore`;
  const top = el("div", { id: "object" });
  const logs = el("div", { id: "logs" });
  let logNames = [];
  const remoteBox = el("span", { id: "remote", text: "" });
  let remoteInfo = null;
  let current = null;
  const progressBox = el("div", { id: "progress" });

  const render = (data) => {
    current = data;
    const files = data.files || { files: [], links: [] };
    const fileRows = files.files.map((f) => el("tr", { data: { path: f.path } },
      el("td", {}, el("a", { href: `/api/objects/${enc(data.identifier)}/file?path=${enc(f.path)}`, target: "_blank",
                             rel: "noopener", text: f.path })),
      el("td", { class: "num", text: fmtSize(f.size) }), el("td", { text: f.executable ? "x" : "" })));
    const linkRows = files.links.map((l) => el("tr", {}, el("td", { text: l.path }), el("td", { colspan: 2, text: `→ ${l.target}` })));
    put(top, 
      el("h1", {}, el("span", { class: "name", text: data.name }), " ", el("code", { class: "id", text: data.identifier })),
      el("div", { class: "summary" },
        el("span", { class: "status" }, "status ", badge(data.status)), el("span", { text: data.kind }),
        el("span", { text: `size ${fmtSize(data.size)}` }), data.created ? el("span", { text: `created ${fmtTime(data.created)}` }) : "",
        data.pinned ? el("span", { class: "pinned", text: "pinned" }) : "", remoteBox,
        el("a", { href: `/objects/${enc(data.identifier)}/graph`, text: "provenance graph" })),
      objectActions(data, remoteInfo),
      progressBox,
      section("Params", data.damaged ? el("p", { class: "error", text: data.damaged }) : "",
              data.tree ? paramsTree(data.tree) : keyValues(data.params)),
      data.values && Object.keys(data.values).length ? section("Values (Meta)", keyValues(data.values)) : "",
      section("Tags", keyValues(data.tags)),
      section("State", keyValues(data.state), data.launch ? el("details", {}, el("summary", { text: "launch record" }), keyValues(data.launch)) : ""),
      section("Files", files.damaged ? el("p", { class: "error", text: files.damaged }) : "",
              fileRows.length || linkRows.length ? table(["path", "size", "exec"], [...fileRows, ...linkRows], { id: "files" })
                : el("p", { class: "empty", text: data.status === "done" ? "no files" : "listed once done" })),
      section("Dependencies", data.dependencies.length ? el("ul", { id: "dependencies" }, data.dependencies.map((d) => el("li", {}, objectLink(d))))
              : el("p", { class: "empty", text: "none" })),
      section("Dependents", data.dependents.length ? el("ul", { id: "dependents" }, data.dependents.map((d) => el("li", {}, objectLink(d))))
              : el("p", { class: "empty", text: "none" })),
      section("Runs", data.reasons.length ? table(["experiment", "run", "reason"], data.reasons.map((r) => el("tr", {},
        el("td", { text: r.experiment }), el("td", {}, el("a", { href: `/runs/${enc(r.experiment)}/${enc(r.run)}`, text: r.run })),
        el("td", { text: r.reason })))) : el("p", { class: "empty", text: "no run recorded it" })),
      data.attempts.length ? section("Earlier attempts", table(["attempt", "state", "reason", "logs"], data.attempts.map((a) => el("tr", {},
        el("td", { text: a.attempt }), el("td", { text: a.state || "" }), el("td", { text: a.reason || "" }),
        el("td", {}, ["stdout", "stderr"].map((s) => [el("a", { href: `/api/objects/${enc(data.identifier)}/file?path=${enc(`.xpm/attempts/${a.attempt}/${s}`)}`,
                                                              target: "_blank", rel: "noopener", text: s }), " "])))))) : "");
    showProgress(data.progress);
    const logsNow = data.log_names.filter((n) => !n.startsWith(".xpm/"));
    if (logsNow.join() !== logNames.join()) {
      logNames = logsNow;
      put(logs, el("h2", { text: "Logs" }), logsNow.map((name) => logPane(data.identifier, name)));
    }
  };
  const showProgress = (levels) => put(progressBox, levels && levels.length
    ? [el("h2", { text: "Progress" }), progressBars(levels)] : []);
  // the stream sends what changes cheaply (status, state, progress, logs); the whole object
  // is fetched again when its status or its logs change
  const onLive = (change) => {
    if (!current) return;
    if (change.status !== current.status || change.log_names.join() !== current.log_names.join()) {
      api(`/api/objects/${enc(current.identifier)}`).then(render).catch(() => {});
    } else {
      showProgress(change.progress);
    }
  };

  put(main, top, logs);
  api(`/api/objects/${enc(ident)}`).then((data) => {
    render(data);
    live(`/api/events/objects/${enc(data.identifier)}`, onLive);
    api(`/api/objects/${enc(data.identifier)}/remote`).then((remote) => {
      remoteInfo = remote;
      remoteBox.textContent = !remote.configured ? "" : remote.present ? "on the remote" : remote.present === false ? "not on the remote" : "remote: no answer";
      remoteBox.className = remote.present ? "remote yes" : "remote";
    }).catch(() => {});
  }).catch((error) => {
    showError(top, error);
    if (error.status === 404 && /^[0-9a-f]{64}$/.test(ident)) {
      api(`/api/objects/${enc(ident)}/remote`).then((remote) => {
        if (remote.present) top.append(el("p", { text: "This object is on the remote, not in this workspace. " }),
          ACTIONS ? el("div", {}, actionButton("pull", ident, "pull", {}, null, () => window.location.reload()), el("span", { id: "action-status" })) : "");
      }).catch(() => {});
    }
  });
}

function graphPage() {
  const ident = ARGS.ident;
  const params = new URLSearchParams(window.location.search);
  const depth = Number(params.get("depth") || 3);
  document.title = `provenance ${short(ident)} · xpmstore`;
  const picker = el("form", { class: "inline", method: "get" }, el("label", {}, "depth ",
    el("input", { type: "number", name: "depth", min: 1, max: 20, value: depth })), el("button", { type: "submit" }, "show"));
  const holder = el("div", { id: "graph", class: "graph" });
  put(main, el("h1", {}, "Provenance of ", objectLink(ident)), picker, holder);
  api(`/api/objects/${enc(ident)}/graph?depth=${depth}`).then((data) => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 60, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of data.nodes) g.setNode(node.identifier, { width: 210, height: 46, node });
    for (const edge of data.edges) g.setEdge(edge.from, edge.to);
    dagre.layout(g);
    const size = g.graph();
    const drawing = svg("svg", { width: size.width, height: size.height, viewBox: `0 0 ${size.width} ${size.height}`, role: "img" });
    drawing.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
    for (const e of g.edges()) {
      const points = g.edge(e).points;
      const d = points.map((p, i) => `${i ? "L" : "M"} ${p.x} ${p.y}`).join(" ");
      drawing.append(svg("path", { d, class: "edge", "marker-end": "url(#arrow)", data: { from: e.v, to: e.w } }));
    }
    for (const id of g.nodes()) {
      const box = g.node(id);
      const node = box.node;
      const x = box.x - box.width / 2, y = box.y - box.height / 2;
      drawing.append(svg("a", { href: `/objects/${id}`, class: `node s-${node.status}${node.distance === 0 ? " root" : ""}`, data: { id } },
        svg("title", { text: `${node.name} ${id} (${node.status})` }),
        svg("rect", { x, y, width: box.width, height: box.height, rx: 6 }),
        svg("text", { x: x + 10, y: y + 19, class: "n-name", text: node.name.length > 30 ? `…${node.name.slice(-29)}` : node.name }),
        svg("text", { x: x + 10, y: y + 36, class: "n-id", text: `${short(id)} · ${node.status}` })));
    }
    put(holder, drawing, data.truncated ? el("p", { class: "note", text: "the graph is cut at its node limit" }) : "",
                           el("p", { class: "note", text: "left: what it was made from; right: what uses it" }));
  }).catch((e) => showError(holder, e));
}

const PER_PAGE = 50;

function searchPage() {
  document.title = "Search · xpmstore";
  const params = new URLSearchParams(window.location.search);
  const field = (name, attrs) => el("input", { name, value: params.get(name) || "", ...attrs });
  const select = (name, options) => el("select", { name }, options.map((o) =>
    el("option", { value: o, selected: (params.get(name) || "") === o, text: o || "any" })));
  const names = el("datalist", { id: "names" });
  const form = el("form", { class: "search", method: "get", id: "search-form" },
    el("label", {}, "class ", field("name", { list: "names", placeholder: "module.Class", size: 28 })), names,
    el("label", {}, "kind ", select("kind", ["", "task", "cache"])),
    el("label", {}, "status ", select("status", ["", "done", "running", "queued", "failed", "absent"])),
    el("label", {}, "tags ", el("input", { name: "tag", value: params.getAll("tag").join(" "), placeholder: "k=v k=v", size: 18 })),
    el("label", {}, "params ", el("input", { name: "param", value: params.getAll("param").join(" "), placeholder: "lr=0.1 model.hidden=64", size: 24 })),
    el("label", {}, "id ", field("prefix", { placeholder: "prefix", size: 10 })),
    el("button", { type: "submit" }, "search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) {
      if (key === "tag" || key === "param") value.split(/\s+/).filter(Boolean).forEach((v) => query.append(key, v));
      else if (value) query.set(key, value);
    }
    window.location.search = query.toString();
  });
  const results = el("div", { id: "results" });
  put(main, el("h1", { text: "Search" }), form, results);
  api("/api/names").then((list) => put(names, list.map((n) => el("option", { value: n.name })))).catch(() => {});
  const query = new URLSearchParams(params);
  if (!query.get("per_page")) query.set("per_page", PER_PAGE);
  api(`/api/search?${query}`).then((data) => {
    const pageLink = (page, label) => {
      const next = new URLSearchParams(params);
      next.set("page", page);
      return el("a", { href: `?${next}`, class: "page", text: label });
    };
    put(results, 
      el("p", { class: "note", id: "total", text: `${data.total} object(s) · page ${data.page} of ${data.pages}` }),
      table(["identifier", "kind", "class", "status", "size", "created", "tags"], data.items.map((item) =>
        el("tr", { data: { id: item.identifier } }, el("td", {}, objectLink(item.identifier)), el("td", { text: item.kind }),
           el("td", { text: item.name }), el("td", {}, badge(item.status)), el("td", { class: "num", text: item.status === "done" ? fmtSize(item.size) : "" }),
           el("td", { text: fmtTime(item.created) }), el("td", {}, tagList(item.tags)))), { id: "found" }),
      el("nav", { class: "pages" }, data.page > 1 ? pageLink(data.page - 1, "← previous") : "",
         data.page < data.pages ? pageLink(data.page + 1, "next →") : ""));
  }).catch((e) => showError(results, e));
}

function tablesPage() {
  document.title = "Results · xpmstore";
  put(main, el("h1", { text: "Results" }), el("p", { class: "loading", text: "Loading…" }));
  api("/api/names").then((list) => {
    const tasks = list.filter((n) => n.kind === "task");
    put(main, el("h1", { text: "Results" }),
      el("p", { text: "One table per task class: a row per done task, the params that differ, tags and metrics." }),
      tasks.length ? el("ul", { id: "classes" }, tasks.map((n) => el("li", {}, el("a", { href: `/table/${enc(n.name)}`, text: n.name }),
                                                                    ` (${n.done} done)`)))
        : el("p", { class: "empty", text: "no task in this workspace" }));
  }).catch((e) => showError(main, e));
}

function cellOrder(value) {
  return typeof value === "number" ? [0, value] : [1, String(value)];
}

function compareCells(a, b) {
  const [ka, va] = cellOrder(a), [kb, vb] = cellOrder(b);
  if (ka !== kb) return ka - kb;
  return va < vb ? -1 : va > vb ? 1 : 0;
}

function tablePage() {
  const name = ARGS.name;
  document.title = `${name} results · xpmstore`;
  const params = new URLSearchParams(window.location.search);
  const metrics = params.get("metrics") || "metrics.json";
  const form = el("form", { class: "inline", method: "get" },
    el("label", {}, "metrics file ", el("input", { name: "metrics", value: metrics, size: 24 })), el("button", { type: "submit" }, "show"));
  const holder = el("div", { id: "table" });
  const csv = el("a", { href: `/api/table/${enc(name)}/csv?metrics=${enc(metrics)}`, id: "csv", text: "download CSV" });
  put(main, el("h1", {}, el("a", { href: "/table", text: "Results" }), ` / ${name}`), form, csv, holder);
  api(`/api/table/${enc(name)}?metrics=${enc(metrics)}`).then((data) => {
    let sortAt = -1, descending = false;
    const rows = data.rows.slice();
    const body = el("tbody", {});
    const fill = () => put(body, rows.map((row) => el("tr", { data: { id: row[0] } },
      row.map((cell, i) => i === 0 ? el("td", {}, objectLink(cell))
        : el("td", { class: typeof cell === "number" ? "num" : "", text: fmtValue(cell) })))));
    const headers = data.columns.map((column, at) => el("th", { class: `g-${column.group} sortable`, data: { key: column.key }, title: `sort by ${column.label}`,
      onclick: (event) => {
        descending = sortAt === at ? !descending : false;
        sortAt = at;
        const filled = rows.filter((r) => r[at] !== null && r[at] !== undefined);
        const empty = rows.filter((r) => r[at] === null || r[at] === undefined);
        filled.sort((a, b) => (descending ? -1 : 1) * compareCells(a[at], b[at]));
        rows.splice(0, rows.length, ...filled, ...empty);
        for (const th of event.currentTarget.parentNode.children) th.removeAttribute("aria-sort");
        event.currentTarget.setAttribute("aria-sort", descending ? "descending" : "ascending");
        fill();
      } }, el("span", { class: "group", text: column.group === "identifier" ? "" : column.group }), " ", column.label));
    fill();
    put(holder, 
      el("p", { class: "note", text: `${data.rows.length} done task(s)` + (data.missing ? `, ${data.missing} without a readable ${data.metrics}` : "") }),
      el("table", { id: "results", class: "results" }, el("thead", {}, el("tr", {}, headers)), body));
  }).catch((e) => showError(holder, e));
}

function remotePage() {
  document.title = "Remote · xpmstore";
  put(main, el("h1", { text: "Remote" }), el("p", { class: "loading", text: "Loading…" }));
  api("/api/remote").then((info) => {
    if (!info.configured) {
      put(main, el("h1", { text: "Remote" }), el("p", { class: "empty",
        text: info.error || "No remote is configured: set [remote] url in xpmstore.toml or $XPMSTORE_REMOTE (docs/remote.md)." }));
      return;
    }
    put(main, el("h1", { text: "Remote" }), el("p", { text: info.url }), el("p", { class: "loading", text: "Listing the remote…" }));
    return api("/api/remote?list=1").then((data) => {
      put(main, el("h1", { text: "Remote" }), el("p", { text: data.url || info.url }),
        data.error ? el("p", { class: "error", text: data.error }) : "", el("span", { id: "action-status" }),
        table(["identifier", "kind", "class", "size", "created", "here", ""], data.items.map((item) => el("tr", { data: { id: item.identifier } },
          el("td", {}, objectLink(item.identifier)), el("td", { text: item.kind }), el("td", { text: item.name }),
          el("td", { class: "num", text: fmtSize(item.size) }), el("td", { text: fmtTime(item.created) }),
          el("td", { text: item.local ? "yes" : "no" }),
          el("td", {}, !item.local && ACTIONS ? actionButton("pull", item.identifier, "pull", {}, null, () => window.location.reload()) : ""))),
          { id: "remote-objects" }));
    });
  }).catch((e) => showError(main, e));
}

const PAGES = { experiments: experimentsPage, run: runPage, object: objectPage, graph: graphPage,
                search: searchPage, tables: tablesPage, table: tablePage, remote: remotePage };
(PAGES[ARGS.page] || (() => showError(main, new Error("unknown page"))))();
