// The storefront (web/, served by the gateway under /demo/) in a real browser: Debian's
// Chromium, headless, driven by playwright-core. scripts/browser-check.sh starts the gateway,
// the writer and a sale of STOCK units that opens a few seconds later, mints one token per
// buyer, and runs this file with node's test runner.
//
// What a buyer sees is checked state by state: before the sale the countdown runs and the
// button stays disabled; when it opens every buyer (a browser context of their own, so each
// page has its own session storage) clicks at once; exactly STOCK pages show "won" with an
// order id that `seckillctl order show` knows, the others "sold out". A screenshot of each state
// goes to OUT.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const run = promisify(execFile);
const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (scripts/browser-check.sh sets it)`);
  return value;
};
const BASE = env("STOREFRONT_BASE");
const ACTIVITY = env("STOREFRONT_ACTIVITY");
const STOCK = Number(env("STOREFRONT_STOCK"));
const TOKENS = env("STOREFRONT_TOKENS").split(",");
const OUT = env("STOREFRONT_OUT");
const SECKILLCTL = env("SECKILLCTL");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Bounds for conditions waited on: the sale opens within OPENS_WITHIN_MS of the start.
const OPENS_WITHIN_MS = 90_000;
const OUTCOME_WITHIN_MS = 30_000;

test("buyers see the countdown, then exactly the stock's worth win and the rest see sold out", async (t) => {
  mkdirSync(OUT, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  t.after(() => browser.close());

  const pages = [];
  for (const token of TOKENS) {
    const context = await browser.newContext({ viewport: { width: 480, height: 560 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(error));
    await page.goto(`${BASE}/demo/?activity=${encodeURIComponent(ACTIVITY)}#token=${token}`);
    pages.push({ page, errors });
  }

  // Before the sale: the countdown runs against the gateway's clock, the button is disabled.
  const first = pages[0].page;
  for (const { page } of pages) {
    await page.waitForSelector('#state[data-state="upcoming"]', { timeout: 15_000 });
    assert.equal(await page.isDisabled("#buy"), true, "the button is disabled before the sale");
    // A buyer who came with a token is not asked for one.
    assert.equal(await page.isHidden("#login"), true, "the sign-in form stays hidden");
  }
  await first.waitForSelector("#countdown:not([hidden])");
  const before = await first.textContent("#countdown");
  assert.match(before, /^\d\d:\d\d$/, `a countdown, not ${JSON.stringify(before)}`);
  await first.waitForFunction(
    (shown) => document.querySelector("#countdown").textContent !== shown,
    before,
    { timeout: 5_000 },
  );
  assert.equal(await first.textContent("#name"), "Browser-check headphones");
  assert.equal(await first.textContent("#stock"), String(STOCK));
  await first.screenshot({ path: join(OUT, "countdown.png") });
  // Clicking a disabled button does nothing (playwright would wait for it: force the click).
  await first.click("#buy", { force: true });
  assert.equal(await first.getAttribute("#outcome", "data-state"), "idle");

  // The sale opens: every page enables its button by itself, and every buyer clicks at once.
  await Promise.all(
    pages.map(({ page }) => page.waitForSelector("#buy:not([disabled])", { timeout: OPENS_WITHIN_MS })),
  );
  await first.screenshot({ path: join(OUT, "open.png") });
  await Promise.all(pages.map(({ page }) => page.click("#buy")));

  const outcomes = await Promise.all(
    pages.map(async ({ page }) => {
      await page.waitForSelector('#outcome:is([data-state="won"], [data-state="sold_out"])', {
        timeout: OUTCOME_WITHIN_MS,
      });
      const state = await page.getAttribute("#outcome", "data-state");
      const orderId = state === "won" ? (await page.textContent("#order-id")).trim() : null;
      return { page, state, orderId };
    }),
  );
  const winners = outcomes.filter((o) => o.state === "won");
  const losers = outcomes.filter((o) => o.state === "sold_out");
  assert.equal(winners.length, STOCK, `exactly ${STOCK} winners: ${JSON.stringify(outcomes.map((o) => o.state))}`);
  assert.equal(losers.length, TOKENS.length - STOCK);
  // Each page shows the stock the outcome left: none.
  for (const { page } of outcomes) {
    await page.waitForFunction(() => document.querySelector("#stock").textContent === "0", null, {
      timeout: 10_000,
    });
  }
  await winners[0].page.screenshot({ path: join(OUT, "won.png") });
  await losers[0].page.screenshot({ path: join(OUT, "sold_out.png") });

  // Every order id a page shows is a real order, of this activity.
  const ids = new Set(winners.map((w) => w.orderId));
  assert.equal(ids.size, STOCK, "distinct order ids");
  for (const id of ids) {
    assert.match(id, /^[1-9][0-9]*$/);
    const { stdout } = await run(SECKILLCTL, ["order", "show", id]);
    assert.ok(stdout.includes(id) && stdout.includes(ACTIVITY), `seckillctl order show ${id}:\n${stdout}`);
  }
  // The losers' pages settle on "sold out" for the whole page once it refreshes.
  await losers[0].page.waitForSelector('#state[data-state="sold_out"]', { timeout: 10_000 });
  for (const { errors } of pages) assert.deepEqual(errors, [], "no script error on any page");
});
