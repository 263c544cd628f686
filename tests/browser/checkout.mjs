// By hand: `apt-get install chromium && npm ci --prefix tests/browser`, start Chorus (`cargo run`),
// then `node tests/browser/checkout.mjs http://127.0.0.1:<port>` (it needs one active product in stock);
// `cargo nextest run -E 'test(/browser/)'` does all of that on its own platform (tests/platform/browser.rs).
//
// Drives GraphiQL (`/`) and the example frontend (`/app`) in headless Chromium:
// GraphiQL must render and introspect the schema; the app must run one
// choreographed and one orchestrated checkout of 1 unit of its first product
// and show each one's terminal event. Prints what it saw; exits non-zero
// with a message on any failure. The browser never leaves the machine: every
// request to another origin is refused, so GraphiQL must come whole from the
// gateway (it embeds its assets), and a page that breaks its own
// Content-Security-Policy fails. With SCREENSHOTS=<dir>, it saves
// graphiql.png and app.png there.

import { join } from "node:path";
import { chromium } from "playwright-core";

const SHOTS = process.env.SCREENSHOTS || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SETTLE = 30_000; // a bound for each wait, not a target
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const base = (process.argv[2] || "").replace(/\/+$/, "");
if (!/^https?:\/\/[^/]+$/.test(base)) {
  console.error("usage: node tests/browser/checkout.mjs http://HOST:PORT");
  process.exit(2);
}

const log = (...args) => console.log("[browser]", ...args);
const fail = (message) => { throw new Error(message); };

async function offline(context) {
  await context.route((url) => !url.href.startsWith(base + "/"), async (route) => {
    refused.push(route.request().url());
    log(`refused ${route.request().url()} (outside the gateway)`);
    return route.abort("blockedbyclient");
  });
}

// Requests to other origins, refused: GraphiQL and the app need none.
const refused = [];
// Content-Security-Policy violations the pages reported.
const violations = [];

// Surfaces the page's own errors in our output.
function watch(page, name) {
  page.on("pageerror", (e) => log(`${name}: page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const text = m.text().split("\n")[0];
    if (/Content Security Policy/i.test(text)) violations.push(`${name}: ${text}`);
    log(`${name}: console error: ${text}`);
  });
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  log(`screenshot ${join(SHOTS, `${name}.png`)}`);
}

async function graphiql(context) {
  const page = await context.newPage();
  watch(page, "graphiql");
  const introspection = page.waitForResponse(
    (r) => r.url() === `${base}/graphql` && r.request().method() === "POST" && (r.request().postData() || "").includes("__schema"),
    { timeout: SETTLE },
  );
  const response = await page.goto(`${base}/`, { timeout: SETTLE });
  if (!response || !response.ok()) fail(`GET / answered ${response && response.status()}`);
  const csp = response.headers()["content-security-policy"] || "";
  if (!csp.includes("script-src 'self'")) fail(`GET / has no strict Content-Security-Policy: "${csp}"`);
  await page.locator(".graphiql-container").first().waitFor({ timeout: SETTLE })
    .catch(() => fail("GraphiQL did not render (.graphiql-container never appeared)"));
  const schema = await introspection.catch(() => fail("GraphiQL never introspected /graphql"));
  const body = await schema.json();
  const types = body?.data?.__schema?.types?.length;
  log(`GraphiQL rendered at ${base}/ (title "${await page.title()}")`);
  // Its docs and completion need its own introspection query to pass the limits.
  if (!types) fail(`GraphiQL's introspection was refused: ${JSON.stringify(body?.errors ?? body).slice(0, 300)}`);
  log(`GraphiQL introspected ${types} types`);
  // It opens on the examples: both saga styles and their live progress.
  const tabs = await page.locator(".graphiql-tab").count();
  if (tabs < 3) fail(`GraphiQL opened with ${tabs} tab(s), not the three examples`);
  const editor = await page.locator(".graphiql-query-editor").first().textContent();
  if (!editor.includes("checkoutOrchestrated")) fail(`GraphiQL's first tab is not the orchestrated example: ${editor.slice(0, 200)}`);
  log(`GraphiQL opened on ${tabs} example tabs`);
  await shot(page, "graphiql");
  await page.close();
}

async function shop(context) {
  const page = await context.newPage();
  watch(page, "app");
  const response = await page.goto(`${base}/app`, { timeout: SETTLE });
  if (!response || !response.ok()) fail(`GET /app answered ${response && response.status()}`);
  const quantity = page.locator("#products input[data-product]").first();
  await quantity.waitFor({ timeout: SETTLE }).catch(async () =>
    fail(`no product rows (error: "${await page.locator("#error").textContent()}")`));
  const row = page.locator("#products tr").first();
  const name = await row.locator("td").nth(0).textContent();
  const stockCell = row.locator("td").nth(2);
  let stock = Number(await stockCell.textContent());
  log(`app lists ${await page.locator("#products tr").count()} product(s); first: ${name}, ${stock} in stock`);

  for (const [button, last] of [["choreographed", "CheckoutSucceeded"], ["orchestrated", "SagaTransitioned → COMPLETED"]]) {
    const before = await page.locator("#checkout").textContent();
    await quantity.fill("1");
    await page.click(`#${button}`);
    // Done when a new checkout is shown, its status is SUCCEEDED and its
    // last event arrived; an error on the page ends the wait early.
    const outcome = await page.waitForFunction(
      ({ before, last }) => {
        const text = (id) => document.getElementById(id).textContent.trim();
        if (text("error")) return { error: text("error") };
        const events = [...document.querySelectorAll("#events li")].map((li) => li.textContent);
        if (text("checkout") === before || text("checkout") === "") return false;
        if (text("status") === "FAILED") return { failed: events };
        const done = text("status") === "SUCCEEDED" && events.some((e) => e.includes("CheckoutSucceeded"))
          && events.some((e) => e.endsWith(last));
        return done ? { checkout: text("checkout"), events } : false;
      },
      { before, last },
      { timeout: SETTLE, polling: 50 },
    ).then((h) => h.jsonValue()).catch(async (e) => {
      const seen = await page.evaluate(() => ({
        status: document.getElementById("status").textContent,
        checkout: document.getElementById("checkout").textContent,
        error: document.getElementById("error").textContent,
        events: [...document.querySelectorAll("#events li")].map((li) => li.textContent),
      }));
      fail(`${button} checkout did not show SUCCEEDED and "${last}" within ${SETTLE / 1000}s: ${JSON.stringify(seen)} (${e.message.split("\n")[0]})`);
    });
    if (outcome.error) fail(`${button} checkout: the page shows an error: ${outcome.error}`);
    if (outcome.failed) fail(`${button} checkout FAILED: ${outcome.failed.join(", ")}`);
    log(`${button}: ${outcome.checkout} SUCCEEDED; events: ${outcome.events.join(" | ")}`);

    // The pattern's steps filled in live: its last step is done, and none
    // is a compensation on a checkout that succeeded.
    const steps = await page.evaluate((pattern) => ({
      done: [...document.querySelectorAll(`#steps-${pattern} li.done`)].map((li) => li.textContent),
      compensation: [...document.querySelectorAll(`#steps-${pattern} li.compensation, #steps-${pattern} li.failed`)].map((li) => li.textContent),
      todo: [...document.querySelectorAll(`#steps-${pattern} li:not(.done)`)].map((li) => li.textContent),
    }), button);
    const final = button === "orchestrated" ? "COMPLETED" : "CheckoutSucceeded";
    if (!steps.done.includes(final) || steps.compensation.length || steps.todo.length) {
      fail(`${button}: the saga view shows ${JSON.stringify(steps)}`);
    }
    log(`${button}: saga view shows ${steps.done.length} steps done`);

    // The subscription completed and the table was reloaded: one unit fewer.
    stock -= 1;
    await expectText(stockCell, String(stock), `${button}: the table never showed ${stock} in stock`);
    log(`${button}: the table now shows ${stock} in stock`);
  }
  // Both checkouts are listed from the read model, succeeded.
  await page.waitForFunction(() => [...document.querySelectorAll("#recent tr")]
    .filter((tr) => tr.textContent.includes("SUCCEEDED")).length >= 2, null, { timeout: SETTLE })
    .catch(async () => fail(`the read model list shows: ${await page.locator("#recent").textContent()}`));
  log("app lists both checkouts from the read model");
  await shot(page, "app");
  await page.close();
}

async function expectText(locator, text, message) {
  const deadline = Date.now() + SETTLE;
  while (Date.now() < deadline) {
    if ((await locator.textContent({ timeout: SETTLE }).catch(() => null))?.trim() === text) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`${message} (shows "${await locator.textContent().catch(() => "?")}")`);
}

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: SETTLE });
  log(`Chromium ${browser.version()} from ${CHROMIUM}`);
  const context = await browser.newContext();
  await offline(context);
  await graphiql(context);
  await shop(context);
  if (refused.length) fail(`the pages asked for what the gateway does not serve: ${refused.join(", ")}`);
  if (violations.length) fail(`the pages broke their Content-Security-Policy: ${violations.join("; ")}`);
  log("OK: GraphiQL rendered from the gateway alone; both checkouts shown to their terminal event");
} catch (e) {
  console.error(`[browser] FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser?.close().catch((e) => console.error(`[browser] closing Chromium: ${e.message}`));
}
