// Small DOM helpers. Text always goes in as text (textContent), never as HTML: purpose texts,
// names and comments come from users.

/** h("div", {class: "x", "data-testid": "y", onclick: f}, child, "text", ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/** `text` with every occurrence of any keyword wrapped in <mark> (longest keywords first). */
export function highlight(text, keywords) {
  const kws = [...new Set((keywords || []).filter((k) => k && k.trim()))].sort(
    (a, b) => b.length - a.length,
  );
  const out = [];
  let i = 0;
  let plain = "";
  while (i < text.length) {
    const k = kws.find((kw) => text.startsWith(kw, i));
    if (k) {
      if (plain) out.push(plain);
      plain = "";
      out.push(h("mark", {}, k));
      i += k.length;
    } else {
      plain += text[i];
      i += 1;
    }
  }
  if (plain) out.push(plain);
  return out;
}

/** A transient message at the bottom of the page. */
export function toast(msg, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", "aria-live": "polite" });
    document.body.append(box);
  }
  const t = h("div", { class: `toast ${kind}` }, msg);
  box.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 3000);
}

/** Download a Blob under `filename`. */
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
