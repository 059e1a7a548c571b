// The Edge console: a read-mostly view of this host's control API. Every value
// shown comes from /healthz or /v1/* with the operator's token; every value is
// set as text, never as markup.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "edge.token";

const state = {
  selected: null,
  // The last /v1/traffic snapshot and when it was taken, for rates.
  lastTraffic: null,
  timer: null,
};

function $(selector) {
  return document.querySelector(selector);
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function row(cells, attrs) {
  const tr = el("tr", null, attrs);
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.appendChild(cell);
    else td.textContent = cell === undefined || cell === null ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// --- the token -----------------------------------------------------------

/** Moves a token given in the address (`#token=...`) to session storage. */
function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return false;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  // Keep the token out of the address bar and history.
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function showLogin(message) {
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  stopRefreshing();
}

function showApp() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
}

class Unauthorized extends Error {}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers = Object.assign({ Authorization: "Bearer " + token() }, opts.headers);
  const resp = await fetch(path, opts);
  if (resp.status === 401) throw new Unauthorized("the token was refused");
  const text = await resp.text();
  const body = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    const error = body && body.error ? body.error.code + ": " + body.error.message : resp.statusText;
    throw new Error(error);
  }
  return body;
}

// --- what the page shows -------------------------------------------------

async function refreshHealth() {
  try {
    const resp = await fetch("/healthz");
    const health = await resp.json();
    $("#health").textContent = "host " + health.status + " · store " + health.store + " · revision " + health.revision;
    $("#health").className = health.store === "connected" ? "ok" : "error";
  } catch (e) {
    $("#health").textContent = "host unreachable";
    $("#health").className = "error";
  }
}

async function refreshList() {
  const list = await api("/v1/distributions");
  const items = list.items || [];
  $("#empty").hidden = items.length > 0;
  fill(
    $("#distributions tbody"),
    items.map((d) => {
      const link = el("a", d.id, { href: "#/distributions/" + encodeURIComponent(d.id) });
      const tr = row(
        [link, d.domain_name, (d.aliases || []).join(", "), d.status, d.etag, d.enabled ? "yes" : "no", d.staging ? "staging" : "primary", d.comment || ""],
        { "data-id": d.id },
      );
      tr.querySelector("td:nth-child(4)").className = d.status === "Deployed" ? "ok" : "pending";
      if (d.id === state.selected) tr.className = "selected";
      return tr;
    }),
  );
}

function ttl(behavior) {
  const show = (v, dflt) => (v === undefined || v === null ? dflt : v);
  return show(behavior.min_ttl, 0) + " / " + show(behavior.default_ttl, 86400) + " / " + show(behavior.max_ttl, 31536000);
}

function hooksText(hooks) {
  const parts = [];
  for (const event of ["viewer_request", "origin_request", "origin_response", "viewer_response"]) {
    const hook = hooks && hooks[event];
    if (hook) {
      let text = event.replace("_", "-") + ": " + hook.module;
      if (hook.cpu_budget_ms) text += " (" + hook.cpu_budget_ms + " ms)";
      parts.push(text);
    }
  }
  return parts.length ? parts.join("; ") : "none";
}

function ruleText(traffic) {
  if (!traffic) return "no traffic rule";
  if (traffic.type === "weight") {
    let text = (traffic.weight * 100).toFixed(2).replace(/\.?0+$/, "") + " % of viewers to staging";
    if (traffic.session_stickiness) text += ", sticky (idle " + traffic.session_stickiness.idle_ttl + " s)";
    return text;
  }
  if (traffic.type === "header") return "viewers sending " + traffic.header + ": " + traffic.value + " go to staging";
  return JSON.stringify(traffic);
}

function gateText(auto) {
  if (!auto) return "No automatic gate: staging's errors are not watched.";
  const pct = (auto.max_error_rate * 100).toFixed(2).replace(/\.?0+$/, "");
  return "Automatic gate: rolls back when staging's 5xx rate passes " + pct + " % over " + auto.window_s +
    " s, once it has at least " + auto.min_requests + " requests in that window.";
}

// Each address of an origin, healthy or not, as this host sees it.
function healthText(all, origin) {
  const found = (all || []).find((h) => h.origin === origin);
  const addresses = (found && found.addresses) || [];
  if (addresses.length === 0) return "not served here";
  return addresses.map((a) => a.address + ": " + (a.healthy ? "healthy" : "unhealthy")).join(", ");
}

async function refreshDetail() {
  const id = state.selected;
  if (!id) {
    $("#detail").hidden = true;
    return;
  }
  const d = await api("/v1/distributions/" + encodeURIComponent(id));
  const config = d.config || {};
  $("#detail").hidden = false;
  $("#detail-id").textContent = d.id;
  $("#detail-domain").textContent = d.domain_name;
  $("#detail-status").textContent = d.status;
  $("#detail-status").className = d.status === "Deployed" ? "ok" : "pending";
  $("#detail-etag").textContent = d.etag;
  $("#detail-modified").textContent = d.last_modified || "";

  fill(
    $("#origins tbody"),
    (config.origins || []).map((o) =>
      row([o.id, o.domain_name, o.protocol || "http", o.origin_path || "", healthText(d.origin_health, o.id)], { "data-origin": o.id }),
    ),
  );
  const behaviors = [Object.assign({ path_pattern: "* (default)" }, config.default_cache_behavior || {})].concat(config.cache_behaviors || []);
  fill(
    $("#behaviors tbody"),
    behaviors.map((b) => row([b.path_pattern, b.target_origin_id, ttl(b), hooksText(b.hooks)], { "data-path": b.path_pattern })),
  );
  fill(
    $("#hosts tbody"),
    (d.hosts || []).map((h) => row([h.id, h.revision, h.current ? "yes" : "not yet", h.last_seen || ""])),
  );

  // A staging distribution has no policy of its own: it serves the share of
  // its primary's viewers that the primary's policy sends it.
  let policyId = config.continuous_deployment_policy_id;
  let stagedBy = null;
  if (!policyId && d.staging) {
    const policies = await api("/v1/continuous-deployment-policies");
    stagedBy = (policies.items || []).find((p) => (p.config || {}).staging_distribution_id === id) || null;
    if (stagedBy) policyId = stagedBy.id;
  }
  $("#split-none").hidden = Boolean(policyId) || Boolean(d.staging);
  $("#split-staged").hidden = !d.staging;
  if (d.staging) {
    let primary = null;
    if (stagedBy) {
      const all = await api("/v1/distributions");
      for (const x of all.items || []) {
        if (x.id === id || x.staging) continue;
        const c = await api("/v1/distributions/" + encodeURIComponent(x.id) + "/config");
        if (c.continuous_deployment_policy_id === stagedBy.id) {
          primary = x;
          break;
        }
      }
    }
    $("#split-staged").textContent = stagedBy && primary
      ? "A staging distribution: it serves the share of " + primary.id + "'s viewers that policy " + stagedBy.id + " sends it, and no viewer otherwise."
      : "A staging distribution that no attached policy names: no viewer reaches it until a policy on its primary does.";
  }
  $("#split-policy").hidden = !policyId;
  if (policyId) {
    const policy = await api("/v1/continuous-deployment-policies/" + encodeURIComponent(policyId));
    const pc = policy.config || {};
    $("#split-id").textContent = policy.id;
    const gate = policy.status || {};
    let enabled = pc.enabled === false ? "disabled" : "enabled";
    if (gate.state === "RolledBack") enabled += ", rolled back by the gate" + (gate.reason ? ": " + gate.reason : "");
    $("#split-enabled").textContent = enabled;
    $("#split-enabled").className = gate.state === "RolledBack" ? "error" : "";
    $("#split-rule").textContent = ruleText(pc.traffic);
    $("#split-staging").textContent = pc.staging_distribution_id;
    $("#split-gate").textContent = gateText(pc.auto);
  }

  const invalidations = await api("/v1/distributions/" + encodeURIComponent(id) + "/invalidations");
  fill(
    $("#invalidations tbody"),
    (invalidations.items || []).map((i) => row([i.id, i.status, i.create_time, (i.paths || []).join(" "), i.dropped], { "data-invalidation": i.id })),
  );
}

function fmtRate(n) {
  return n.toFixed(1);
}

async function refreshRates() {
  const traffic = await api("/v1/traffic");
  const now = performance.now();
  const mine = (traffic.distributions || []).find((d) => d.id === state.selected);
  const last = state.lastTraffic;
  state.lastTraffic = { at: now, id: state.selected, arms: mine ? mine.arms : null };
  for (const arm of ["primary", "staging"]) {
    const tr = document.querySelector('#rates tr[data-arm="' + arm + '"]');
    const counts = mine ? mine.arms[arm] : { requests: 0, errors_5xx: 0, hits: 0 };
    tr.querySelector(".total").textContent = counts.requests;
    tr.querySelector(".errors").textContent = counts.errors_5xx;
    tr.querySelector(".hits").textContent = counts.hits;
    if (last && last.id === state.selected && last.arms && now > last.at) {
      const seconds = (now - last.at) / 1000;
      const requests = Math.max(0, counts.requests - last.arms[arm].requests);
      const errors = Math.max(0, counts.errors_5xx - last.arms[arm].errors_5xx);
      tr.querySelector(".rps").textContent = fmtRate(requests / seconds);
      tr.querySelector(".eps").textContent = fmtRate(errors / seconds);
      tr.querySelector(".erate").textContent = requests ? ((100 * errors) / requests).toFixed(1) + " %" : "–";
    }
  }
}

async function refresh() {
  try {
    await refreshHealth();
    await refreshList();
    await refreshDetail();
    if (state.selected) await refreshRates();
    showApp();
  } catch (e) {
    if (e instanceof Unauthorized) showLogin("The host refused that token.");
    else $("#health").textContent = "error: " + e.message;
  }
}

function startRefreshing() {
  stopRefreshing();
  refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

function stopRefreshing() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function route() {
  const match = /^#\/distributions\/(.+)$/.exec(location.hash);
  const selected = match ? decodeURIComponent(match[1]) : null;
  if (selected !== state.selected) {
    state.selected = selected;
    state.lastTraffic = null;
    $("#invalidate-result").textContent = "";
  }
}

async function invalidate(event) {
  event.preventDefault();
  const paths = $("#invalidate-paths")
    .value.split("\n")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  const result = $("#invalidate-result");
  try {
    const created = await api("/v1/distributions/" + encodeURIComponent(state.selected) + "/invalidations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths }),
    });
    result.textContent = "Invalidation " + created.id + ": " + created.status + ", " + created.dropped + " objects dropped";
    result.className = "ok";
    $("#invalidate-paths").value = "";
    await refreshDetail();
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The host refused that token.");
    result.textContent = e.message;
    result.className = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  route();
  window.addEventListener("hashchange", () => {
    if (takeTokenFromFragment()) return startRefreshing();
    route();
    refresh();
  });
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value);
    $("#token").value = "";
    startRefreshing();
  });
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("");
  });
  $("#invalidate-form").addEventListener("submit", invalidate);
  if (token()) startRefreshing();
  else {
    refreshHealth();
    showLogin("");
  }
});
