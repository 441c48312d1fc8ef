// ECharts options for the dashboard, built from /v1/aggregate answers. Each data item keeps
// the codes it was drawn from in `meta` (for drill-down and for tests that compare the drawn
// cells with the API).

import { amount, count, pct } from "./format.js";

// Tooltips drawn on the canvas: the HTML tooltip writes inline styles, which the page's
// Content-Security-Policy (no inline style) refuses.
// Placed beside the pointer, never under it: a canvas tooltip under the pointer would take the
// click meant for the cell below it.
export const TOOLTIP = {
  renderMode: "richText",
  confine: true,
  position: (point, _params, _el, _rect, size) => {
    const [w, h] = size.contentSize;
    const [vw, vh] = size.viewSize;
    const x = point[0] + 16 + w > vw ? point[0] - 16 - w : point[0] + 16;
    const y = point[1] + 16 + h > vh ? point[1] - 16 - h : point[1] + 16;
    return [x, y];
  },
};

const RATE_COLORS = ["#e8f5e9", "#fff3bf", "#ffc078", "#f76707", "#c92a2a"];

export const label = (row, dim) => {
  const name = row[`${dim}_name`];
  const code = row[dim];
  if (code === null || code === undefined || code === "") return "未分类";
  return name ? `${code} ${name}` : code;
};

/** Top of the colour scale: the 95th percentile of the rates (at least 1 %), so a single
 *  small segment at 100 % does not wash out every other cell; higher cells get the top colour. */
function scaleMax(rates) {
  const s = rates.filter((r) => r > 0).sort((a, b) => a - b);
  if (!s.length) return 0.01;
  return Math.max(0.01, s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]);
}

/** Heatmap: industry (rows, y) × region (columns, x), value = overdue rate by balance. */
export function heatmapOption(r, indDim, regDim) {
  const rows = r.rows || [];
  const inds = [];
  const regs = [];
  const seen = new Map();
  const idx = (list, key, text) => {
    const k = `${list === inds ? "i" : "r"}:${key}`;
    if (!seen.has(k)) {
      seen.set(k, list.length);
      list.push(text);
    }
    return seen.get(k);
  };
  // industries ordered by exposure, regions too: the big cells sit top-left
  const byBal = (dim) => {
    const m = new Map();
    for (const x of rows) m.set(x[dim], (m.get(x[dim]) || 0) + x.balance);
    return m;
  };
  const ib = byBal(indDim);
  const rb = byBal(regDim);
  const sorted = [...rows].sort((a, b) => ib.get(b[indDim]) - ib.get(a[indDim]) || rb.get(b[regDim]) - rb.get(a[regDim]));
  const data = sorted.map((x) => {
    const yi = idx(inds, x[indDim], label(x, indDim));
    const xi = idx(regs, x[regDim], label(x, regDim));
    return {
      value: [xi, yi, x.overdue_rate_balance],
      meta: {
        industry: x[indDim], industryName: x[`${indDim}_name`], region: x[regDim],
        regionName: x[`${regDim}_name`], balance: x.balance, loans: x.loans,
        overdue_balance: x.overdue_balance,
      },
    };
  });
  const max = scaleMax(data.map((d) => d.value[2] || 0));
  return {
    animation: false,
    tooltip: {
      ...TOOLTIP,
      formatter: (p) => {
        const m = p.data.meta;
        return `${inds[p.data.value[1]]}\n${regs[p.data.value[0]]}\n逾期率 ${pct(p.data.value[2])}` +
          `\n余额 ${amount(m.balance)}，逾期余额 ${amount(m.overdue_balance)}\n${count(m.loans)} 笔`;
      },
    },
    grid: { left: 8, right: 16, top: 8, bottom: 70, containLabel: true },
    xAxis: { type: "category", data: regs, axisLabel: { rotate: 45, interval: 0, fontSize: 11 }, splitArea: { show: true } },
    yAxis: { type: "category", data: inds, inverse: true, axisLabel: { interval: 0, fontSize: 11, width: 160, overflow: "truncate" }, splitArea: { show: true } },
    visualMap: {
      min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
      inRange: { color: RATE_COLORS }, formatter: (v) => pct(v),
    },
    series: [{ name: "逾期率", type: "heatmap", data, emphasis: { itemStyle: { borderColor: "#333", borderWidth: 1 } } }],
  };
}

/** Treemap: area = balance, colour = overdue rate. */
export function treemapOption(r, indDim) {
  const rows = (r.rows || []).filter((x) => x.balance > 0);
  const max = scaleMax(rows.map((x) => x.overdue_rate_balance || 0));
  return {
    animation: false,
    tooltip: {
      ...TOOLTIP,
      formatter: (p) => {
        const m = p.data.meta;
        return m ? `${p.name}\n余额 ${amount(m.balance)}\n逾期率 ${pct(m.rate)}` : p.name;
      },
    },
    visualMap: { show: false, min: 0, max, dimension: 1, inRange: { color: RATE_COLORS }, seriesIndex: 0 },
    series: [{
      // no transition from the previous view's layout (it ignores the option-level switch)
      type: "treemap", animation: false, roam: false, nodeClick: false, breadcrumb: { show: false },
      width: "100%", height: "100%", visualDimension: 1,
      label: { color: "#1f2933", formatter: (p) => `${p.name}\n${pct(p.data.meta.rate)}` },
      data: rows.map((x) => ({
        name: label(x, indDim),
        value: [x.balance, x.overdue_rate_balance],
        meta: { code: x[indDim], name: x[`${indDim}_name`], balance: x.balance, rate: x.overdue_rate_balance },
      })),
    }],
  };
}

/** Monthly overdue rate (by balance and by count) of the current selection. */
export function lineOption(r) {
  const rows = [...(r.rows || [])].sort((a, b) => (a.month < b.month ? -1 : 1));
  return {
    animation: false,
    tooltip: { ...TOOLTIP, trigger: "axis", valueFormatter: (v) => pct(v) },
    legend: { data: ["按余额", "按笔数"], bottom: 0 },
    grid: { left: 8, right: 16, top: 16, bottom: 32, containLabel: true },
    xAxis: { type: "category", data: rows.map((x) => x.month) },
    yAxis: { type: "value", axisLabel: { formatter: (v) => pct(v) } },
    series: [
      { name: "按余额", type: "line", data: rows.map((x) => x.overdue_rate_balance), symbolSize: 6 },
      { name: "按笔数", type: "line", data: rows.map((x) => x.overdue_rate_count), symbolSize: 6, lineStyle: { type: "dashed" } },
    ],
  };
}
