// By hand: `chorus bench --pattern both --fail-rate 0.2 --html report.html`, then
// `node tests/browser/report.mjs report.html`; tests/platform/browser.rs does both.
//
// Opens the bench's HTML report in headless Chromium with every network
// request refused (the page must be whole on its own) and checks that each
// chart rendered: an SVG laid out at a real size, drawn with both patterns'
// colours, its text in place. Prints what it saw; exits non-zero on any
// failure. With SCREENSHOTS=<dir>, saves report.png there.

import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const SHOTS = process.env.SCREENSHOTS || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHARTS = ["latency", "throughput", "percentiles", "cost", "compensation", "stock"];
// The patterns' colours in src/bench/charts.rs.
const COLOURS = { orchestrated: "#2563EB", choreographed: "#059669" };

const file = process.argv[2];
if (!file) {
  console.error("usage: node tests/browser/report.mjs REPORT.html");
  process.exit(2);
}
const url = pathToFileURL(resolve(file)).href;
const log = (...args) => console.log("[report]", ...args);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1560, height: 1200 } });
  await context.route((u) => u.href !== url, (route) => {
    problems.push(`the page asked for ${route.request().url()}: it must need nothing but itself`);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
  await page.goto(url);
  const charts = await page.evaluate(() =>
    [...document.querySelectorAll("figure.chart")].map((f) => {
      const svg = f.querySelector("svg");
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      const colours = new Set(
        [...(svg ? svg.querySelectorAll("*") : [])].flatMap((e) => [e.getAttribute("fill"), e.getAttribute("stroke")]).filter(Boolean),
      );
      return {
        id: f.id,
        width: box.width,
        height: box.height,
        shapes: svg ? svg.querySelectorAll("rect, polyline, path, line, circle").length : 0,
        texts: svg ? [...svg.querySelectorAll("text")].map((t) => t.textContent) : [],
        colours: [...colours].map((c) => c.toUpperCase()),
      };
    }),
  );
  const ids = charts.map((c) => c.id);
  if (JSON.stringify(ids) !== JSON.stringify(CHARTS)) problems.push(`charts ${ids.join(", ")}; expected ${CHARTS.join(", ")}`);
  for (const c of charts) {
    log(`${c.id}: ${c.width}×${c.height}, ${c.shapes} shapes, ${c.texts.length} texts`);
    if (c.width < 300 || c.height < 200) problems.push(`${c.id} is laid out at ${c.width}×${c.height}`);
    if (c.shapes < 10 || c.texts.length < 3) problems.push(`${c.id} has ${c.shapes} shapes and ${c.texts.length} texts: not drawn`);
    for (const [pattern, colour] of Object.entries(COLOURS)) {
      if (!c.colours.includes(colour)) problems.push(`${c.id} draws nothing in ${pattern}'s colour ${colour}`);
    }
  }
  const comparison = await page.locator("ul.comparison li").allTextContents();
  log(`comparison: ${comparison.length} points`);
  for (const topic of ["Throughput.", "Latency.", "Failures.", "Coupling."]) {
    if (!comparison.some((l) => l.startsWith(topic))) problems.push(`the comparison says nothing of ${topic}`);
  }
  if (SHOTS) {
    await page.screenshot({ path: join(SHOTS, "report.png"), fullPage: true });
    log(`screenshot ${join(SHOTS, "report.png")}`);
  }
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error("[report] FAIL:", p);
  process.exit(1);
}
log("every chart rendered");
