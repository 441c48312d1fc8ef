// The risk dashboard (/ui/): KPI cards, industry × region heatmap of the overdue rate with
// drill-down, exposure treemap, monthly trend, customer type × purpose table, alerts, export,
// and where the money went: declared → actual section (sankey) and the guarantee circles.
// Every figure comes from the API (/v1/aggregate, /v1/alerts, /v1/graph/circles); the page only
// draws them.

import { api, qs } from "./api.js";
import { boot, showError } from "./shell.js";
import { $, byTestId, download, fill, h, toast } from "./dom.js";
import { amount, count, pct } from "./format.js";
import { heatmapOption, lineOption, treemapOption } from "./charts.js";
import { circleOption, sankeyOption } from "./flowcharts.js";

const IND = ["industry.section", "industry.division", "industry.group", "industry.class"];
const REG = ["region.province", "region.city", "region.county"];
const LEVEL_NAMES = {
  "industry.section": "门类", "industry.division": "大类", "industry.group": "中类", "industry.class": "小类",
  "region.province": "省", "region.city": "市", "region.county": "县",
};

const st = {
  portfolio: null,
  overdue: "0",
  ind: [], // trail of {dim, code, name}, coarsest first
  reg: [],
  charts: {},
  circles: [],
  seq: 0,
};

boot({
  title: "风险看板",
  permission: "aggregate",
  needs: "风险分析员（analyst）",
  start: async (_me, main) => {
    const list = (await api("/v1/portfolios")).portfolios;
    if (!list.length) {
      fill(main, h("div", { class: "notice", "data-testid": "no-portfolio" },
        "还没有贷款组合。用 `touxiang ingest --portfolio 名称 文件` 或 POST /v1/portfolios/{name}/loans 导入后刷新本页。"));
      return;
    }
    st.portfolio = list[0].name;
    fill(main, layout(list));
    for (const id of ["heatmap", "treemap", "trend", "sankey", "circle-graph"]) {
      st.charts[id] = window.echarts.init(byTestId(id), null, { locale: "ZH", renderer: "canvas" });
    }
    st.charts.heatmap.on("click", onCellClick);
    st.charts.treemap.on("click", onTreeClick);
    window.addEventListener("resize", () => Object.values(st.charts).forEach((c) => c.resize()));
    await render();
  },
});

function layout(list) {
  const portfolio = h("select", { "data-testid": "portfolio-select", "aria-label": "贷款组合",
    onchange: (e) => { st.portfolio = e.target.value; st.ind = []; st.reg = []; render(); } },
  list.map((p) => h("option", { value: p.name }, `${p.name}（${count(p.rows)} 行）`)));
  const overdue = h("select", { "data-testid": "overdue-select", "aria-label": "逾期口径",
    onchange: (e) => { st.overdue = e.target.value; render(); } },
  h("option", { value: "0" }, "逾期 >0 天"),
  h("option", { value: "30" }, "逾期 >30 天"),
  h("option", { value: "90" }, "逾期 >90 天（不良口径）"));
  const kpi = (id, label) => h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, label),
    h("div", { class: "kpi-value", "data-testid": id }, "—"));
  return h("div", { class: "dashboard" },
    h("section", { class: "toolbar" },
      h("label", {}, "组合 ", portfolio),
      h("label", {}, "口径 ", overdue),
      h("span", { id: "asof", class: "muted" }),
      h("span", { class: "spacer" }),
      h("button", { type: "button", "data-testid": "export-csv", onclick: () => exportView("csv") }, "导出 CSV"),
      h("button", { type: "button", "data-testid": "export-xlsx", onclick: () => exportView("xlsx") }, "导出 Excel")),
    h("nav", { class: "breadcrumb", "data-testid": "breadcrumb", "aria-label": "钻取路径" }),
    h("section", { class: "kpis" },
      kpi("kpi-loans", "贷款笔数"), kpi("kpi-balance", "贷款余额"),
      kpi("kpi-overdue-balance", "逾期余额"), kpi("kpi-overdue-rate", "逾期率（按余额）"),
      kpi("kpi-hhi", "行业集中度 HHI")),
    h("section", { class: "card wide" },
      h("h3", {}, "行业 × 地区 逾期率（按余额） ", h("span", { class: "muted" }, "点击单元格下钻")),
      h("div", { class: "chart tall", "data-testid": "heatmap" })),
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("h3", {}, "行业敞口（面积=余额，颜色=逾期率）"),
        h("div", { class: "chart", "data-testid": "treemap" })),
      h("section", { class: "card" }, h("h3", {}, "逾期率月度走势（当前筛选）"),
        h("div", { class: "chart", "data-testid": "trend" }))),
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("h3", {}, "客户类型 × 贷款用途（逾期率 / 余额）"),
        h("div", { id: "pivot", class: "pivot", "data-testid": "customer-purpose" })),
      h("section", { class: "card" }, h("h3", {}, "预警"),
        h("ul", { class: "alerts", "data-testid": "alerts" }))),
    h("div", { class: "grid2" },
      h("section", { class: "card" },
        h("h3", {}, "资金实际去向（申报门类 → 实际门类，按余额） ",
          h("span", { class: "muted" }, "橙色：去向与申报不符")),
        h("div", { class: "chart tall", "data-testid": "sankey" })),
      h("section", { class: "card" },
        h("h3", {}, "担保圈 ",
          h("select", { "data-testid": "circle-select", "aria-label": "担保圈",
            onchange: (e) => drawCircle(Number(e.target.value)) })),
        h("p", { class: "muted", "data-testid": "circle-summary" }),
        h("div", { class: "chart tall", "data-testid": "circle-graph" }))));
}

// -------------------------------------------------------------------------------------------
// The current view

const next = (levels, trail) => {
  if (!trail.length) return levels[0];
  const i = levels.indexOf(trail[trail.length - 1].dim);
  return levels[Math.min(i + 1, levels.length - 1)];
};
const atBottom = (levels, trail) =>
  trail.length > 0 && trail[trail.length - 1].dim === levels[levels.length - 1];

/** Filters of the current drill-down: the deepest chosen code of each trail. */
function filters() {
  const f = { portfolio: st.portfolio, overdue_days_gt: st.overdue };
  for (const t of [st.ind, st.reg]) {
    if (t.length) f[t[t.length - 1].dim] = t[t.length - 1].code;
  }
  return f;
}

const viewDims = () => [next(IND, st.ind), next(REG, st.reg)];
const aggregate = (extra) => api(`/v1/aggregate?${qs({ ...filters(), ...extra })}`);

async function render() {
  const seq = ++st.seq;
  // `data-loading` on <body> until every panel of this view is drawn (tests wait for it)
  document.body.dataset.loading = "1";
  crumbs();
  const [indDim, regDim] = viewDims();
  const cells = aggregate({ by: `${indDim},${regDim}`, concentration: indDim, compare: false });
  const tree = aggregate({ by: indDim, compare: false });
  const trend = aggregate({ by: "month", as_of: "all", compare: false });
  const pivot = aggregate({ by: "customer_type,purpose", compare: false });
  const alerts = api(`/v1/alerts?${qs({ portfolio: st.portfolio, overdue_days_gt: st.overdue })}`);
  const flow = aggregate({ by: "industry.section,flow.section", compare: false });
  const circles = api(`/v1/graph/circles?${qs({ portfolio: st.portfolio, overdue_days_gt: st.overdue })}`);
  try {
    const main = await cells;
    if (seq !== st.seq) return;
    kpis(main);
    st.charts.heatmap.setOption(heatmapOption(main, indDim, regDim), true);
    st.charts.treemap.setOption(treemapOption(await tree, indDim), true);
    st.charts.trend.setOption(lineOption(await trend), true);
    drawPivot(await pivot);
    drawAlerts(await alerts);
    st.charts.sankey.setOption(sankeyOption(await flow), true);
    drawCircles((await circles).circles || []);
  } catch (e) {
    if (seq === st.seq) showError(byTestId("breadcrumb"), e);
  } finally {
    if (seq === st.seq) delete document.body.dataset.loading;
  }
}

function kpis(r) {
  const t = r.totals || {};
  byTestId("kpi-loans").textContent = count(t.loans);
  byTestId("kpi-balance").textContent = amount(t.balance);
  byTestId("kpi-overdue-balance").textContent = amount(t.overdue_balance);
  byTestId("kpi-overdue-rate").textContent = pct(t.overdue_rate_balance);
  const c = (r.concentration || [])[0];
  byTestId("kpi-hhi").textContent = c ? count(Math.round(c.hhi_points)) : "—";
  byTestId("kpi-hhi").title = c ? `HHI = Σ 份额²（${c.segments} 个${LEVEL_NAMES[c.dimension] || ""}，前五合计 ${pct(c.top5_share)}）` : "";
  $("#asof").textContent = r.months && r.months.length
    ? `数据月份 ${r.months.join("、")}（截至 ${r.as_of_dates.join("、")}）· ${r.overdue_definition}` : "";
}

function crumbs() {
  const trail = (label, t, key) => h("span", { class: "trail" }, `${label}：`,
    h("a", { href: "#", "data-level": -1, onclick: (e) => { e.preventDefault(); st[key] = []; render(); } }, "全部"),
    t.map((step, i) => [" › ", h("a", { href: "#", "data-level": i, "data-code": step.code,
      onclick: (e) => { e.preventDefault(); st[key] = st[key].slice(0, i + 1); render(); } },
    `${step.code} ${step.name || ""}`.trim())]));
  fill(byTestId("breadcrumb"), trail("行业", st.ind, "ind"), h("span", { class: "sep" }, " | "),
    trail("地区", st.reg, "reg"));
}

function onCellClick(p) {
  const d = p.data && p.data.meta;
  if (!d) return;
  if (atBottom(IND, st.ind) && atBottom(REG, st.reg)) {
    toast("已到最细层级（小类 × 县）");
    return;
  }
  const [indDim, regDim] = viewDims();
  if (!atBottom(IND, st.ind)) st.ind.push({ dim: indDim, code: d.industry, name: d.industryName });
  if (!atBottom(REG, st.reg)) st.reg.push({ dim: regDim, code: d.region, name: d.regionName });
  render();
}

function onTreeClick(p) {
  const d = p.data && p.data.meta;
  if (!d || atBottom(IND, st.ind)) return;
  st.ind.push({ dim: next(IND, st.ind), code: d.code, name: d.name });
  render();
}

function drawPivot(r) {
  const rows = r.rows || [];
  const types = [...new Set(rows.map((x) => x.customer_type))];
  const purposes = [...new Set(rows.map((x) => x.purpose))];
  const cell = new Map(rows.map((x) => [`${x.customer_type}\u0000${x.purpose}`, x]));
  const name = (x, dim) => x[`${dim}_name`] || x[dim] || "（空）";
  const purposeName = (p) => name(rows.find((x) => x.purpose === p), "purpose");
  fill($("#pivot"), h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "客户类型 \\ 用途"), purposes.map((p) => h("th", {}, purposeName(p))))),
    h("tbody", {}, types.map((t) => h("tr", {},
      h("th", {}, name(rows.find((x) => x.customer_type === t), "customer_type")),
      purposes.map((p) => {
        const x = cell.get(`${t}\u0000${p}`);
        return h("td", { title: x ? `${count(x.loans)} 笔` : "" },
          x ? [h("div", {}, pct(x.overdue_rate_balance)), h("div", { class: "muted" }, amount(x.balance))] : "—");
      }))))));
}

function drawAlerts(r) {
  const list = byTestId("alerts");
  const items = (r.alerts || []).slice(0, 30);
  if (!items.length) {
    fill(list, h("li", { class: "muted", "data-testid": "no-alerts" }, "当前没有显著上升的细分。"));
    return;
  }
  fill(list, items.map((a) => {
    const seg = (a.keys || []).map((k) => `${k.name || k.code}`).join(" × ");
    return h("li", { class: "alert", "data-testid": "alert", tabindex: 0,
      title: "点击查看该细分", onclick: () => gotoSegment(a.keys || []) },
    h("div", { class: "seg" }, seg, h("span", { class: "muted" }, ` ${a.month || ""}`)),
    h("div", { class: "reason" }, a.reason));
  }));
}

function drawCircles(list) {
  st.circles = list;
  fill(byTestId("circle-select"), list.length
    ? list.map((c, i) => h("option", { value: i },
      `${i + 1}. ${c.members.length} 户 · 敞口 ${amount(c.total_exposure)}${c.overdue_members ? " · 有逾期" : ""}`))
    : h("option", { value: -1 }, "（无）"));
  drawCircle(list.length ? 0 : -1);
}

function drawCircle(i) {
  const c = st.circles[i];
  byTestId("circle-summary").textContent = c
    ? `${c.members.length} 户，总敞口 ${amount(c.total_exposure)}，逾期敞口 ${amount(c.overdue_exposure)}` +
      `，${c.overdue_members} 户逾期，受波及敞口 ${amount(c.exposure_at_risk)}`
    : "";
  st.charts["circle-graph"].setOption(circleOption(c), true);
}

/** Show an alert's segment: its industry and region keys become the drill-down trails. */
function gotoSegment(keys) {
  st.ind = keys.filter((k) => IND.includes(k.dim)).map((k) => ({ dim: k.dim, code: k.code, name: k.name }));
  st.reg = keys.filter((k) => REG.includes(k.dim)).map((k) => ({ dim: k.dim, code: k.code, name: k.name }));
  render();
  byTestId("breadcrumb").scrollIntoView({ behavior: "smooth" });
}

async function exportView(format) {
  const [indDim, regDim] = viewDims();
  try {
    const { blob, filename } = await api(
      `/v1/aggregate?${qs({ ...filters(), by: `${indDim},${regDim}`, format })}`, { blob: true });
    download(blob, filename);
  } catch (e) {
    toast(`导出失败：${e.message}`, "error");
  }
}
