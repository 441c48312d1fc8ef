// ECharts options for where the money went: declared → actual section (sankey, from
// /v1/aggregate by=industry.section,flow.section) and one guarantee circle (graph, from
// /v1/graph/circles). Each item keeps the figures it was drawn from in `meta` (for tests).

import { amount, count, pct } from "./format.js";
import { TOOLTIP, label } from "./charts.js";

const EMPTY = (text) => ({
  title: { text, left: "center", top: "middle", textStyle: { fontSize: 13, fontWeight: "normal", color: "#868e96" } },
  series: [],
});

/** Sankey: declared industry section (left) → the section that received most of each loan's
 *  money (right), link width = balance; links where the two differ are orange. */
export function sankeyOption(r) {
  const rows = (r.rows || []).filter((x) => x["flow.section"] && x.balance > 0);
  if (!rows.length) {
    return EMPTY("本组合尚无支付记录（POST /v1/portfolios/{name}/payments 或 touxiang ingest-payments）");
  }
  const nodes = new Map();
  // `individual` and `unlabeled` are no codes: their names alone
  const text = (x, dim) => (/^[A-T]$/.test(x[dim] ?? "") ? label(x, dim) : x[`${dim}_name`] || label(x, dim));
  const node = (side, x, dim) => {
    const name = `${side} ${text(x, dim)}`;
    if (!nodes.has(name)) nodes.set(name, { name, meta: { side, code: x[dim] } });
    return name;
  };
  const links = rows.map((x) => {
    const same = x["industry.section"] === x["flow.section"];
    return {
      source: node("申报", x, "industry.section"),
      target: node("实际", x, "flow.section"),
      value: x.balance,
      lineStyle: { color: same ? "#adb5bd" : "#f76707" },
      meta: {
        declared: x["industry.section"], actual: x["flow.section"], same,
        balance: x.balance, loans: x.loans, rate: x.overdue_rate_balance,
      },
    };
  });
  return {
    animation: false,
    tooltip: {
      ...TOOLTIP,
      formatter: (p) => (p.dataType === "edge"
        ? `${p.data.source} → ${p.data.target}\n余额 ${amount(p.data.meta.balance)}，${count(p.data.meta.loans)} 笔` +
          `\n逾期率 ${pct(p.data.meta.rate)}`
        : p.name),
    },
    series: [{
      type: "sankey", data: [...nodes.values()], links, left: 8, right: 150, top: 8, bottom: 8,
      nodeGap: 6, layoutIterations: 0, emphasis: { focus: "adjacency" },
      label: { fontSize: 11 }, lineStyle: { opacity: 0.45 },
    }],
  };
}

/** One guarantee circle: members (size = exposure, red = overdue) and guarantee edges
 *  (guarantor → guaranteed), on a circle so the picture is the same every time. */
export function circleOption(c) {
  if (!c) return EMPTY("本组合没有担保圈（POST /v1/portfolios/{name}/relations 导入担保关系）");
  const max = Math.max(1, ...c.members.map((m) => m.exposure));
  const data = c.members.map((m) => ({
    id: m.key,
    name: m.name || m.key,
    symbolSize: 16 + 34 * Math.sqrt(m.exposure / max),
    itemStyle: { color: m.overdue ? "#c92a2a" : "#4c6ef5" },
    meta: { key: m.key, exposure: m.exposure, overdue_exposure: m.overdue_exposure, overdue: m.overdue },
  }));
  const links = c.guarantees.map((g) => ({ source: g.from, target: g.to, meta: { from: g.from, to: g.to } }));
  return {
    animation: false,
    tooltip: {
      ...TOOLTIP,
      formatter: (p) => (p.dataType === "edge"
        ? "担保关系"
        : `${p.name}\n敞口 ${amount(p.data.meta.exposure)}${p.data.meta.overdue ? `\n逾期 ${amount(p.data.meta.overdue_exposure)}` : ""}`),
    },
    series: [{
      type: "graph", layout: "circular", circular: { rotateLabel: false }, roam: false,
      data, links, edgeSymbol: ["none", "arrow"], edgeSymbolSize: 8,
      label: { show: true, position: "right", fontSize: 11 },
      lineStyle: { color: "#868e96", width: 1.5, curveness: 0.1 },
      left: 60, right: 160, top: 30, bottom: 30,
    }],
  };
}
