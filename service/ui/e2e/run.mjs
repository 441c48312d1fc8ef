// End-to-end tests of the two pages in real headless Chromium (Debian `chromium`, driven by
// playwright-core). Started by the Rust test `ui_browser` (service/tests/it/ui_browser.rs),
// which runs `touxiang serve` on a fresh data dir, makes the keys and ingests a generated book,
// then calls this script with:
//   TX_BASE            http://127.0.0.1:PORT
//   TX_REVIEWER_KEY    key of role reviewer (name r1)
//   TX_ANALYST_KEY     key of role analyst
//   TX_ORIGINATOR_KEY  key of role originator (classifies texts into the review queue)
//   TX_PORTFOLIO       the ingested portfolio
//   TX_FLOW_PORTFOLIO  a portfolio with payments and guarantee relations
//   TX_OUT             directory for screenshots
//   CHROMIUM           browser binary (default /usr/bin/chromium)
// Exit code 0 when every check passed; each failure is printed with what was expected.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("TX_BASE");
const KEYS = { reviewer: env("TX_REVIEWER_KEY"), analyst: env("TX_ANALYST_KEY"), originator: env("TX_ORIGINATOR_KEY") };
const PORTFOLIO = env("TX_PORTFOLIO");
const FLOW_PORTFOLIO = env("TX_FLOW_PORTFOLIO");
const OUT = env("TX_OUT");
mkdirSync(OUT, { recursive: true });
const HERE = dirname(fileURLToPath(import.meta.url));

let failures = 0;
const results = [];
async function check(name, f) {
  const t = Date.now();
  try {
    await f();
    results.push(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failures += 1;
    results.push(`FAIL ${name}: ${e.stack || e}`);
  }
  console.log(results[results.length - 1]);
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const eq = (a, b, msg) => assert(a === b, `${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);

async function call(key, path, body) {
  const r = await fetch(BASE + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path} → ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}

/** A page that records console errors, page errors and failed requests. */
async function watchedPage(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 1600 }, locale: "zh-CN", acceptDownloads: true });
  const page = await ctx.newPage();
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  page.on("request", (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) problems.push(`request left the machine: ${r.url()}`); });
  return { ctx, page, problems };
}

async function login(page, path, key) {
  await page.goto(BASE + path);
  await page.getByTestId("api-key").fill(key);
  await page.getByTestId("login").click();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});

try {
  await check("vendored ECharts is the npm package's build", async () => {
    const sha = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");
    const vendored = join(HERE, "../assets/vendor/echarts/echarts.min.js");
    const npm = join(HERE, "../node_modules/echarts/dist/echarts.min.js");
    eq(sha(vendored), sha(npm), "sha256 of assets/vendor/echarts/echarts.min.js vs node_modules/echarts");
  });

  await check("a wrong key shows the API's message; the wrong role is told so", async () => {
    const { ctx, page } = await watchedPage(browser);
    await login(page, "/ui/review", "tx_not_a_key");
    const err = await page.getByTestId("login-error").textContent({ timeout: 5000 });
    assert(/invalid|revoked/i.test(err), `login error should carry the API message, got ${err}`);
    await login(page, "/ui/review", KEYS.analyst);
    const f = await page.getByTestId("forbidden").textContent({ timeout: 5000 });
    assert(f.includes("审核员"), `forbidden notice: ${f}`);
    await page.getByTestId("logout").click();
    await page.getByTestId("api-key").waitFor({ timeout: 5000 });
    await login(page, "/ui/", KEYS.reviewer);
    const g = await page.getByTestId("forbidden").textContent({ timeout: 5000 });
    assert(g.includes("风险分析员"), `a reviewer key on the dashboard is told which role it needs: ${g}`);
    await ctx.close();
  });

  await workbench();
  await dashboard();
} finally {
  await browser.close();
}

console.log(`\n${results.length - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);

// ---------------------------------------------------------------------------------------------

async function workbench() {
  // Vague lines go to review whatever the model: they cannot be labeled with confidence.
  const texts = ["资金周转", "日常经营周转", "补充流动资金", "经营周转及归还他行贷款", "临时资金需求", "购买设备一批"];
  const res = await call(KEYS.originator, "/v1/classify", {
    items: texts.map((t, i) => ({ id: `e2e-${i}`, text: t, amount: 100000 * (i + 1) })),
  });
  const queued = res.results.filter((r) => r.review_id).length;
  const { ctx, page, problems } = await watchedPage(browser);
  let mineBefore = 0;

  await check(`workbench: claim, pick the 2nd suggestion with the keyboard, submit (queued ${queued})`, async () => {
    assert(queued >= 4, `at least 4 of the texts should be routed to review, got ${queued}`);
    await login(page, "/ui/review", KEYS.reviewer);
    const text = page.getByTestId("review-text");
    await text.waitFor({ timeout: 10000 });
    const first = await text.textContent();
    await page.getByTestId("mine-labeled").waitFor({ timeout: 5000 });
    mineBefore = Number(/今日已审\s*(\d+)/.exec(await page.getByTestId("mine-labeled").textContent())[1]);
    assert(texts.includes(first), `claimed text ${first} is one of ours`);
    const sugg = page.getByTestId("suggestion");
    assert((await sugg.count()) >= 2, "at least two suggestions");
    const code2 = await sugg.nth(1).getAttribute("data-code");
    const leaseLeft = Number(await page.getByTestId("lease-remaining").textContent());
    assert(leaseLeft > 0 && leaseLeft <= 600, `lease countdown shows seconds left, got ${leaseLeft}`);
    await page.locator("body").click({ position: { x: 5, y: 300 } });
    await page.keyboard.press("2");
    eq(await page.getByTestId("selected-code").textContent(), code2, "selected code after pressing 2");
    const item = await claimedItem(page, first);
    const t0 = Date.now();
    await page.keyboard.press("Enter");
    await page.waitForFunction((prev) => {
      const el = document.querySelector("[data-testid=review-text]");
      return el && el.textContent !== prev;
    }, first, { timeout: 5000 });
    const shownAfter = Date.now() - t0;
    console.log(`     next item shown ${shownAfter} ms after Enter`);
    const stored = await call(KEYS.reviewer, `/v1/review/${item}`);
    const codes = JSON.stringify(stored);
    assert(codes.includes(`"${code2}"`), `the stored item carries the submitted code ${code2}: ${codes.slice(0, 400)}`);
    eq(stored.state === "pending" && stored.stage === "first", false, "item is no longer pending its first label");
  });

  await check("workbench: search the taxonomy with /, submit a code from the hits", async () => {
    const text = await page.getByTestId("review-text").textContent();
    const item = await claimedItem(page, text);
    await page.locator("body").click({ position: { x: 5, y: 300 } });
    await page.keyboard.press("/");
    const focused = await page.evaluate(() => document.activeElement?.dataset.testid);
    eq(focused, "taxonomy-search", "/ focuses the search box");
    await page.keyboard.type("小吃");
    const hit = page.getByTestId("taxonomy-hit").first();
    await hit.waitFor({ timeout: 5000 });
    const code = await hit.getAttribute("data-code");
    assert(/^\d{4}$/.test(code) || /^\d{2,3}$/.test(code) || /^[A-T]$/.test(code), `hit code ${code}`);
    assert((await hit.textContent()).includes("小吃"), "first hit names 小吃");
    await hit.click();
    eq(await page.getByTestId("selected-code").textContent(), code, "selected code after clicking the hit");
    await page.getByTestId("comment").fill("e2e: 从检索结果选择");
    await page.getByTestId("submit").click();
    await page.waitForFunction((prev) => document.querySelector("[data-testid=review-text]")?.textContent !== prev
      || document.querySelector("[data-testid=review-empty]"), text, { timeout: 5000 });
    const stored = await call(KEYS.reviewer, `/v1/review/${item}`);
    assert(JSON.stringify(stored).includes(`"${code}"`), `stored label ${code}`);
  });

  await check("workbench: s skips, release gives the item back", async () => {
    const before = await page.getByTestId("review-text").getAttribute("data-review-id");
    await page.locator("body").click({ position: { x: 5, y: 300 } });
    await page.keyboard.press("s");
    await page.waitForFunction((prev) => document.querySelector("[data-testid=review-text]")?.dataset.reviewId !== prev
      || document.querySelector("[data-testid=review-empty]"), before, { timeout: 5000 });
    const skipped = await call(KEYS.reviewer, `/v1/review/${before}`);
    assert(JSON.stringify(skipped).includes("skip"), `the item's audit trail records the skip: ${JSON.stringify(skipped).slice(0, 300)}`);
    const held = await page.getByTestId("review-text").getAttribute("data-review-id");
    await page.getByTestId("release").click();
    await page.getByTestId("review-empty").waitFor({ timeout: 5000 });
    const released = await call(KEYS.reviewer, `/v1/review/${held}`);
    assert(!released.reviewer || released.state === "pending", `released item is no longer leased: ${JSON.stringify(released).slice(0, 300)}`);
    await page.getByTestId("claim").click();
    await page.getByTestId("review-text").waitFor({ timeout: 5000 });
  });

  await check("workbench: keywords highlighted, neighbours and my counts shown", async () => {
    await page.waitForFunction((n) => document.querySelector("[data-testid=mine-labeled]")?.textContent.includes(`今日已审 ${n}`),
      mineBefore + 2, { timeout: 5000 }).catch(async () => {
      throw new Error(`own count today should be ${mineBefore + 2}: ${await page.getByTestId("mine-labeled").textContent()}`);
    });
    const marks = await page.locator("[data-testid=review-text] mark").count();
    const item = await call(KEYS.reviewer, `/v1/review/${await page.getByTestId("review-text").getAttribute("data-review-id")}`);
    assert((item.keywords || []).length === 0 || marks > 0, `keywords ${item.keywords} of the item are highlighted`);
    await page.screenshot({ path: join(OUT, "workbench.png"), fullPage: false });
    eq(problems.length, 0, `no console error or failed request on the workbench: ${problems.join("\n")}`);
  });
  await ctx.close();
}

/** The review_id of the item showing `text` (the page keeps it; the API tells which it is). */
async function claimedItem(page, text) {
  const id = await page.getByTestId("review-text").getAttribute("data-review-id");
  assert(id, `page exposes the claimed review id for ${text}`);
  return id;
}

// ---------------------------------------------------------------------------------------------

async function dashboard() {
  const { ctx, page, problems } = await watchedPage(browser);
  const agg = (q) => call(KEYS.analyst, `/v1/aggregate?portfolio=${encodeURIComponent(PORTFOLIO)}&compare=false&${q}`);
  const option = (id) => page.evaluate((tid) => {
    const el = document.querySelector(`[data-testid=${tid}]`);
    const c = el && window.echarts.getInstanceByDom(el);
    const o = c && c.getOption();
    return o ? JSON.parse(JSON.stringify(o, (k, v) => (typeof v === "function" ? undefined : v))) : null;
  }, id);
  const cellsOf = (opt) => new Map(opt.series[0].data.map((d) => [`${d.meta.industry}|${d.meta.region}`, d.value[2]]));
  const compare = (opt, api, indDim, regDim) => {
    const cells = cellsOf(opt);
    eq(cells.size, api.rows.length, "heatmap cells vs /v1/aggregate rows");
    for (const r of api.rows) {
      const v = cells.get(`${r[indDim]}|${r[regDim]}`);
      assert(v !== undefined, `cell ${r[indDim]} × ${r[regDim]} drawn`);
      assert(Math.abs(v - r.overdue_rate_balance) < 1e-9, `cell ${r[indDim]} × ${r[regDim]}: ${v} vs ${r.overdue_rate_balance}`);
    }
  };
  let top;

  await check("dashboard: heatmap cells equal /v1/aggregate; KPIs shown", async () => {
    await login(page, "/ui/", KEYS.analyst);
    await page.waitForFunction(() => {
      const el = document.querySelector("[data-testid=heatmap]");
      const c = el && window.echarts && window.echarts.getInstanceByDom(el);
      return c && c.getOption()?.series?.[0]?.data?.length > 0;
    }, null, { timeout: 15000 });
    const api = await agg("by=industry.section,region.province&overdue_days_gt=0");
    compare(await option("heatmap"), api, "industry.section", "region.province");
    eq(await page.getByTestId("kpi-loans").textContent(), new Intl.NumberFormat("zh-CN").format(api.totals.loans), "kpi-loans");
    const rate = await page.getByTestId("kpi-overdue-rate").textContent();
    eq(rate, `${(api.totals.overdue_rate_balance * 100).toFixed(1)}%`, "kpi-overdue-rate");
    for (const id of ["kpi-balance", "kpi-overdue-balance"]) {
      assert(/[万亿]?元$/.test(await page.getByTestId(id).textContent()), `${id} in 元/万元/亿元`);
    }
    assert(/^\d[\d,]*$/.test(await page.getByTestId("kpi-hhi").textContent()), "kpi-hhi is a number");
    const tree = await option("treemap");
    eq(tree.series[0].data.length, (await agg("by=industry.section")).rows.filter((r) => r.balance > 0).length, "treemap nodes");
    const trend = await option("trend");
    eq(trend.xAxis[0].data.length, (await agg("by=month&as_of=all")).rows.length, "trend months");
    top = [...api.rows].sort((a, b) => b.balance - a.balance)[0];
    await page.waitForSelector("body:not([data-loading])");
    await page.screenshot({ path: join(OUT, "dashboard.png"), fullPage: false });
  });

  await check("dashboard: clicking a cell drills to division × city; the breadcrumb goes back", async () => {
    const opt = await option("heatmap");
    const idx = opt.series[0].data.findIndex((d) => d.meta.industry === top["industry.section"] && d.meta.region === top["region.province"]);
    assert(idx >= 0, "largest cell found");
    const [x, y] = await page.evaluate((i) => {
      const el = document.querySelector("[data-testid=heatmap]");
      const c = window.echarts.getInstanceByDom(el);
      const d = c.getOption().series[0].data[i].value;
      return c.convertToPixel({ seriesIndex: 0 }, [d[0], d[1]]);
    }, idx);
    await page.getByTestId("heatmap").click({ position: { x, y } });
    await page.waitForFunction(() => document.querySelector("[data-testid=breadcrumb] a[data-level='0']"), null, { timeout: 10000 })
      .catch(async (e) => { throw new Error(`no drill after clicking ${x},${y}: breadcrumb ${await page.getByTestId("breadcrumb").textContent()} (${e.message})`); });
    const crumbs = await page.getByTestId("breadcrumb").textContent();
    assert(crumbs.includes(top["industry.section"]) && crumbs.includes(top["region.province"]), `breadcrumb names the cell: ${crumbs}`);
    await page.waitForFunction((sec) => {
      const c = window.echarts.getInstanceByDom(document.querySelector("[data-testid=heatmap]"));
      const d = c.getOption().series[0].data;
      // divisions now (a loan coded only to its section has no division: null)
      return d.length > 0 && !d.some((x) => x.meta.industry === sec) && d.some((x) => /^\d{2}$/.test(x.meta.industry ?? ""));
    }, top["industry.section"], { timeout: 10000 });
    const api = await agg(`by=industry.division,region.city&overdue_days_gt=0&industry.section=${top["industry.section"]}&region.province=${top["region.province"]}`);
    compare(await option("heatmap"), api, "industry.division", "region.city");
    eq(await page.getByTestId("kpi-loans").textContent(), new Intl.NumberFormat("zh-CN").format(api.totals.loans), "kpi-loans of the drilled view");
    await page.waitForSelector("body:not([data-loading])");
    const treeNames = (await option("treemap")).series[0].data.map((d) => d.meta.code);
    assert(treeNames.length > 0 && !treeNames.includes(top["industry.section"]), `treemap shows the divisions of the drilled section: ${treeNames}`);
    await page.screenshot({ path: join(OUT, "dashboard-drilled.png"), fullPage: false });
    // back up: 全部 of the industry trail, then of the region trail
    await page.locator("[data-testid=breadcrumb] a[data-level='-1']").first().click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=breadcrumb] a[data-level='0']").length === 1);
    await page.locator("[data-testid=breadcrumb] a[data-level='-1']").last().click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=breadcrumb] a[data-level='0']").length === 0);
    await page.waitForFunction(() => {
      const c = window.echarts.getInstanceByDom(document.querySelector("[data-testid=heatmap]"));
      return c.getOption().series[0].data.some((x) => /^[A-T]$/.test(x.meta.industry ?? ""));
    }, null, { timeout: 10000 });
  });

  await check("dashboard: alerts say why and lead to their segment", async () => {
    const api = await call(KEYS.analyst, `/v1/alerts?portfolio=${encodeURIComponent(PORTFOLIO)}&overdue_days_gt=0`);
    assert(api.alerts.length > 0, "the planted shock raises at least one alert (API)");
    const alerts = page.getByTestId("alert");
    await alerts.first().waitFor({ timeout: 5000 });
    eq(await alerts.count(), Math.min(30, api.alerts.length), "alerts listed");
    const text = await alerts.first().textContent();
    assert(text.includes(api.alerts[0].reason), `first alert carries the API's reason in words: ${text}`);
    await alerts.first().click();
    const keys = api.alerts[0].keys.filter((k) => k.dim.startsWith("industry.") || k.dim.startsWith("region."));
    await page.waitForFunction((codes) => {
      const t = document.querySelector("[data-testid=breadcrumb]")?.textContent || "";
      return codes.every((c) => t.includes(c));
    }, keys.map((k) => k.code), { timeout: 10000 });
    await page.locator("[data-testid=breadcrumb] a[data-level='-1']").first().click();
    await page.locator("[data-testid=breadcrumb] a[data-level='-1']").last().click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=breadcrumb] a[data-level='0']").length === 0);
  });

  await check("dashboard: the overdue definition changes the figures; CSV export of the view", async () => {
    await page.getByTestId("overdue-select").selectOption("90");
    const api = await agg("by=industry.section,region.province&overdue_days_gt=90");
    await page.waitForFunction((want) => document.querySelector("[data-testid=kpi-overdue-rate]")?.textContent === want,
      `${(api.totals.overdue_rate_balance * 100).toFixed(1)}%`, { timeout: 10000 });
    compare(await option("heatmap"), api, "industry.section", "region.province");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-csv").click()]);
    const path = join(OUT, "export.csv");
    await download.saveAs(path);
    const csv = readFileSync(path, "utf8");
    assert(csv.includes("industry.section") && csv.split("\n").length > 3, `CSV export has a header and rows: ${csv.slice(0, 200)}`);
    eq(problems.length, 0, `no console error or failed request on the dashboard: ${problems.join("\n")}`);
  });

  await check("dashboard: declared → actual sankey and the guarantee circle equal the API", async () => {
    await page.getByTestId("overdue-select").selectOption("0");
    await page.getByTestId("portfolio-select").selectOption(FLOW_PORTFOLIO);
    const q = `portfolio=${encodeURIComponent(FLOW_PORTFOLIO)}&compare=false&overdue_days_gt=0`;
    const api = await call(KEYS.analyst, `/v1/aggregate?${q}&by=industry.section,flow.section`);
    const want = api.rows.filter((r) => r["flow.section"] && r.balance > 0);
    assert(want.length > 3, `the generated book's money reaches several sections (API): ${want.length}`);
    await page.waitForFunction((n) => {
      const c = window.echarts.getInstanceByDom(document.querySelector("[data-testid=sankey]"));
      return c && c.getOption()?.series?.[0]?.links?.length === n;
    }, want.length, { timeout: 15000 }).catch(async () => {
      throw new Error(`sankey links: ${JSON.stringify((await option("sankey"))?.series?.[0]?.links?.length)} vs ${want.length} rows`);
    });
    // the other panels follow the portfolio switch too
    await page.waitForSelector("body:not([data-loading])");
    const byInd = (await call(KEYS.analyst, `/v1/aggregate?${q}&by=industry.section`)).rows.filter((r) => r.balance > 0);
    eq((await option("treemap")).series[0].data.length, byInd.length, "treemap nodes of the switched portfolio");
    const links = (await option("sankey")).series[0].links;
    for (const r of want) {
      const l = links.find((x) => x.meta.declared === r["industry.section"] && x.meta.actual === r["flow.section"]);
      assert(l, `link ${r["industry.section"]} → ${r["flow.section"]} drawn`);
      assert(Math.abs(l.value - r.balance) < 1e-6, `link ${r["industry.section"]} → ${r["flow.section"]}: ${l.value} vs ${r.balance}`);
      eq(l.meta.same, r["industry.section"] === r["flow.section"], "mismatching links are marked");
    }
    const circles = await call(KEYS.analyst, `/v1/graph/circles?portfolio=${encodeURIComponent(FLOW_PORTFOLIO)}&overdue_days_gt=0`);
    assert(circles.circles.length > 0, "the generated book has guarantee circles (API)");
    eq(await page.locator("[data-testid=circle-select] option").count(), circles.circles.length, "circles listed");
    const g = (await option("circle-graph")).series[0];
    eq(g.data.length, circles.circles[0].members.length, "members of the first circle drawn");
    eq(g.links.length, circles.circles[0].guarantees.length, "its guarantees drawn");
    const red = g.data.filter((d) => d.meta.overdue).length;
    eq(red, circles.circles[0].members.filter((m) => m.overdue).length, "overdue members marked");
    await page.waitForSelector("body:not([data-loading])");
    await page.getByTestId("sankey").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(OUT, "dashboard-flow.png"), fullPage: false });
    eq(problems.length, 0, `no console error or failed request on the dashboard: ${problems.join("\n")}`);
  });
  await ctx.close();
}
