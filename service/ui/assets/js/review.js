// The reviewer workbench (/ui/review): claim an item, read the evidence, pick a class with the
// keyboard (1–9 suggestions, / search, Enter submit, s skip), next item claimed automatically.
// Every decision is the API's; this page only shows it and sends the reviewer's choice.

import { api, ApiError, qs } from "./api.js";
import { boot, showError } from "./shell.js";
import { $, byTestId, fill, h, highlight, toast } from "./dom.js";
import { amount, conf, count, pct } from "./format.js";

const STAGES = { first: "一审", second: "二审（独立复核）", adjudication: "仲裁" };
const REASONS = {
  review: "模型置信度不足，需人工判定",
  disagreement: "分类器与近邻投票不一致",
  qa_sample: "质检抽样（模型已自动判定）",
};
const SOURCES = { seed: "种子样本", reviewed: "人工审核" };

const st = {
  me: null,
  item: null,
  selected: null, // {code, name}
  taxonomy: null,
  leaseTimer: null,
  searchSeq: 0,
  busy: false,
};

boot({
  title: "审核工作台",
  permission: "review_work",
  needs: "审核员（reviewer）",
  start: async (me, main) => {
    st.me = me;
    const tax = await api("/v1/taxonomies").catch(() => null);
    st.taxonomy = tax ? tax.default : "gbt4754-2017";
    fill(main, layout(await queues()));
    document.addEventListener("keydown", onKey);
    await refreshMine();
    await claim();
  },
});

async function queues() {
  try {
    const s = await api("/v1/review/stats");
    const names = s.queues.map((q) => q.queue);
    return names.length ? names : ["default"];
  } catch {
    return ["default"];
  }
}

function layout(queueNames) {
  const select = h("select", { "data-testid": "queue-select", "aria-label": "审核队列" },
    queueNames.map((q) => h("option", { value: q }, q)));
  return h("div", { class: "workbench" },
    h("section", { class: "toolbar" },
      h("label", {}, "队列 ", select),
      h("button", { type: "button", "data-testid": "claim", onclick: () => claim() }, "领取下一条"),
      h("span", { class: "lease" }, "租约剩余 ",
        h("span", { "data-testid": "lease-remaining" }, "—"), " 秒"),
      h("div", { id: "mine", class: "mine" })),
    h("div", { class: "columns" },
      h("section", { id: "item", class: "card item" }),
      h("aside", { class: "side" },
        h("section", { class: "card" },
          h("h3", {}, "行业分类检索 ", h("kbd", {}, "/")),
          h("input", {
            type: "search", "data-testid": "taxonomy-search", placeholder: "代码、名称或注释条目，如 6291、小吃、烤串",
            oninput: onSearch, onkeydown: onSearchKey, "aria-label": "检索行业分类",
          }),
          h("ol", { id: "hits", class: "hits" })),
        h("section", { class: "card decide" },
          h("h3", {}, "提交"),
          h("div", {}, "选定代码：", h("strong", { "data-testid": "selected-code" }, "—"),
            h("span", { id: "selected-name", class: "muted" }, "")),
          h("textarea", { "data-testid": "comment", rows: 3, placeholder: "备注（可选；跳过时作为原因）", "aria-label": "备注" }),
          h("div", { class: "actions" },
            h("button", { type: "button", class: "primary", "data-testid": "submit", onclick: submit }, "提交 ", h("kbd", {}, "Enter")),
            h("button", { type: "button", "data-testid": "skip", onclick: skip }, "跳过 ", h("kbd", {}, "s")),
            h("button", { type: "button", "data-testid": "release", onclick: release }, "释放"))))));
}

// -------------------------------------------------------------------------------------------
// Claim and show

async function claim() {
  if (st.busy) return;
  st.busy = true;
  try {
    const queue = byTestId("queue-select").value;
    const item = await api("/v1/review/claim", { method: "POST", body: { queue, reviewer: st.me.name } });
    show(item);
  } catch (e) {
    show(null);
    showError($("#item"), e);
  } finally {
    st.busy = false;
  }
}

function show(item) {
  st.item = item;
  select(null);
  byTestId("taxonomy-search").value = "";
  fill($("#hits"));
  clearInterval(st.leaseTimer);
  const box = $("#item");
  if (!item) {
    byTestId("lease-remaining").textContent = "—";
    fill(box, h("div", { class: "empty", "data-testid": "review-empty" },
      "队列中暂无待审核条目。", h("button", { type: "button", onclick: () => claim() }, "重新领取")));
    return;
  }
  const exp = Date.parse(item.lease_expires_at);
  const tick = () => {
    const left = Math.max(0, Math.round((exp - Date.now()) / 1000));
    byTestId("lease-remaining").textContent = String(left);
    if (left === 0) clearInterval(st.leaseTimer);
  };
  tick();
  st.leaseTimer = setInterval(tick, 1000);

  const nb = Array.isArray(item.neighbors) ? { neighbors: item.neighbors } : item.neighbors || {};
  const borrower = nb.borrower || {};
  const fields = [
    ["借款人", item.borrower_name ?? borrower.borrower_name],
    ["经营范围", item.business_scope ?? borrower.business_scope],
    ["申报行业", item.declared_industry ?? borrower.declared],
    ["金额", item.amount != null ? amount(item.amount) : null],
    ["业务编号", item.external_id],
  ].filter(([, v]) => v);
  const suggestions = item.suggestions || [];
  fill(box,
    h("div", { class: "badges" },
      h("span", { class: `badge stage-${item.stage}`, "data-testid": "review-stage" }, STAGES[item.stage] || item.stage),
      h("span", { class: "badge" }, REASONS[item.reason] || item.reason || ""),
      h("span", { class: "badge muted" }, `分类体系 ${item.taxonomy}`)),
    h("p", { class: "purpose", "data-testid": "review-text", "data-review-id": item.review_id },
      highlight(item.text, item.keywords)),
    fields.length ? h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])) : null,
    earlier(item),
    h("h3", {}, "建议分类 ", h("span", { class: "muted" }, "按 1–9 选择")),
    h("ol", { class: "suggestions" }, suggestions.map((s, i) => suggestion(s, i))),
    h("h3", {}, "最相近的已标注样本"),
    h("ul", { class: "neighbors" }, (nb.neighbors || []).map(neighbor)),
    (nb.neighbors || []).length ? null : h("p", { class: "muted" }, "（暂无近邻：样本库尚在建立或无相近样本）"));
  // Nothing is preselected: the reviewer picks (1–9, a click or a search hit), so a tired
  // Enter never rubber-stamps the model's guess.
}

function earlier(item) {
  const labels = item.earlier_labels || [];
  if (!labels.length) return null;
  return h("section", { class: "earlier", "data-testid": "earlier-labels" },
    h("h3", {}, "两位审核员的不同意见"),
    h("ul", {}, labels.map((l) => h("li", {},
      h("strong", {}, l.code), ` ${l.name || ""} — ${l.reviewer}`, l.comment ? `：${l.comment}` : ""))));
}

function pathText(path) {
  return (path || []).map((p) => p.name).join(" › ");
}

function suggestion(s, i) {
  return h("li", {
    class: "suggestion", "data-testid": "suggestion", "data-code": s.code, tabindex: 0,
    onclick: () => select(s),
  },
    h("kbd", {}, String(i + 1)),
    h("span", { class: "code" }, s.code),
    h("span", { class: "name" }, s.name),
    h("span", { class: "conf", title: "校准后的置信度" }, conf(s.confidence)),
    h("div", { class: "path muted" }, pathText(s.path)));
}

function neighbor(n) {
  return h("li", { "data-testid": "neighbor", "data-code": n.code },
    h("span", { class: "code" }, n.code),
    h("span", { class: "ntext" }, n.text),
    h("span", { class: "muted" }, ` 相似度 ${n.similarity.toFixed(2)} · ${SOURCES[n.source] || n.source}`));
}

function select(s) {
  st.selected = s ? { code: s.code, name: s.name } : null;
  byTestId("selected-code").textContent = s ? s.code : "—";
  $("#selected-name").textContent = s ? ` ${s.name}` : "";
  for (const el of document.querySelectorAll("[data-testid=suggestion],[data-testid=taxonomy-hit]")) {
    el.classList.toggle("chosen", !!s && el.dataset.code === s.code);
  }
}

// -------------------------------------------------------------------------------------------
// Actions

async function act(what, path, body, done) {
  if (!st.item || st.busy) return;
  st.busy = true;
  try {
    await api(`/v1/review/${encodeURIComponent(st.item.review_id)}/${path}`, { method: "POST", body });
    toast(done, "ok");
    byTestId("comment").value = "";
  } catch (e) {
    toast(`${what}失败：${e instanceof ApiError ? e.message : e}`, "error");
    return false;
  } finally {
    st.busy = false;
  }
  return true;
}

async function submit() {
  if (!st.item) return;
  if (!st.selected) {
    toast("请先选择一个分类代码", "error");
    return;
  }
  const comment = byTestId("comment").value.trim();
  const ok = await act("提交", "label",
    { code: st.selected.code, reviewer: st.me.name, comment: comment || null },
    `已提交 ${st.selected.code} ${st.selected.name || ""}`);
  if (ok) {
    await claim();
    refreshMine();
  }
}

async function skip() {
  const reason = byTestId("comment").value.trim();
  if (await act("跳过", "skip", { reviewer: st.me.name, reason: reason || null }, "已跳过")) {
    await claim();
    refreshMine();
  }
}

async function release() {
  if (await act("释放", "release", { reviewer: st.me.name }, "已释放，条目退回队列")) show(null);
}

async function refreshMine() {
  const box = $("#mine");
  if (!box) return;
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  try {
    const m = await api(`/v1/review/me?${qs({ since: midnight.toISOString() })}`);
    const a = m.agreement || {};
    fill(box,
      h("span", { "data-testid": "mine-labeled" }, `今日已审 ${count(m.labeled)}`),
      ` · 跳过 ${count(m.skipped)} · `,
      h("span", { title: "与其他审核员 / 仲裁最终结论一致的比例" },
        `一致率 ${a.rate == null ? "—" : pct(a.rate)}（${count(a.compared || 0)} 条可比）`));
  } catch {
    fill(box);
  }
}

// -------------------------------------------------------------------------------------------
// Taxonomy search

let searchTimer = null;
function onSearch(ev) {
  clearTimeout(searchTimer);
  const q = ev.target.value.trim();
  searchTimer = setTimeout(() => search(q), 150);
}

async function search(q) {
  const seq = ++st.searchSeq;
  const list = $("#hits");
  if (!q) {
    fill(list);
    return;
  }
  const tax = (st.item && st.item.taxonomy) || st.taxonomy;
  try {
    const r = await api(`/v1/taxonomies/${encodeURIComponent(tax)}/search?${qs({ q, limit: 20 })}`);
    if (seq !== st.searchSeq) return;
    fill(list, r.hits.length ? r.hits.map((hit) => h("li", {
      class: "hit", "data-testid": "taxonomy-hit", "data-code": hit.code, tabindex: 0,
      onclick: () => select(hit),
      onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); select(hit); } },
    },
      h("span", { class: "code" }, hit.code),
      h("span", { class: "name" }, hit.name),
      hit.term ? h("span", { class: "term" }, `含“${hit.term}”`) : null,
      h("div", { class: "path muted" }, pathText(hit.path)))) : h("li", { class: "muted" }, "无匹配"));
  } catch (e) {
    if (seq === st.searchSeq) fill(list, h("li", { class: "error" }, e.message));
  }
}

// Enter in the search box picks the first hit (a second Enter, outside the box, submits).
function onSearchKey(ev) {
  if (ev.key === "Enter") {
    ev.preventDefault();
    ev.stopPropagation();
    const first = byTestId("taxonomy-hit");
    if (first) first.click();
    ev.target.blur();
  } else if (ev.key === "Escape") {
    ev.target.blur();
  }
}

// -------------------------------------------------------------------------------------------
// Keyboard

function onKey(ev) {
  const t = ev.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  if (ev.ctrlKey || ev.metaKey || ev.altKey) {
    if (ev.key === "Enter" && t && t.tagName === "TEXTAREA") {
      ev.preventDefault();
      submit();
    }
    return;
  }
  if (typing) return;
  if (ev.key >= "1" && ev.key <= "9") {
    const s = (st.item && st.item.suggestions) || [];
    const pick = s[Number(ev.key) - 1];
    if (pick) {
      ev.preventDefault();
      select(pick);
    }
  } else if (ev.key === "/") {
    ev.preventDefault();
    byTestId("taxonomy-search").focus();
  } else if (ev.key === "Enter") {
    ev.preventDefault();
    submit();
  } else if (ev.key === "s") {
    ev.preventDefault();
    skip();
  }
}
