// Tripwire operator console: plain JS, no build step, no network beyond this app's API.
// Every server string goes into the page through textContent (see el()), never parsed as HTML.
"use strict";

const POLL_MS = 3000;
const LIST_LIMIT = 50;
const KEEP_ROWS = 500; // rows kept per kind in a long-lived tab; the oldest go first
const TOKEN_KEY = "tripwire.operatorToken";
const NAME_KEY = "tripwire.operatorName";

const state = {
  incidents: new Map(), // id -> incident row
  verdicts: new Map(), // id -> verdict row
  decisions: new Map(), // id -> decision row
  pending: new Set(), // decision ids waiting for an operator (from /v1/approvals)
  selectedDecision: null,
};

// ---------------------------------------------------------------- small helpers

function $(id) {
  return document.getElementById(id);
}

// el("td", {class: "x", dataset: {testid: "y"}}, "text", childNode, ...)
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmtTime(ns) {
  if (ns === null || ns === undefined) return "";
  const ms = Number(ns) / 1e6;
  if (!Number.isFinite(ms)) return String(ns);
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function fmtNum(x, digits = 4) {
  if (x === null || x === undefined) return "—";
  const n = Number(x);
  if (!Number.isFinite(n)) return String(x);
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function asText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function headerRow(labels) {
  return el("tr", {}, ...labels.map((label) => el("th", {}, label)));
}

function button(label, cls, testid, onclick) {
  return el("button", { class: cls, type: "button", dataset: { testid }, onclick }, label);
}

function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

function byNewest(rows) {
  return [...rows].sort((a, b) => Number(b.ts_ns) - Number(a.ts_ns));
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = false;
}

function clearMessage() {
  $("message").hidden = true;
}

// ---------------------------------------------------------------- API access

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    if (!token) throw new ApiError(401, "no_token", "Enter the operator token first.");
    headers.Authorization = `Bearer ${token}`;
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null; // a non-JSON body: the status below still says what went wrong
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401) {
      const text = "Unauthorized: the operator token is missing or wrong.";
      throw new ApiError(401, "unauthorized", text);
    }
    const field = error.field ? ` (field: ${error.field})` : "";
    const status = `HTTP ${response.status} ${response.statusText}`;
    const text = error.message || `${method} ${path}: ${status}`;
    throw new ApiError(response.status, error.code || "http_error", text + field);
  }
  return data;
}

// Run an operator action: show its error (error.message) or a short confirmation.
async function act(label, fn) {
  try {
    clearMessage();
    const result = await fn();
    showMessage(`${label}: done`, "info");
    return result;
  } catch (err) {
    showMessage(`${label} failed: ${err.message}`, "error");
    return null;
  }
}

function operatorName() {
  return sessionStorage.getItem(NAME_KEY) || "operator";
}

// ---------------------------------------------------------------- token

function renderTokenState() {
  const has = Boolean(sessionStorage.getItem(TOKEN_KEY));
  $("token-state").textContent = has ? "token set for this session" : "no token: actions disabled";
  $("token-state").className = has ? "muted" : "";
}

function setupAuth() {
  $("operator-name").value = operatorName();
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    const name = $("operator-name").value.trim();
    if (name) sessionStorage.setItem(NAME_KEY, name);
    $("token-input").value = "";
    renderTokenState();
  });
  renderTokenState();
}

// ---------------------------------------------------------------- halt

function renderHalt(halt) {
  const banner = $("halt-banner");
  banner.hidden = !(halt && halt.halted);
  $("halt-reason").textContent = (halt && halt.reason) || "";
  $("halt-by").textContent = (halt && halt.set_by) || "";
}

function setupHalt() {
  $("halt-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = $("halt-reason-input").value.trim();
    if (!reason) {
      showMessage("Halt: enter a reason first.", "error");
      return;
    }
    const result = await act("Halt", () => api("POST", "/v1/halt", { reason, by: operatorName() }));
    if (result) {
      $("halt-reason-input").value = "";
      await refreshHalt().catch(reportRefreshError);
    }
  });
  $("resume-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const acknowledgement = $("resume-ack").value.trim();
    if (!acknowledgement) {
      const text = "Resume refused: write an acknowledgement that names the halt reason's code.";
      showMessage(text, "error");
      return;
    }
    const body = { by: operatorName(), acknowledgement };
    const result = await act("Resume", () => api("POST", "/v1/resume", body));
    if (result) {
      $("resume-ack").value = "";
      await refreshHalt().catch(reportRefreshError);
    }
  });
}

async function refreshHalt() {
  renderHalt(await api("GET", "/v1/halt"));
}

// ---------------------------------------------------------------- incidents and verdicts

function verdictOf(incidentId) {
  let best = null;
  for (const v of state.verdicts.values()) {
    if (v.incident_id === incidentId && (!best || Number(v.ts_ns) > Number(best.ts_ns))) best = v;
  }
  return best;
}

function renderIncidents() {
  const rows = byNewest(state.incidents.values()).slice(0, LIST_LIMIT).map((inc) => {
    const v = verdictOf(inc.id);
    const verdict = v ? `${v.class} (${fmtNum(v.confidence, 2)})` : "—";
    return el(
      "tr",
      { dataset: { testid: "incident-row", incidentId: inc.id } },
      el("td", {}, fmtTime(inc.ts_ns)),
      el("td", { dataset: { testid: "incident-symbol" } }, inc.symbol),
      el("td", { dataset: { testid: "incident-status" } }, inc.status),
      el("td", { dataset: { testid: "incident-verdict" } }, verdict),
      el("td", { class: "mono", title: inc.id }, shortId(inc.id)),
    );
  });
  $("incidents").replaceChildren(...rows);
}

function renderVerdicts() {
  const cards = byNewest(state.verdicts.values()).slice(0, 20).map((v) => {
    const payload = v.payload || {};
    const factors = Array.isArray(payload.key_factors) ? payload.key_factors : [];
    return el(
      "div",
      { class: "verdict", dataset: { testid: "verdict", verdictId: v.id } },
      el("strong", {}, `${v.symbol} — ${v.class} (confidence ${fmtNum(v.confidence, 2)})`),
      el("span", { class: "muted" }, `  ${fmtTime(v.ts_ns)}  incident ${shortId(v.incident_id)}`),
      el("p", { dataset: { testid: "verdict-reasoning" } }, payload.reasoning || ""),
      factors.length ? el("ul", {}, ...factors.map((f) => el("li", {}, asText(f)))) : null,
    );
  });
  $("verdicts").replaceChildren(...cards);
}

// ---------------------------------------------------------------- decisions

function outcomeText(d) {
  if (d.outcome) return d.outcome;
  // SSE rows may lack awaiting_approval: the approvals list says it too.
  return d.awaiting_approval || state.pending.has(d.id) ? "AWAITING APPROVAL" : "IN FLIGHT";
}

function renderDecisions() {
  const rows = byNewest(state.decisions.values()).slice(0, LIST_LIMIT).map((d) => {
    const outcome = outcomeText(d);
    const selected = d.id === state.selectedDecision ? " selected" : "";
    return el(
      "tr",
      {
        class: `clickable${selected}`,
        dataset: { testid: "decision-row", decisionId: d.id, incidentId: d.incident_id || "" },
        onclick: () => showDecision(d.id),
      },
      el("td", {}, fmtTime(d.ts_ns)),
      el("td", {}, d.symbol),
      el("td", {}, d.action),
      el("td", {}, d.mode),
      el("td", { class: `outcome-${outcome}`, dataset: { testid: `outcome-${d.id}` } }, outcome),
      el("td", {}, d.reason || ""),
    );
  });
  $("decisions").replaceChildren(...rows);
}

function jsonBlock(value) {
  return el("pre", { class: "mono" }, JSON.stringify(value, null, 2));
}

const APPROVAL_COLUMNS = ["status", "decided_by", "note", "summary", "decided_ns"];
const ORDER_COLUMNS = ["client_order_id", "symbol", "side", "order_type", "qty", "price", "status",
  "ts_ns"];
const FILL_COLUMNS = ["client_order_id", "symbol", "side", "qty", "price", "fee", "kind", "ts_ns"];

// A small table of the wanted columns the rows have (timestamps shown as times).
function rowsTable(rows, wanted) {
  if (!rows.length) return el("p", { class: "muted" }, "none");
  const columns = wanted.filter((c) => rows.some((r) => r && r[c] !== undefined));
  const cell = (row, c) => (c.endsWith("_ns") ? fmtTime(row[c]) : asText(row[c] ?? ""));
  return el(
    "table",
    {},
    el("thead", {}, headerRow(columns)),
    el("tbody", {}, ...rows.map((r) =>
      el("tr", {}, ...columns.map((c) => el("td", {}, cell(r, c)))))),
  );
}

function signatureTable(signatures) {
  const rows = (signatures || []).map((s) =>
    el(
      "tr",
      { dataset: { testid: "signature-row" } },
      el("td", {}, s.signer),
      el("td", {}, s.verdict),
      el("td", {}, s.reason || ""),
      el("td", { class: "mono" }, String(s.proposal_hash || "").slice(0, 16)),
      el("td", {}, fmtTime(s.ts_ns)),
    ),
  );
  return el(
    "table",
    {},
    el("thead", {}, headerRow(["Signer", "Verdict", "Reason", "Proposal hash", "Time"])),
    el("tbody", {}, ...rows),
  );
}

async function showDecision(id) {
  state.selectedDecision = id;
  renderDecisions();
  const box = $("decision-detail");
  box.hidden = false;
  box.replaceChildren(el("p", { class: "muted" }, `Loading decision ${id}…`));
  try {
    const chain = await api("GET", `/v1/decisions/${encodeURIComponent(id)}`);
    const orders = chain.orders || [];
    const fills = chain.fills || [];
    box.replaceChildren(
      el("h3", {}, `Sign-off chain of decision ${chain.decision_id}`),
      el("h4", {}, "Signatures"),
      signatureTable(chain.signatures),
      el("h4", {}, "Approval"),
      rowsTable(chain.approval ? [chain.approval] : [], APPROVAL_COLUMNS),
      el("h4", {}, `Orders (${orders.length})`),
      rowsTable(orders, ORDER_COLUMNS),
      el("h4", {}, `Fills (${fills.length})`),
      rowsTable(fills, FILL_COLUMNS),
      el("details", {}, el("summary", {}, "Full decision record (JSON)"),
        jsonBlock(chain.proposal)),
    );
  } catch (err) {
    const text = `Could not load the decision: ${err.message}`;
    box.replaceChildren(el("p", { class: "message error" }, text));
  }
}

// ---------------------------------------------------------------- approvals

function renderApprovals(items) {
  const rows = items.map((a) => {
    const id = a.decision_id;
    const decide = (verb) => async () => {
      const body = { by: operatorName(), note: `${verb} from the console` };
      const path = `/v1/decisions/${encodeURIComponent(id)}/${verb}`;
      const result = await act(`${verb} ${shortId(id)}`, () => api("POST", path, body));
      if (result) {
        await Promise.all([refreshApprovals(), refreshDecisions()]).catch(reportRefreshError);
      }
    };
    return el(
      "tr",
      { dataset: { testid: "approval-row", decisionId: id } },
      el("td", { class: "mono", title: id }, shortId(id)),
      el("td", {}, a.summary || ""),
      el("td", {}, fmtTime(a.requested_ns)),
      el("td", {}, fmtTime(a.expires_ns)),
      el(
        "td",
        {},
        button("Approve", "ok", `approve-${id}`, decide("approve")),
        " ",
        button("Reject", "danger", `reject-${id}`, decide("reject")),
      ),
    );
  });
  $("approvals").replaceChildren(...rows);
  $("approvals-empty").hidden = rows.length > 0;
}

// ---------------------------------------------------------------- positions, PnL, LLM cost

function renderKv(target, pairs) {
  const nodes = [];
  for (const [label, value] of pairs) nodes.push(el("dt", {}, label), el("dd", {}, value));
  $(target).replaceChildren(...nodes);
}

function renderPositions(body) {
  $("positions-backend").textContent = body.backend ? `(${body.backend})` : "";
  const rows = (body.positions || []).map((p) =>
    el(
      "tr",
      { dataset: { testid: "position-row" } },
      el("td", {}, p.symbol),
      el("td", {}, fmtNum(p.qty, 8)),
      el("td", {}, fmtNum(p.avg_price)),
      el("td", {}, fmtNum(p.mark)),
      el("td", {}, fmtNum(p.unrealised_pnl)),
      el("td", {}, p.stop_attached ? "yes" : "NO"),
    ),
  );
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No open positions.")));
  }
  $("positions").replaceChildren(...rows);
}

function renderPnl(p) {
  renderKv("pnl", [
    ["Equity", fmtNum(p.equity, 2)],
    ["Cash", fmtNum(p.cash, 2)],
    ["Day PnL", fmtNum(p.day_pnl, 2)],
    ["Realised PnL", fmtNum(p.realised_pnl, 2)],
    ["Unrealised PnL", fmtNum(p.unrealised_pnl, 2)],
    ["Fees", fmtNum(p.fees, 2)],
    ["Peak equity", fmtNum(p.peak_equity, 2)],
    ["Drawdown", p.drawdown === null || p.drawdown === undefined
      ? "—" : `${fmtNum(Number(p.drawdown) * 100, 2)} %`],
  ]);
}

function renderCosts(c) {
  renderKv("llm-costs", [
    ["Calls", fmtNum(c.calls, 0)],
    ["Tokens in", fmtNum(c.tokens_in, 0)],
    ["Tokens out", fmtNum(c.tokens_out, 0)],
    ["Cost (USD)", fmtNum(c.usd, 6)],
  ]);
  const routes = Object.entries(c.by_route || {}).map(([route, figures]) =>
    el("tr", {}, el("td", {}, route), el("td", { class: "mono" }, asText(figures))),
  );
  $("llm-routes").replaceChildren(...routes);
}

// ---------------------------------------------------------------- refresh and polling

function upsert(map, rows) {
  for (const row of rows) if (row && row.id) map.set(row.id, row);
  if (map.size > KEEP_ROWS) {
    const oldest = [...map.values()].sort((a, b) => Number(a.ts_ns) - Number(b.ts_ns));
    for (const row of oldest.slice(0, map.size - KEEP_ROWS)) map.delete(row.id);
  }
}

// A refresh after an action failed: say so in the status line; the next poll retries.
function reportRefreshError(err) {
  $("poll-status").textContent = `refresh failed: ${err.message}`;
}

async function refreshIncidents() {
  const [inc, ver] = await Promise.all([
    api("GET", `/v1/incidents?limit=${LIST_LIMIT}`),
    api("GET", `/v1/verdicts?limit=${LIST_LIMIT}`),
  ]);
  upsert(state.incidents, inc.items || []);
  upsert(state.verdicts, ver.items || []);
  renderIncidents();
  renderVerdicts();
}

async function refreshDecisions() {
  const body = await api("GET", `/v1/decisions?limit=${LIST_LIMIT}`);
  upsert(state.decisions, body.items || []);
  renderDecisions();
}

async function refreshApprovals() {
  const items = (await api("GET", "/v1/approvals")).items || [];
  state.pending = new Set(items.map((a) => a.decision_id));
  renderApprovals(items);
  renderDecisions();
}

const polled = [
  refreshHalt,
  refreshApprovals,
  refreshDecisions,
  async () => renderPositions(await api("GET", "/v1/positions")),
  async () => renderPnl(await api("GET", "/v1/pnl")),
  async () => renderCosts(await api("GET", "/v1/llm/costs")),
];

// A failed poll shows in the status line, not as a modal error: the next poll retries.
async function poll() {
  const results = await Promise.allSettled(polled.map((fn) => fn()));
  const failed = results.find((r) => r.status === "rejected");
  $("poll-status").textContent = failed ? `refresh failed: ${failed.reason.message}` : "";
}

// ---------------------------------------------------------------- live stream (SSE)

function onStreamEvent(name, handler) {
  return (event) => {
    try {
      handler(JSON.parse(event.data));
    } catch (err) {
      showMessage(`Bad ${name} event from the stream: ${err.message}`, "error");
    }
  };
}

function connectStream() {
  const status = $("stream-status");
  const source = new EventSource("/v1/stream");
  source.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "muted";
    // Catch up on anything missed while disconnected.
    refreshIncidents().catch(reportRefreshError);
    refreshDecisions().catch(reportRefreshError);
  });
  source.addEventListener("error", () => {
    status.textContent = "stream disconnected, reconnecting…";
    status.className = "";
  });
  source.addEventListener("incident", onStreamEvent("incident", (row) => {
    upsert(state.incidents, [row]);
    renderIncidents();
  }));
  source.addEventListener("verdict", onStreamEvent("verdict", (row) => {
    upsert(state.verdicts, [row]);
    renderVerdicts();
    renderIncidents();
  }));
  source.addEventListener("decision", onStreamEvent("decision", (row) => {
    upsert(state.decisions, [row]);
    renderDecisions();
    refreshApprovals().catch(reportRefreshError);
  }));
  source.addEventListener("halt", onStreamEvent("halt", renderHalt));
  source.addEventListener("ping", () => {
    status.textContent = "live";
  });
}

// ---------------------------------------------------------------- start

async function start() {
  setupAuth();
  setupHalt();
  connectStream();
  try {
    await refreshIncidents();
  } catch (err) {
    showMessage(`Could not load incidents: ${err.message}`, "error");
  }
  await poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
