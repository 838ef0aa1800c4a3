// DecisionView: traces, decision trees, candidates, gates, score breakdowns, live updates.
// Every piece of data reaches the page through textContent (el() below); nothing is parsed
// as HTML. The API token is asked once and kept in sessionStorage for this tab only.
"use strict";

const TOKEN_KEY = "sheratan-token";
const TERMS = ["S", "Q", "R", "L_norm", "C_norm", "K"];
const $ = (id) => document.getElementById(id);
let openTrace = null;
let reloadTimer = null;
let streamAbort = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function num(value, digits = 3) {
  return typeof value === "number" ? value.toFixed(digits) : value === null || value === undefined ? "–" : String(value);
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
  });
  if (response.status === 401) throw new Unauthorized("the token was refused");
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.title || response.statusText);
  return body;
}

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (streamAbort) streamAbort.abort();
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

function failed(error) {
  if (error instanceof Unauthorized) showLogin("That token was refused.");
  else $("detail").replaceChildren(el("p", { class: "error" }, "Error: " + error.message));
}

// ------------------------------------------------------------------ traces list

function filterQuery() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("filters"))) {
    if (!value) continue;
    params.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  return params.toString();
}

async function loadTraces() {
  const answer = await api("/api/why/traces?" + filterQuery());
  $("count").textContent = answer.traces.length + " traces · log at position " + answer.last_position;
  const slider = $("at");
  const follow = Number(slider.value) >= Number(slider.max);
  slider.max = Math.max(1, answer.last_position);
  if (follow) slider.value = slider.max;
  $("at-value").textContent = slider.value;
  $("traces").replaceChildren(
    ...answer.traces.map((t) =>
      el(
        "li",
        {
          class: "trace" + (t.trace_id === openTrace ? " open" : ""),
          "data-trace": t.trace_id,
          on: { click: () => openTraceView(t.trace_id).catch(failed) },
        },
        el("strong", {}, t.intent), " → ", t.chosen || "–", " ",
        el("span", { class: "badge " + t.status }, t.status),
        el("div", { class: "muted" }, (t.ts || "") + " · " + t.nodes + " node(s) · job " + (t.job_id || "–")),
      ),
    ),
  );
}

// ------------------------------------------------------------------ one trace

async function openTraceView(traceId) {
  openTrace = traceId;
  for (const li of document.querySelectorAll("#traces li")) li.classList.toggle("open", li.dataset.trace === traceId);
  const trace = await api("/api/why/trace/" + encodeURIComponent(traceId));
  const job = trace.job_id ? await api("/api/why/job/" + encodeURIComponent(trace.job_id)).catch(() => null) : null;
  const node = el("div", { id: "node" });
  const tree = buildTree(trace.nodes, node);
  $("detail").replaceChildren(
    el("h2", {}, "Trace " + trace.trace_id),
    el("p", { class: "muted" }, trace.intent + " · job " + (trace.job_id || "–") + " · result " + trace.result.status),
    el("h3", {}, "Decision tree"),
    tree,
    node,
    job ? jobPanel(job) : null,
  );
  showNode(trace.nodes[0], node);
  tree.querySelector("button").classList.add("open");
}

function buildTree(nodes, panel) {
  const children = new Map();
  for (const n of nodes) {
    const key = n.parent_node_id || "root";
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(n);
  }
  const known = new Set(nodes.map((n) => n.node_id));
  const roots = nodes.filter((n) => !n.parent_node_id || !known.has(n.parent_node_id));
  const branch = (list) =>
    el(
      "ul",
      {},
      list.map((n) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "node",
              "data-node": n.node_id,
              on: {
                click: (event) => {
                  for (const b of document.querySelectorAll(".tree button")) b.classList.remove("open");
                  event.currentTarget.classList.add("open");
                  showNode(n, panel);
                },
              },
            },
            n.intent + " → " + (n.chosen.action_key || n.chosen.type) + " (" + n.result.status + ")",
          ),
          children.has(n.node_id) ? branch(children.get(n.node_id)) : null,
        ),
      ),
    );
  const tree = branch(roots);
  tree.className = "tree";
  return tree;
}

function showNode(n, panel) {
  const all = [n.chosen, ...n.alternatives].filter((c) => c.action_id);
  all.sort((a, b) => (a.action_id < b.action_id ? -1 : 1));
  const rows = all.map((c) => {
    const chosen = c.action_id === n.chosen.action_id;
    return el(
      "tr",
      { class: chosen ? "chosen" : "" },
      el("td", {}, chosen ? "✔ " : "", c.action_key),
      el("td", {}, num(c.probability)),
      el("td", {}, num(c.select_score)),
      el("td", {}, num(c.mean)),
      el("td", {}, num(c.visits, 0)),
      el(
        "td",
        {},
        el(
          "ul",
          { class: "gates" },
          (c.gates || []).map((g) =>
            el("li", { class: g.passed ? "pass" : "fail" }, g.gate + ": " + (g.passed ? "pass" : "refused"), g.reason ? " — " + g.reason : ""),
          ),
        ),
      ),
    );
  });
  panel.replaceChildren(
    el("h3", {}, "Decision " + n.node_id),
    el("p", { class: "reason" }, n.reason || ""),
    el("p", { class: "muted" }, "policy " + n.rng.policy + " · ε " + num(n.rng.epsilon) + " · draw " + num(n.rng.draw) + " · " + (n.timestamp || "")),
    el(
      "table",
      { class: "candidates" },
      el("thead", {}, el("tr", {}, ["Candidate", "Probability", "Select score", "Mean", "Visits", "Gates"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows),
    ),
    el("h3", {}, "Result"),
    el("p", {}, n.result.status + " · score " + num(n.result.score) + " · latency " + num(n.result.latency_ms, 1) + " ms · cost " + num(n.result.cost),
      n.result.error ? " · " + n.result.error.code + ": " + n.result.error.message : ""),
    breakdownBars(n.breakdown),
    whatIfPanel(n, all),
  );
}

function breakdownBars(breakdown) {
  if (!breakdown) return el("p", { class: "muted" }, "Not scored yet.");
  const weights = breakdown.weights || {};
  return el(
    "div",
    {},
    el("h3", {}, "Score breakdown"),
    el(
      "div",
      { class: "bars" },
      TERMS.filter((t) => typeof breakdown[t] === "number").map((t) => [
        el("span", {}, t + ("w" + t[0] in weights ? " × weight " + num(weights["w" + t[0]], 2) : "")),
        el("meter", { min: 0, max: 1, value: Math.max(0, Math.min(1, breakdown[t])), title: t }),
        el("span", {}, num(breakdown[t])),
      ]),
    ),
  );
}

function whatIfPanel(n, candidates) {
  const out = el("div", { class: "whatif" });
  const button = el("button", { type: "button", on: { click: () => whatIf(n, candidates, out).catch((e) => out.replaceChildren(el("p", { class: "error" }, e.message))) } }, "What if? (counterfactual estimates)");
  return el("div", {}, el("h3", {}, "Counterfactual"), button, out);
}

async function whatIf(n, candidates, out) {
  out.replaceChildren(el("p", { class: "muted" }, "estimating…"));
  const rows = [];
  for (const c of candidates) {
    const worker = c.action_key.split(":").slice(1).join(":") || c.action_key;
    const here = await api("/api/why/counterfactual/" + n.node_id + "?action=" + encodeURIComponent(c.action_key)).catch((e) => ({ error: e.message }));
    const policy = await api("/api/why/counterfactual?estimator=dr&resamples=200&intent=" + encodeURIComponent(n.intent) + "&policy=" + encodeURIComponent("always:" + worker)).catch((e) => ({ error: e.message }));
    rows.push(estimateRow(c.action_key + (c.action_id === n.chosen.action_id ? " (chosen)" : ""), here, policy));
  }
  const policyRow = async (label, policy) => {
    const answer = await api("/api/why/counterfactual?estimator=dr&resamples=200&intent=" + encodeURIComponent(n.intent) + "&policy=" + encodeURIComponent(policy)).catch((e) => ({ error: e.message }));
    rows.push(estimateRow(label, null, answer));
  };
  await policyRow("uniform (random)", "random");
  // The policy this decision was made under: its own c and ε, as the decision recorded them.
  const epsilon = typeof n.rng.epsilon === "number" ? n.rng.epsilon : 0.1;
  const c = typeof n.rng.c === "number" ? n.rng.c : 0.5;
  await policyRow("current policy (ucb, c " + num(c, 2) + ", ε " + num(epsilon, 2) + ")", "ucb:c=" + c + ",epsilon=" + epsilon);
  out.replaceChildren(
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ["Action / policy", "This decision", "Policy over the log", "Interval", "Support and warnings"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows),
    ),
  );
}

function estimateRow(label, here, policy) {
  const at = here === null ? "–" : here.error ? here.error : num(here.estimate ?? here.expected_score);
  const estimate = policy.error ? policy.error : num(policy.estimate);
  const interval = policy.ci ? "[" + num(policy.ci[0]) + ", " + num(policy.ci[1]) + "]" : "";
  const support = typeof policy.ess === "number" ? "effective sample " + num(policy.ess, 1) + " of " + policy.n : null;
  const warnings = [support, policy.logged_quarantines && policy.logged_quarantines.warning, policy.target_gated && policy.target_gated.share ? "gated in " + num(policy.target_gated.share * 100, 0) + "% of decisions" : null]
    .filter(Boolean)
    .join("; ");
  return el("tr", {}, el("td", {}, label), el("td", {}, at), el("td", {}, estimate), el("td", {}, interval), el("td", {}, warnings));
}

function jobPanel(answer) {
  const job = answer.job;
  const moments = Object.entries(job)
    .filter(([key, value]) => typeof value === "string" && /(_at|ts)$/.test(key))
    .map(([key, value]) => [value, "job " + key.replace(/_at$/, "")]);
  for (const d of answer.decisions) {
    moments.push([d.timestamp || "", "decision " + d.intent + " → " + (d.chosen.action_key || d.chosen.type) + " (" + d.result.status + ")"]);
  }
  moments.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return el(
    "div",
    { class: "job" },
    el("h3", {}, "Job " + answer.job_id + " (" + job.kind + ", " + job.status + ")"),
    el("ul", { class: "timeline" }, moments.map(([when, what]) => el("li", {}, when + " · " + what))),
    el("h3", {}, "Payload"),
    el("pre", { class: "payload" }, JSON.stringify(job.payload ?? {}, null, 2)),
  );
}

// ------------------------------------------------------------------ as of a position

async function showAsOf() {
  const at = $("at").value;
  $("at-value").textContent = at;
  const views = await api("/api/views?at=" + encodeURIComponent(at)).catch(() => null);
  if (!views) return;
  $("as-of").replaceChildren(
    el("p", { class: "muted" }, "As of position " + views.position + ": " + views.jobs.total + " jobs (" +
      Object.entries(views.jobs.by_status).map(([s, c]) => s + " " + c).join(", ") + ")"),
    el("h3", {}, "Priors"),
    el("ul", { class: "priors" }, views.priors.map((p) => el("li", {}, p.intent + " · " + p.key + ": mean " + num(p.mean) + " over " + p.visits + " visits"))),
    el("h3", {}, "Baselines"),
    el("ul", { class: "baselines" }, views.baselines.map((b) => el("li", {}, b.intent + ": latency p50 " + num(b.latency_p50_ms, 1) + " ms, p95 " + num(b.latency_p95_ms, 1) + " ms; cost p50 " + num(b.cost_p50) + " (" + b.observations + " obs.)"))),
  );
}

// ------------------------------------------------------------------ live updates

async function follow() {
  streamAbort = new AbortController();
  const response = await fetch("/api/events", {
    headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
    signal: streamAbort.signal,
  });
  if (!response.ok) throw new Error("event stream: " + response.status);
  $("live").textContent = "live";
  $("live").classList.add("on");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = /\r?\n\r?\n/.exec(buffer)) !== null) {
      const message = buffer.slice(0, end.index);
      buffer = buffer.slice(end.index + end[0].length);
      if (message.split(/\r?\n/).some((line) => line.startsWith("data:"))) scheduleReload();
    }
  }
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    loadTraces().catch(failed);
    if (openTrace) openTraceView(openTrace).catch(() => {});
  }, 300);
}

function startFollowing() {
  follow()
    .catch(() => {})
    .finally(() => {
      $("live").textContent = "offline";
      $("live").classList.remove("on");
      if (sessionStorage.getItem(TOKEN_KEY)) setTimeout(startFollowing, 3000);
    });
}

// ------------------------------------------------------------------ start

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  await loadTraces();
  startFollowing();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    start().catch(failed);
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadTraces().catch(failed);
  });
  $("at").addEventListener("change", () => showAsOf().catch(failed));
  $("forget").addEventListener("click", () => showLogin(""));
  if (sessionStorage.getItem(TOKEN_KEY)) start().catch(failed);
  else showLogin("");
});
