// Mnemo's dashboard: plain JavaScript, no build step, no library. Every piece of data
// comes from the REST API with the key the user signed in with; text from memories is
// only ever set as textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 20;
const FEED_MAX = 100;
const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const state = {
  key: null,
  scope: "read",
  view: "memories",
  page: 1,
  total: 0,
  // What the memories view shows: a list (page, facets) or search results.
  listing: "list",
  tagFilter: [],
  newCount: 0,
  lastEventId: null,
  source: null,
  retry: 500,
  retryTimer: null,
  memory: null,
  bulkMatched: 0,
};

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function status(text) {
  $("status").textContent = text || "";
}

function age(epoch) {
  const secs = Date.now() / 1000 - epoch;
  if (secs < 60) return "just now";
  const units = [[31536000, "year"], [2592000, "month"], [86400, "day"], [3600, "hour"], [60, "minute"]];
  for (const [size, name] of units) {
    if (secs >= size) {
      const n = Math.floor(secs / size);
      return `${n} ${name}${n === 1 ? "" : "s"} ago`;
    }
  }
  return "";
}

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString();
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(secs) {
  secs = Math.floor(secs);
  const d = Math.floor(secs / 86400), hr = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60);
  return d ? `${d} d ${hr} h` : hr ? `${hr} h ${m} min` : `${m} min ${secs % 60} s`;
}

function splitTags(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

function preview(text, n = 240) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > n ? flat.slice(0, n) + "…" : flat;
}

// ---------- API ----------

class ApiFailure extends Error {
  constructor(status, body) {
    super((body && body.message) || `the server answered ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiFailure(0, { message: "cannot reach the server; check that it is running" });
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!response.ok) {
    if (response.status === 401 && state.key && path !== "/api/health/detailed") signOut("Your key is no longer accepted. Sign in again.");
    throw new ApiFailure(response.status, data);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

// ---------- signing in ----------

async function signIn(key, remember) {
  state.key = key;
  try {
    await api("GET", "/api/health/detailed");
    state.scope = (await api("GET", "/api/auth/scope")).scope;
  } catch (e) {
    state.key = null;
    if (e.status === 401 || e.status === 403) throw new Error("That key was not accepted by this server. Check it and try again.");
    if (e.status === 429) throw new Error("Too many wrong keys from this address; wait a minute and try again.");
    if (e.status === 503) throw new Error("The server is still starting; try again in a moment.");
    throw e;
  }
  sessionStorage.setItem("mnemo.key", key);
  if (remember) localStorage.setItem("mnemo.key", key);
  else localStorage.removeItem("mnemo.key");
  enter();
}

function signOut(message) {
  sessionStorage.removeItem("mnemo.key");
  localStorage.removeItem("mnemo.key");
  state.key = null;
  closeFeed();
  $("app").hidden = true;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("signin-key").value = "";
  $("signin-key").focus();
}

function enter() {
  document.body.dataset.scope = state.scope;
  const canWrite = state.scope === "write" || state.scope === "admin";
  for (const el of document.querySelectorAll(".needs-write")) el.hidden = !canWrite;
  for (const el of document.querySelectorAll(".needs-admin")) el.hidden = state.scope !== "admin";
  $("scope-badge").textContent = `${state.scope} key`;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("nav").hidden = false;
  $("who").hidden = false;
  openFeed();
  route();
}

// ---------- views ----------

const VIEWS = ["memories", "memory", "add", "delete", "charts", "server", "keys"];

function route() {
  if (!state.key) return;
  const [, name, arg] = (location.hash || "#/memories").split("/");
  let view = VIEWS.includes(name) ? name : "memories";
  const canWrite = state.scope !== "read";
  if ((view === "add" || view === "delete") && !canWrite) view = "memories";
  if (view === "keys" && state.scope !== "admin") view = "memories";
  state.view = view;
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  status("");
  const load = {
    memories: loadMemories,
    memory: () => loadMemory(decodeURIComponent(arg || "")),
    add: () => {},
    delete: () => {},
    charts: loadCharts,
    server: loadServer,
    keys: loadKeys,
  }[view];
  Promise.resolve(load()).catch((e) => status(e.message));
}

// The current view again, after a resync or a reconnect that may have missed things.
function reload() {
  route();
}

// ---------- memories: list, search, facets ----------

function filters() {
  return {
    tags: splitTags($("f-tags").value),
    tag_match: $("f-match").value,
    memory_type: $("f-type").value.trim(),
    time: $("f-time").value.trim(),
  };
}

async function loadMemories() {
  const q = $("q").value.trim();
  const f = filters();
  clearNew();
  if (q || f.time) return runSearch(q, f);
  state.listing = "list";
  const data = await api("GET", "/api/memories?" + query({
    page: state.page, page_size: PAGE_SIZE, tag: f.tags.join(","), tag_match: f.tag_match, memory_type: f.memory_type,
  }));
  renderResults($("results"), data.memories.map((memory) => ({ memory })));
  const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
  state.total = data.total;
  summarise();
  $("page-info").textContent = `Page ${state.page} of ${pages}`;
  $("prev").disabled = state.page <= 1;
  $("next").disabled = !data.has_more;
  $("prev").parentElement.hidden = false;
  await loadFacets();
}

function summarise() {
  $("list-summary").textContent = `${state.total} memor${state.total === 1 ? "y" : "ies"}, newest first`;
}

async function runSearch(q, f) {
  state.listing = "search";
  const mode = $("mode").value;
  let data;
  if (q) {
    data = await api("POST", "/api/search", {
      query: q, mode, n_results: 50, tags: f.tags, tag_match: f.tag_match,
      memory_type: f.memory_type || null, time: f.time || undefined, tz,
    });
  } else {
    data = await api("POST", "/api/search/by-time", { query: f.time, n_results: 100, tz });
  }
  renderResults($("results"), data.results, mode !== "exact" && q);
  $("list-summary").textContent = `${data.results.length} result${data.results.length === 1 ? "" : "s"} (${data.search_type}, ${Math.round(data.processing_time_ms)} ms)`;
  $("prev").parentElement.hidden = true;
  await loadFacets();
}

function memoryItem(memory, score, fresh) {
  const li = h("li", { "data-hash": memory.content_hash, class: fresh ? "new" : null },
    h("a", { class: "title", href: `#/memory/${encodeURIComponent(memory.content_hash)}`, text: preview(memory.content) }),
    h("div", { class: "meta" },
      score === undefined ? null : h("span", { class: "score", title: "similarity score", text: score.toFixed(3) }),
      memory.memory_type ? h("span", { class: "type", text: memory.memory_type }) : null,
      h("time", { datetime: memory.created_at_iso, title: when(memory.created_at), text: age(memory.created_at) }),
      memory.tags.map((t) => h("span", { class: "tag", text: t }))));
  return li;
}

function renderResults(list, results, withScore) {
  list.replaceChildren(...results.map((r) => memoryItem(r.memory, withScore ? r.similarity_score : undefined)));
  if (!results.length) list.append(h("li", { class: "muted", text: "Nothing here." }));
}

async function loadFacets() {
  const [tags, types] = await Promise.all([api("GET", "/api/tags"), api("GET", "/api/types")]);
  const active = new Set(splitTags($("f-tags").value));
  $("tag-facets").replaceChildren(...tags.tags.slice(0, 30).map(({ tag, count }) =>
    h("li", {}, h("button", {
      type: "button", "aria-pressed": active.has(tag) ? "true" : "false",
      onclick: () => toggleTag(tag),
    }, `${tag} (${count})`))));
  const type = $("f-type").value.trim();
  $("type-facets").replaceChildren(...types.slice(0, 30).map(({ memory_type, count }) =>
    h("li", {}, h("button", {
      type: "button", "aria-pressed": type === memory_type ? "true" : "false",
      onclick: () => { $("f-type").value = type === memory_type ? "" : memory_type; state.page = 1; loadMemories(); },
    }, `${memory_type} (${count})`))));
  $("type-options").replaceChildren(...types.map(({ memory_type }) => h("option", { value: memory_type })));
}

function toggleTag(tag) {
  const tags = splitTags($("f-tags").value);
  const i = tags.indexOf(tag);
  if (i >= 0) tags.splice(i, 1); else tags.push(tag);
  $("f-tags").value = tags.join(", ");
  state.page = 1;
  loadMemories().catch((e) => status(e.message));
}

function clearNew() {
  state.newCount = 0;
  $("new-marker").hidden = true;
}

// A memory stored elsewhere: on the first page of an unfiltered list it goes in at the
// top, and the reader's scroll position is kept (CSS scroll anchoring, plus a manual
// correction for browsers without it); a marker says how many arrived.
async function liveStored(hash) {
  if (state.view !== "memories" || state.listing !== "list" || state.page !== 1) return;
  const f = filters();
  if (f.tags.length || f.memory_type) return;
  const list = $("results");
  if (list.querySelector(`li[data-hash="${CSS.escape(hash)}"]`)) return;
  const memory = await api("GET", `/api/memories/${encodeURIComponent(hash)}`);
  const before = window.scrollY;
  const first = list.firstElementChild;
  const anchorTop = first ? first.getBoundingClientRect().top : 0;
  if (first && first.classList.contains("muted")) first.remove();
  const item = memoryItem(memory, undefined, true);
  item.dataset.at = Date.now();
  list.prepend(item);
  if (before > 0 && first && first.isConnected) {
    const shift = first.getBoundingClientRect().top - anchorTop;
    if (shift > 0 && window.scrollY === before) window.scrollTo(0, before + shift);
  }
  state.newCount++;
  state.total++;
  summarise();
  loadFacets().catch(() => {});
  const marker = $("new-marker");
  marker.textContent = `${state.newCount} new ↑`;
  marker.hidden = false;
}

async function liveUpdated(hash) {
  const old = $("results").querySelector(`li[data-hash="${CSS.escape(hash)}"]`);
  if (old) {
    const memory = await api("GET", `/api/memories/${encodeURIComponent(hash)}`);
    const score = old.querySelector(".score");
    old.replaceWith(memoryItem(memory, score ? Number(score.textContent) : undefined, old.classList.contains("new")));
  }
  if (state.view === "memory" && state.memory && state.memory.content_hash === hash) loadMemory(hash);
}

function liveDeleted(hash) {
  const old = $("results").querySelector(`li[data-hash="${CSS.escape(hash)}"]`);
  if (old) old.classList.add("gone");
  if (state.view === "memory" && state.memory && state.memory.content_hash === hash) status("This memory was just deleted.");
}

// ---------- one memory ----------

async function loadMemory(hash) {
  const memory = await api("GET", `/api/memories/${encodeURIComponent(hash)}`);
  state.memory = memory;
  $("m-content").textContent = memory.content;
  $("m-tags").replaceChildren(...(memory.tags.length ? memory.tags.map((t) => h("span", { class: "tag", text: t }), " ") : ["none"]));
  $("m-type").textContent = memory.memory_type || "none";
  $("m-created").textContent = `${when(memory.created_at)} (${age(memory.created_at)})`;
  $("m-updated").textContent = `${when(memory.updated_at)} (${age(memory.updated_at)})`;
  $("m-hash").textContent = memory.content_hash;
  $("m-metadata").textContent = JSON.stringify(memory.metadata, null, 2);
  $("e-tags").value = memory.tags.join(", ");
  $("e-type").value = memory.memory_type || "";
  $("e-metadata").value = JSON.stringify(memory.metadata, null, 2);
  $("edit-error").textContent = "";
  const near = await api("GET", `/api/search/similar/${encodeURIComponent(hash)}?n_results=5`);
  renderResults($("neighbours"), near.results, true);
}

function parseMetadata(text) {
  if (!text.trim()) return {};
  let value;
  try { value = JSON.parse(text); } catch (e) { throw new Error(`Metadata is not valid JSON: ${e.message}`); }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("Metadata must be a JSON object, like {\"source\": \"notes\"}.");
  return value;
}

async function saveEdit(event) {
  event.preventDefault();
  const memory = state.memory;
  $("edit-error").textContent = "";
  try {
    const metadata = parseMetadata($("e-metadata").value);
    // Keys removed in the editor are removed on the server: a merge needs them as null.
    for (const k of Object.keys(memory.metadata)) if (!(k in metadata)) metadata[k] = null;
    const type = $("e-type").value.trim();
    await api("PUT", `/api/memories/${encodeURIComponent(memory.content_hash)}`, {
      tags: splitTags($("e-tags").value), memory_type: type || null, metadata,
    });
    status("Saved.");
    await loadMemory(memory.content_hash);
  } catch (e) {
    $("edit-error").textContent = e.message;
  }
}

async function deleteOne() {
  const memory = state.memory;
  if (!confirm(`Delete this memory?\n\n${preview(memory.content, 120)}`)) return;
  try {
    await api("DELETE", `/api/memories/${encodeURIComponent(memory.content_hash)}`);
    location.hash = "#/memories";
    status("Deleted.");
  } catch (e) {
    $("edit-error").textContent = e.message;
  }
}

async function addMemory(event) {
  event.preventDefault();
  $("add-error").textContent = "";
  try {
    const type = $("a-type").value.trim();
    const body = {
      content: $("a-content").value, tags: splitTags($("a-tags").value),
      metadata: parseMetadata($("a-metadata").value),
    };
    if (type) body.memory_type = type;
    const result = await api("POST", "/api/memories", body);
    $("add-form").reset();
    location.hash = `#/memory/${encodeURIComponent(result.content_hash)}`;
    status("Stored.");
  } catch (e) {
    $("add-error").textContent = e.status === 409 ? "A memory with exactly this content already exists." : e.message;
  }
}

// ---------- delete by filter ----------

function bulkFilter() {
  const f = {
    tags: splitTags($("b-tags").value), tag_match: $("b-match").value,
    memory_type: $("b-type").value.trim() || undefined, time: $("b-time").value.trim() || undefined, tz,
  };
  if (!f.tags.length && !f.memory_type && !f.time) throw new Error("Pick at least one filter: tags, type or a time.");
  return f;
}

async function bulkPreview(event) {
  event.preventDefault();
  $("bulk-error").textContent = "";
  $("bulk-delete").disabled = true;
  try {
    const result = await api("POST", "/api/memories/delete", { ...bulkFilter(), dry_run: true });
    state.bulkMatched = result.matched;
    $("bulk-result").textContent = result.matched === 0
      ? "No memory matches."
      : `${result.matched} memor${result.matched === 1 ? "y matches" : "ies match"}. Nothing has been deleted yet.`;
    $("bulk-delete").textContent = `Delete ${result.matched} memor${result.matched === 1 ? "y" : "ies"}`;
    $("bulk-delete").disabled = result.matched === 0;
  } catch (e) {
    $("bulk-error").textContent = e.message;
  }
}

async function bulkDelete() {
  $("bulk-error").textContent = "";
  let filter;
  try { filter = bulkFilter(); } catch (e) { $("bulk-error").textContent = e.message; return; }
  if (!confirm(`Delete ${state.bulkMatched} memories? This cannot be undone.`)) return;
  $("bulk-delete").disabled = true;
  let deleted = 0;
  try {
    // The server deletes at most 100 per call; the bound stops a filter that keeps
    // matching new writes from looping for ever.
    for (let round = 0; round < 1000; round++) {
      const result = await api("POST", "/api/memories/delete", { ...filter, dry_run: false, limit: 100 });
      deleted += result.content_hashes.length;
      if (!result.has_more || !result.content_hashes.length) break;
    }
    $("bulk-result").textContent = `Deleted ${deleted} memor${deleted === 1 ? "y" : "ies"}.`;
  } catch (e) {
    $("bulk-error").textContent = `${e.message} (${deleted} deleted before the error)`;
  }
}

// ---------- charts ----------

async function loadCharts() {
  const [daily, tags] = await Promise.all([
    api("GET", "/api/stats/daily?" + query({ days: 90, tz })),
    api("GET", "/api/tags"),
  ]);
  $("chart-daily").replaceChildren(dailyChart(daily.days));
  $("chart-tags").replaceChildren(tagChart(tags.tags.slice(0, 15)));
}

function dailyChart(days) {
  const W = 720, H = 200, left = 36, bottom = 24, top = 10;
  const max = Math.max(1, ...days.map((d) => d.count));
  const bw = (W - left) / days.length;
  const total = days.reduce((n, d) => n + d.count, 0);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${total} memories stored in the last ${days.length} days; at most ${max} in one day` });
  svg.append(s("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }));
  svg.append(s("text", { x: left - 6, y: top + 8, "text-anchor": "end" }, max));
  svg.append(s("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, 0));
  days.forEach((d, i) => {
    const bh = (d.count / max) * (H - bottom - top);
    const bar = s("rect", { class: "bar", x: left + i * bw + 1, y: H - bottom - bh, width: Math.max(1, bw - 2), height: bh });
    bar.append(s("title", {}, `${d.date}: ${d.count}`));
    svg.append(bar);
  });
  const labels = [[0, "start"], [Math.floor(days.length / 2), "middle"], [days.length - 1, "end"]];
  for (const [i, anchor] of labels) {
    const x = anchor === "start" ? left + i * bw : anchor === "end" ? left + (i + 1) * bw : left + i * bw + bw / 2;
    if (days[i]) svg.append(s("text", { x, y: H - 6, "text-anchor": anchor }, days[i].date));
  }
  return svg;
}

function tagChart(tags) {
  if (!tags.length) return h("p", { class: "muted", text: "No tags yet." });
  const W = 720, row = 24, label = 180;
  const max = Math.max(...tags.map((t) => t.count));
  const svg = s("svg", { viewBox: `0 0 ${W} ${tags.length * row + 4}`, role: "img", "aria-label": "Most used tags: " + tags.map((t) => `${t.tag} ${t.count}`).join(", ") });
  tags.forEach((t, i) => {
    const y = i * row + 2;
    const w = ((W - label - 50) * t.count) / max;
    svg.append(s("text", { x: label - 8, y: y + 15, "text-anchor": "end" }, t.tag.length > 26 ? t.tag.slice(0, 25) + "…" : t.tag));
    svg.append(s("rect", { class: "bar", x: label, y, width: Math.max(1, w), height: row - 6 }));
    svg.append(s("text", { x: label + w + 6, y: y + 15 }, t.count));
  });
  return svg;
}

// ---------- server ----------

async function loadServer() {
  const health = await api("GET", "/api/health/detailed");
  const facts = [
    ["Version", health.version],
    ["Status", health.status],
    ["Model", `${health.model} (${health.dimension} dimensions)`],
    ["Memories", health.memories.toLocaleString()],
    ["Database size", bytes(health.database_bytes)],
    ["Backend", health.storage && health.storage.backend],
    ["Uptime", duration(health.uptime_seconds)],
    ["TLS pin", health.tls_pin || "not serving HTTPS"],
  ];
  if (state.scope === "admin") {
    try {
      const stats = await api("GET", "/api/events/stats");
      facts.push(["Live subscribers", String(stats.subscribers)]);
    } catch (e) {
      facts.push(["Live subscribers", e.message]);
    }
  }
  $("server-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v ?? "" })]));
}

// ---------- keys ----------

async function loadKeys() {
  const data = await api("GET", "/api/keys");
  const rows = data.keys.map((k) => h("tr", { "data-name": k.name },
    h("td", { text: k.name }), h("td", { text: k.scope }),
    h("td", { text: new Date(k.created_at).toLocaleString() }), h("td", {}, h("code", { text: k.id })),
    h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name}`, onclick: () => revokeKey(k.name) }, "Revoke"))));
  $("key-rows").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "muted", text: "No managed keys yet." }))]));
}

async function addKey(event) {
  event.preventDefault();
  $("key-error").textContent = "";
  try {
    const created = await api("POST", "/api/keys", { name: $("k-name").value.trim(), scope: $("k-scope").value });
    $("new-key-value").value = created.key;
    $("new-key").hidden = false;
    $("k-name").value = "";
    await loadKeys();
    $("new-key-value").focus();
    $("new-key-value").select();
  } catch (e) {
    $("key-error").textContent = e.message;
  }
}

async function copyKey() {
  const input = $("new-key-value");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (e) {
    input.select();
    document.execCommand("copy");
  }
  $("copy-key").textContent = "Copied";
}

async function revokeKey(name) {
  if (!confirm(`Revoke the key "${name}"? Clients using it stop working at once.`)) return;
  try {
    await api("DELETE", `/api/keys/${encodeURIComponent(name)}`);
    $("new-key").hidden = true;
    await loadKeys();
  } catch (e) {
    $("key-error").textContent = e.message;
  }
}

// ---------- live feed ----------

// A ticket is single use, so EventSource's own reconnect (same URL) is refused: on any
// error the page closes the source, gets a new ticket and resumes after the last id.
async function openFeed() {
  clearTimeout(state.retryTimer);
  if (!state.key) return;
  try {
    const { ticket } = await api("POST", "/api/events/ticket");
    const url = "/api/events?" + query({ ticket, last_event_id: state.lastEventId });
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("connection_established", (e) => {
      const data = JSON.parse(e.data);
      const resumed = state.lastEventId !== null;
      if (resumed) $("feed").dataset.resumedAt = state.lastEventId;
      else state.lastEventId = data.head_seq;
      state.retry = 500;
      feedState("on", resumed ? "live (resumed)" : "live");
    });
    for (const kind of ["memory_stored", "memory_updated", "memory_deleted"]) {
      source.addEventListener(kind, (e) => onChange(kind, e));
    }
    source.addEventListener("resync", (e) => {
      state.lastEventId = Number(e.lastEventId);
      // A restore says which backup; a pruned replay says nothing of its own.
      let why = "the server could not replay everything missed";
      try {
        const data = JSON.parse(e.data);
        if (data.reason === "restore") why = `restored from backup ${data.backup_id}`;
      } catch (_) { /* not JSON: keep the general reason */ }
      feedItem("resync", `${why}; the view was reloaded`, null, e.lastEventId || null);
      reload();
    });
    source.onerror = () => {
      source.close();
      if (state.source === source) scheduleReconnect();
    };
  } catch (e) {
    if (state.key) scheduleReconnect();
  }
}

function scheduleReconnect() {
  feedState("off", "disconnected; reconnecting");
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(openFeed, state.retry);
  state.retry = Math.min(state.retry * 2, 10000);
}

function closeFeed() {
  clearTimeout(state.retryTimer);
  if (state.source) state.source.close();
  state.source = null;
  state.lastEventId = null;
}

function feedState(cls, text) {
  const dot = $("feed-state");
  dot.className = `dot ${cls}`;
  dot.title = text;
  dot.setAttribute("aria-label", text);
  $("feed").dataset.state = cls;
}

function onChange(kind, event) {
  const data = JSON.parse(event.data);
  const seq = Number(event.lastEventId);
  state.lastEventId = seq;
  const short = kind.replace("memory_", "");
  const changed = kind === "memory_updated" && data.tags ? `tags: ${data.tags.join(", ")}` : null;
  const text = data.content_preview || changed || data.content_hash.slice(0, 12);
  feedItem(short, text, data.content_hash, seq);
  const hash = data.content_hash;
  const follow = { memory_stored: liveStored, memory_updated: liveUpdated, memory_deleted: liveDeleted }[kind];
  Promise.resolve(follow(hash)).catch(() => {});
}

function feedItem(kind, text, hash, seq) {
  const li = h("li", { "data-kind": kind, "data-seq": seq ?? null, "data-hash": hash, "data-at": Date.now() },
    h("span", { class: `kind ${kind}`, text: kind }),
    hash && kind !== "deleted" ? h("a", { href: `#/memory/${encodeURIComponent(hash)}`, text }) : h("span", { text }),
    h("div", { class: "meta" }, h("time", { text: new Date().toLocaleTimeString() }), seq ? `#${seq}` : null));
  const list = $("feed-items");
  list.prepend(li);
  while (list.children.length > FEED_MAX) list.lastElementChild.remove();
}

// ---------- wiring ----------

function wire() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("signin-error").textContent = "";
    const key = $("signin-key").value.trim();
    try {
      await signIn(key, $("signin-remember").checked);
      $("signin-key").value = "";
    } catch (err) {
      $("signin-error").textContent = err.message;
      $("signin-key").select();
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); state.page = 1; loadMemories().catch((err) => status(err.message)); });
  $("clear-filters").addEventListener("click", () => {
    for (const id of ["q", "f-tags", "f-type", "f-time"]) $(id).value = "";
    state.page = 1;
    loadMemories().catch((err) => status(err.message));
  });
  $("prev").addEventListener("click", () => { state.page = Math.max(1, state.page - 1); loadMemories().catch((err) => status(err.message)); });
  $("next").addEventListener("click", () => { state.page++; loadMemories().catch((err) => status(err.message)); });
  $("new-marker").addEventListener("click", () => { clearNew(); window.scrollTo({ top: 0 }); $("results").querySelector("a")?.focus(); });
  $("edit-form").addEventListener("submit", saveEdit);
  $("delete-one").addEventListener("click", deleteOne);
  $("add-form").addEventListener("submit", addMemory);
  $("bulk-form").addEventListener("submit", bulkPreview);
  $("bulk-form").addEventListener("input", () => { $("bulk-delete").disabled = true; $("bulk-result").textContent = ""; });
  $("bulk-delete").addEventListener("click", bulkDelete);
  $("key-form").addEventListener("submit", addKey);
  $("copy-key").addEventListener("click", copyKey);
  window.addEventListener("hashchange", route);
}

async function start() {
  wire();
  const saved = sessionStorage.getItem("mnemo.key") || localStorage.getItem("mnemo.key");
  if (!saved) {
    $("signin-key").focus();
    return;
  }
  try {
    await signIn(saved, localStorage.getItem("mnemo.key") === saved);
  } catch (e) {
    signOut(e.message);
  }
}

start();
