// Tripwire operator console: plain JS, no build step, no network beyond this app's API.
// Every server string goes into the page through textContent (see el()), never parsed as HTML.
"use strict";

const COALESCE_MS = 250; // a burst of stream events re-reads a panel once
const LIST_LIMIT = 50;
const KEEP_ROWS = 500; // rows kept per kind in a long-lived tab; the oldest go first
const TOKEN_KEY = "tripwire.operatorToken";
const NAME_KEY = "tripwire.operatorName";

const RUN_CURRENT = ""; // the selector's "follow the newest run" value
const RUN_ALL = "*";

const state = {
  incidents: new Map(), // id -> incident row
  verdicts: new Map(), // id -> verdict row
  decisions: new Map(), // id -> decision row
  pending: new Set(), // decision ids waiting for an operator (from /v1/approvals)
  selectedDecision: null,
  runs: [], // from /v1/runs, newest first
  runChoice: RUN_CURRENT, // RUN_CURRENT, RUN_ALL or a run id
  generation: 0, // bumped when the run shown changes: answers asked for before are dropped
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

// USD amounts (PnL, fees, equity): always two decimals.
function fmtUsd(x) {
  if (x === null || x === undefined || x === "") return "—";
  const n = Number(x);
  if (!Number.isFinite(n)) return String(x);
  return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

// Prices: more decimals the smaller the price (BTC at 95,000.12; a 0.000123 token).
function fmtPrice(x) {
  if (x === null || x === undefined || x === "") return "—";
  const n = Number(x);
  if (!Number.isFinite(n)) return String(x);
  const a = Math.abs(n);
  const digits = a >= 1000 ? 2 : a >= 1 ? 4 : a === 0 ? 2 : 8;
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

// Quantities: up to 8 decimals, float dust (4.800000000001) trimmed.
function fmtQty(x) {
  return fmtNum(x, 8);
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{12})$/i;

// A UUIDv7 starts with its millisecond time, the same on every row of one burst: show its
// random tail instead ("…" marks the cut); the full id is in the cell's title.
function shortId(id) {
  if (!id) return "";
  const text = String(id);
  const uuid = UUID.exec(text);
  if (uuid) return `…${uuid[1].slice(-8)}`;
  return text.length <= 14 ? text : `…${text.slice(-12)}`;
}

// An id cell: the short form, the full id as title; a click copies the full id.
function idCell(id) {
  const copy = async (event) => {
    event.stopPropagation(); // not a click on the row
    try {
      await navigator.clipboard.writeText(String(id));
      showMessage(`Copied id ${id}`, "info");
    } catch {
      showMessage(`Id: ${id}`, "info"); // no clipboard: show it to copy by hand
    }
  };
  return el("td", { class: "mono id", title: String(id || ""), onclick: copy }, shortId(id));
}

// Newest first by arrival (recorded_ns: when the store wrote the row), then market time,
// then id: a replay's market time says nothing about which run is now.
function newer(a, b) {
  const ra = Number(a.recorded_ns || 0);
  const rb = Number(b.recorded_ns || 0);
  if (ra !== rb) return rb - ra;
  const ta = Number(a.ts_ns || 0);
  const tb = Number(b.ts_ns || 0);
  if (ta !== tb) return tb - ta;
  return String(b.id) < String(a.id) ? -1 : String(b.id) > String(a.id) ? 1 : 0;
}

function byNewest(rows) {
  return [...rows].sort(newer);
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
      idCell(inc.id),
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
const ORDER_COLUMNS = ["client_order_id", "symbol", "side", "order_type", "qty", "price", "state",
  "filled_qty", "avg_fill_price", "ts_ns"];
const FILL_COLUMNS = ["client_order_id", "symbol", "side", "qty", "price", "fee", "kind", "ts_ns"];

const FORMATS = {
  qty: fmtQty,
  filled_qty: fmtQty,
  price: fmtPrice,
  avg_fill_price: fmtPrice,
  fee: fmtUsd,
};

function fmtCell(row, c) {
  const value = row[c];
  if (c.endsWith("_ns")) return fmtTime(value);
  if (FORMATS[c]) return value === null || value === undefined ? "—" : FORMATS[c](value);
  return asText(value ?? "");
}

// A small table of the wanted columns the rows have (timestamps as times, money formatted).
function rowsTable(rows, wanted, testid) {
  if (!rows.length) return el("p", { class: "muted" }, "none");
  const columns = wanted.filter((c) => rows.some((r) => r && r[c] !== undefined));
  return el(
    "table",
    { dataset: { testid } },
    el("thead", {}, headerRow(columns)),
    el("tbody", {}, ...rows.map((r) =>
      el("tr", {}, ...columns.map((c) => el("td", { dataset: { col: c } }, fmtCell(r, c)))))),
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

// An order's state as its fills say it: the store's status, unless the fills already
// cover the order (a fill recorded before the order row caught up) or part of it.
function orderState(order, fills) {
  // Only the order's own fills: a stop-loss or take-profit fill closes the position later.
  const own = (f) => f.client_order_id === order.client_order_id && (f.kind || "order") === "order";
  const mine = fills.filter(own);
  const filled = mine.reduce((sum, f) => sum + Number(f.qty || 0), 0);
  const qty = Number(order.qty || 0);
  const status = String(order.status || "");
  const working = status === "pending" || status === "open" || status === "";
  let text = status;
  if (working && qty > 0 && filled >= qty * (1 - 1e-9)) text = "filled";
  else if (working && filled > 0) text = `partially filled (${fmtQty(filled)} of ${fmtQty(qty)})`;
  const payload = order.payload || {};
  return {
    ...order,
    state: text,
    filled_qty: Math.max(filled, Number(payload.filled_qty || 0)),
    avg_fill_price: payload.avg_fill_price ?? null,
  };
}

async function showDecision(id, quiet = false) {
  state.selectedDecision = id;
  renderDecisions();
  const box = $("decision-detail");
  box.hidden = false;
  if (!quiet) box.replaceChildren(el("p", { class: "muted" }, `Loading decision ${id}…`));
  try {
    const chain = await api("GET", `/v1/decisions/${encodeURIComponent(id)}`);
    if (state.selectedDecision !== id) return; // another decision was clicked meanwhile
    const fills = chain.fills || [];
    const orders = (chain.orders || []).map((o) => orderState(o, fills));
    const wasOpen = box.querySelector("details[open]") !== null;
    box.replaceChildren(
      el("h3", {}, `Sign-off chain of decision ${chain.decision_id}`),
      el("h4", {}, "Signatures"),
      signatureTable(chain.signatures),
      el("h4", {}, "Approval"),
      rowsTable(chain.approval ? [chain.approval] : [], APPROVAL_COLUMNS, "approval-table"),
      el("h4", {}, `Orders (${orders.length})`),
      rowsTable(orders, ORDER_COLUMNS, "orders-table"),
      el("h4", {}, `Fills (${fills.length})`),
      rowsTable(fills, FILL_COLUMNS, "fills-table"),
      el("details", wasOpen ? { open: "" } : {}, el("summary", {}, "Full decision record (JSON)"),
        jsonBlock(chain.proposal)),
    );
  } catch (err) {
    if (quiet) throw err; // a background refresh: the status line says it, the detail stays
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
      idCell(id),
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
      el("td", {}, fmtQty(p.qty)),
      el("td", {}, fmtPrice(p.avg_price)),
      el("td", {}, fmtPrice(p.mark)),
      el("td", {}, fmtUsd(p.unrealised_pnl)),
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
    ["Equity", fmtUsd(p.equity)],
    ["Cash", fmtUsd(p.cash)],
    ["Day PnL", fmtUsd(p.day_pnl)],
    ["Realised PnL", fmtUsd(p.realised_pnl)],
    ["Unrealised PnL", fmtUsd(p.unrealised_pnl)],
    ["Fees", fmtUsd(p.fees)],
    ["Peak equity", fmtUsd(p.peak_equity)],
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

// ---------------------------------------------------------------- runs

// The newest run while it goes on. Once it ended, what arrives belongs to no run (e.g. a
// service started after a demo): "current" then shows every row, newest first.
function currentRun() {
  const newest = state.runs[0];
  return newest && (newest.ended_ns === null || newest.ended_ns === undefined) ? newest : null;
}

// The run whose rows are shown: the chosen one, the open newest for "current", null for all.
function selectedRun() {
  if (state.runChoice === RUN_ALL) return null;
  if (state.runChoice === RUN_CURRENT) return currentRun();
  return state.runs.find((r) => r.id === state.runChoice) || null;
}

function runQuery() {
  const run = selectedRun();
  return run ? `&run=${encodeURIComponent(run.id)}` : "";
}

// Whether a row (from the stream) arrived during the selected run.
function inSelectedRun(row) {
  const run = selectedRun();
  if (!run) return true;
  const at = Number(row.recorded_ns || 0);
  const end = run.ended_ns === null || run.ended_ns === undefined ? Infinity : Number(run.ended_ns);
  return at >= Number(run.started_ns) && at < end;
}

function runLabel(run) {
  const label = run.label ? `${run.label} · ` : "";
  return `${label}started ${fmtTime(run.started_ns)}${run.ended_ns ? " (ended)" : ""}`;
}

function renderRuns() {
  const select = $("run-select");
  const open = currentRun();
  const current = open ? `current run: ${runLabel(open)}` : "current (no run going on: all rows)";
  const options = [
    el("option", { value: RUN_CURRENT }, current),
    el("option", { value: RUN_ALL }, "all runs"),
    ...state.runs.map((r) =>
      el("option", { value: r.id, title: r.id }, `${shortId(r.id)} ${runLabel(r)}`)),
  ];
  select.replaceChildren(...options);
  select.value = state.runChoice;
  if (select.value !== state.runChoice) select.value = RUN_CURRENT; // a run no longer listed
}

async function refreshRuns() {
  const before = selectedRun();
  state.runs = (await api("GET", "/v1/runs?limit=50")).items || [];
  renderRuns();
  const after = selectedRun();
  // "current" moved to a newer run: show that run's rows only.
  if ((before && before.id) !== (after && after.id)) await reloadLists();
}

async function reloadLists() {
  state.generation += 1;
  state.incidents.clear();
  state.verdicts.clear();
  state.decisions.clear();
  await Promise.all([refreshIncidents(), refreshDecisions()]);
}

function setupRuns() {
  $("run-select").addEventListener("change", async (event) => {
    state.runChoice = event.target.value;
    await reloadLists().catch(reportRefreshError);
  });
}

// ---------------------------------------------------------------- refresh

function upsert(map, rows) {
  for (const row of rows) if (row && row.id) map.set(row.id, row);
  if (map.size > KEEP_ROWS) {
    const oldest = byNewest(map.values()).reverse();
    for (const row of oldest.slice(0, map.size - KEEP_ROWS)) map.delete(row.id);
  }
}

// A refresh failed: say so in the status line; the next event or reconnect reads again.
function reportRefreshError(err) {
  $("poll-status").textContent = `refresh failed: ${err.message}`;
}

async function refreshIncidents() {
  const generation = state.generation;
  const [inc, ver] = await Promise.all([
    api("GET", `/v1/incidents?limit=${LIST_LIMIT}${runQuery()}`),
    api("GET", `/v1/verdicts?limit=${LIST_LIMIT}${runQuery()}`),
  ]);
  if (generation !== state.generation) return; // asked for the run shown before
  upsert(state.incidents, inc.items || []);
  upsert(state.verdicts, ver.items || []);
  renderIncidents();
  renderVerdicts();
}

async function refreshDecisions() {
  const generation = state.generation;
  const body = await api("GET", `/v1/decisions?limit=${LIST_LIMIT}${runQuery()}`);
  if (generation !== state.generation) return; // asked for the run shown before
  upsert(state.decisions, body.items || []);
  renderDecisions();
}

// The open decision's chain again, so its orders follow their fills.
async function refreshDetail() {
  if (state.selectedDecision) await showDecision(state.selectedDecision, true);
}

async function refreshApprovals() {
  const items = (await api("GET", "/v1/approvals")).items || [];
  state.pending = new Set(items.map((a) => a.decision_id));
  renderApprovals(items);
  renderDecisions();
}

async function refreshBook() {
  const [positions, pnl] = await Promise.all([api("GET", "/v1/positions"), api("GET", "/v1/pnl")]);
  renderPositions(positions);
  renderPnl(pnl);
}

async function refreshCosts() {
  renderCosts(await api("GET", "/v1/llm/costs"));
}

// Everything the page shows. Read at start and again when the stream (re)connects or says
// "refresh" (the server lost its database listener): there is no periodic poll, so between
// those only the stream's events cause reads, each of the panels it names.
const panels = [
  refreshHalt,
  refreshRuns,
  refreshDetail,
  refreshApprovals,
  refreshIncidents,
  refreshDecisions,
  refreshBook,
  refreshCosts,
];

// A failed read shows in the status line, not as a modal error.
async function reloadAll() {
  const results = await Promise.allSettled(panels.map((fn) => fn()));
  const failed = results.find((r) => r.status === "rejected");
  $("poll-status").textContent = failed ? `refresh failed: ${failed.reason.message}` : "";
}

// fn at most once per COALESCE_MS, however many events ask for it meanwhile.
function coalesced(fn) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn().catch(reportRefreshError);
    }, COALESCE_MS);
  };
}

const soon = {
  approvals: coalesced(refreshApprovals),
  book: coalesced(refreshBook),
  costs: coalesced(refreshCosts),
  detail: coalesced(refreshDetail),
  runs: coalesced(refreshRuns),
};

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
  let opened = false;
  source.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "muted";
    // A reconnect: catch up on everything missed while disconnected.
    if (opened) reloadAll();
    opened = true;
  });
  source.addEventListener("error", () => {
    status.textContent = "stream disconnected, reconnecting…";
    status.className = "";
  });
  // The stream sends every run's rows: keep those of the run shown.
  source.addEventListener("incident", onStreamEvent("incident", (row) => {
    if (!inSelectedRun(row)) return;
    upsert(state.incidents, [row]);
    renderIncidents();
  }));
  source.addEventListener("verdict", onStreamEvent("verdict", (row) => {
    soon.costs(); // a verdict is an LLM call
    if (!inSelectedRun(row)) return;
    upsert(state.verdicts, [row]);
    renderVerdicts();
    renderIncidents();
  }));
  source.addEventListener("decision", onStreamEvent("decision", (row) => {
    soon.approvals();
    soon.costs();
    if (row.id === state.selectedDecision) soon.detail();
    if (!inSelectedRun(row)) return;
    upsert(state.decisions, [row]);
    renderDecisions();
  }));
  // Orders and fills: the note names the decision; the open detail and the book re-read.
  const onTrade = (name) => onStreamEvent(name, (note) => {
    soon.book();
    if (note.decision_id && note.decision_id === state.selectedDecision) soon.detail();
  });
  source.addEventListener("order", onTrade("order"));
  source.addEventListener("fill", onTrade("fill"));
  source.addEventListener("run", onStreamEvent("run", () => soon.runs()));
  source.addEventListener("refresh", () => reloadAll());
  source.addEventListener("halt", onStreamEvent("halt", renderHalt));
  source.addEventListener("ping", () => {
    status.textContent = "live";
  });
}

// ---------------------------------------------------------------- start

async function start() {
  setupAuth();
  setupHalt();
  setupRuns();
  try {
    await refreshRuns(); // first: the lists show the current run
  } catch (err) {
    showMessage(`Could not load the runs: ${err.message}`, "error");
  }
  connectStream();
  await reloadAll(); // the initial load; afterwards the stream says what to read
}

document.addEventListener("DOMContentLoaded", start);
