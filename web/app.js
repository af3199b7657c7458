// The demo storefront's logic: what a flash-sale page must do against the seckill gateway.
//
// - Count down against the gateway's clock (`server_time`), never the buyer's.
// - Enable "Buy" when the sale opens; send one attempt per click.
// - Show every outcome the contract has: won (202, or 200 with the order the buyer already
//   holds), sold out, limit reached, ended; on 429/503 wait `Retry-After` seconds plus jitter
//   (so a crowd told "1 s" does not come back in the same millisecond) and try again.
// - After an uncertain answer (network error, timeout, 5xx without an answer), poll
//   `GET /v1/activities/{id}/order` until the buyer knows whether they won.
"use strict";

const API = ""; // same origin; a page on another origin sets the gateway's URL here (CORS)
const ATTEMPT_TIMEOUT_MS = 5000;
const POLL_MS = 1000;
const REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);

const page = {
  activity: null,
  token: null,
  view: null, // the last GET /v1/activities/{id}
  offsetMs: 0, // server clock minus ours
  busy: false, // an attempt (or its retries, or its polling) is running
  done: false, // the buyer knows their outcome
};

function readLocation() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  page.activity = query.get("activity") || sessionStorage.getItem("seckill.activity");
  page.token = fragment.get("token") || sessionStorage.getItem("seckill.token");
  if (page.activity) sessionStorage.setItem("seckill.activity", page.activity);
  if (page.token) sessionStorage.setItem("seckill.token", page.token);
}

function showLogin() {
  const form = $("login");
  form.hidden = false;
  $("activity-input").value = page.activity || "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("seckill.activity", $("activity-input").value.trim());
    sessionStorage.setItem("seckill.token", $("token-input").value.trim());
    location.search = "?activity=" + encodeURIComponent($("activity-input").value.trim());
  });
}

function serverNow() {
  return Date.now() + page.offsetMs;
}

function setOutcome(state, text) {
  const outcome = $("outcome");
  outcome.dataset.state = state;
  outcome.textContent = text;
}

function showError(text) {
  const error = $("error");
  error.hidden = !text;
  error.textContent = text || "";
}

function formatPrice(cents) {
  return (cents / 100).toFixed(2);
}

function formatCountdown(ms) {
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return (h > 0 ? h + ":" : "") + two(m) + ":" + two(s);
}

async function api(method, path, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs || ATTEMPT_TIMEOUT_MS);
  const headers = {};
  if (page.token) headers["Authorization"] = "Bearer " + page.token;
  try {
    const response = await fetch(API + path, { method, headers, signal: controller.signal });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null; // a proxy's HTML error page: treated as no answer
    }
    return { status: response.status, body, retryAfter: response.headers.get("Retry-After") };
  } finally {
    clearTimeout(timer);
  }
}

// The activity, and the clock offset: the server's time is taken at the middle of the round trip.
async function refresh() {
  const sent = Date.now();
  const reply = await api("GET", "/v1/activities/" + encodeURIComponent(page.activity));
  const received = Date.now();
  if (reply.status !== 200 || !reply.body) {
    const code = reply.body && reply.body.error;
    throw new Error(code === "activity_not_found" ? "no such sale: " + page.activity : "the shop did not answer (" + reply.status + ")");
  }
  page.view = reply.body;
  page.offsetMs = Date.parse(reply.body.server_time) - (sent + received) / 2;
  render();
}

function render() {
  const view = page.view;
  if (!view) return;
  $("name").textContent = view.name;
  $("price").textContent = formatPrice(view.price_cents);
  $("stock").textContent = view.stock_left;
  $("stock-total").textContent = view.stock_total;
  const now = serverNow();
  const startsAt = Date.parse(view.starts_at);
  const endsAt = Date.parse(view.ends_at);
  let state = view.state;
  // Between refreshes the page's own (corrected) clock decides when the sale opens or ends.
  if (state === "upcoming" && now >= startsAt) state = "open";
  if ((state === "open" || state === "upcoming") && now >= endsAt) state = "ended";
  const stateEl = $("state");
  stateEl.dataset.state = state;
  stateEl.textContent = {
    upcoming: "The sale opens in",
    open: "On sale now",
    sold_out: "Sold out",
    ended: "The sale has ended",
  }[state] || state;
  const countdown = $("countdown");
  countdown.hidden = state !== "upcoming";
  if (state === "upcoming") countdown.textContent = formatCountdown(startsAt - now);
  $("buy").disabled = state !== "open" || page.busy || page.done;
  if (!page.busy && !page.done && (state === "sold_out" || state === "ended") && $("outcome").dataset.state === "idle") {
    setOutcome(state, state === "sold_out" ? "Sold out." : "The sale has ended.");
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Retry-After seconds (at least 1) plus up to a second of jitter.
function backoffMs(retryAfter) {
  const seconds = Math.max(1, parseInt(retryAfter, 10) || 1);
  return seconds * 1000 + Math.floor(Math.random() * 1000);
}

function won(orderId, text) {
  page.done = true;
  setOutcome("won", text);
  $("order").hidden = false;
  $("order-id").textContent = orderId;
}

// One click: attempt until an outcome is known.
async function buy() {
  page.busy = true;
  render();
  try {
    for (;;) {
      let reply;
      try {
        reply = await api("POST", "/v1/activities/" + encodeURIComponent(page.activity) + "/orders");
      } catch (_) {
        reply = null; // timed out or the connection failed: did the attempt win?
      }
      if (reply === null || (reply.status >= 500 && reply.status !== 503) || !reply.body) {
        if (await settleUncertain()) return;
        continue; // not won: the attempt never counted, try again
      }
      const code = reply.body.error;
      switch (reply.status) {
        case 202:
          return won(reply.body.order_id, "You won! Your order is queued.");
        case 200:
          return won(reply.body.order_id, "You already hold this order (" + reply.body.status + ").");
        case 409:
          page.done = true;
          if (code === "limit_exceeded") return setOutcome("limit_exceeded", "Limit reached: you hold as many as one buyer may.");
          return setOutcome("sold_out", "Sold out.");
        case 410:
          page.done = true;
          return setOutcome("ended", "The sale has ended.");
        case 403: {
          // Clicked a hair before the gateway's opening: wait for it.
          const wait = Date.parse(page.view.starts_at) - serverNow();
          setOutcome("busy", "Not open yet, retrying…");
          await sleep(Math.max(wait, 0) + Math.floor(Math.random() * 300));
          continue;
        }
        case 429:
        case 503: {
          const wait = backoffMs(reply.retryAfter);
          setOutcome("busy", "Busy, retrying in " + Math.ceil(wait / 1000) + " s…");
          await sleep(wait);
          continue;
        }
        case 401:
          page.done = true;
          return setOutcome("error", "Your sign-in is not valid (" + (reply.body.detail || code) + ").");
        default:
          page.done = true;
          return setOutcome("error", (reply.body.detail || code || "unexpected answer " + reply.status) + ".");
      }
    }
  } finally {
    page.busy = false;
    render();
    // The outcome changed the stock (a win, or the sale sold out): show it now, not at the
    // next periodic refresh.
    refresh().catch((error) => showError(error.message));
  }
}

// After an uncertain answer: ask for the buyer's order until the gateway says. True when the
// outcome is known (won); false when the buyer holds nothing there (the attempt did not count).
async function settleUncertain() {
  setOutcome("checking", "No answer; checking whether your order went through…");
  for (;;) {
    let reply = null;
    try {
      reply = await api("GET", "/v1/activities/" + encodeURIComponent(page.activity) + "/order");
    } catch (_) {
      reply = null;
    }
    if (reply && reply.status === 200 && reply.body) {
      won(reply.body.order_id, "You won! Your order is " + reply.body.status + ".");
      return true;
    }
    if (reply && reply.status === 404) return false;
    await sleep(reply && reply.retryAfter ? backoffMs(reply.retryAfter) : POLL_MS + Math.floor(Math.random() * 500));
  }
}

async function start() {
  readLocation();
  if (!page.activity || !page.token) {
    showLogin();
    if (!page.activity) return;
  }
  $("buy").addEventListener("click", () => {
    if (!page.busy && !page.done) buy();
  });
  for (;;) {
    try {
      await refresh();
      showError("");
      break;
    } catch (error) {
      showError(error.message);
      await sleep(REFRESH_MS);
    }
  }
  setInterval(render, 250);
  setInterval(() => refresh().catch((error) => showError(error.message)), REFRESH_MS);
}

start();
