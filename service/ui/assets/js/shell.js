// The frame both pages share: the login form (when no key is stored), the header with who is
// signed in and the logout button, and the role check (a page says plainly when the key's role
// may not use it).

import { api, ApiError, clearKey, getKey, setKey } from "./api.js";
import { byTestId, fill, h } from "./dom.js";

const ROLE_NAMES = {
  admin: "管理员",
  analyst: "风险分析员",
  reviewer: "审核员",
  originator: "业务系统",
};

/**
 * Start a page: show the login form until a key works, then call `start(me, main)` when the
 * key's role holds `permission`, else explain. `me` is GET /v1/whoami.
 */
export async function boot({ title, permission, needs, start }) {
  const root = document.getElementById("app");
  const header = h("header", { class: "top" });
  const main = h("main", {});
  fill(root, header, main);
  fill(header, h("h1", {}, "投向 touxiang"), nav());

  const login = async (errMsg) => {
    fill(main, loginForm(errMsg, async (key) => {
      setKey(key);
      await enter();
    }));
    byTestId("api-key", main).focus();
  };

  const enter = async () => {
    let me;
    try {
      me = await api("/v1/whoami");
    } catch (e) {
      clearKey();
      return login(e instanceof ApiError ? e.message : String(e));
    }
    header.append(whoBox(me, () => {
      clearKey();
      location.reload();
    }));
    if (!me.permissions.includes(permission)) {
      fill(main, h("div", { class: "notice", "data-testid": "forbidden" },
        `当前密钥（${me.name}，角色：${ROLE_NAMES[me.role] || me.role}）无权使用${title}：需要${needs}的密钥。`));
      return;
    }
    fill(main);
    try {
      await start(me, main);
    } catch (e) {
      showError(main, e);
    }
  };

  if (getKey()) await enter();
  else await login(null);
}

function nav() {
  const here = location.pathname;
  const link = (href, text) =>
    h("a", { href, class: here === href ? "active" : null }, text);
  return h("nav", {}, link("/ui/", "风险看板"), link("/ui/review", "审核工作台"));
}

function whoBox(me, onLogout) {
  return h("div", { class: "who" },
    h("span", { "data-testid": "whoami" }, `${me.name} · ${ROLE_NAMES[me.role] || me.role}`),
    me.auth === false ? h("span", { class: "warn" }, "（未启用认证）") : null,
    h("button", { type: "button", "data-testid": "logout", onclick: onLogout }, "退出"));
}

function loginForm(errMsg, onKey) {
  const input = h("input", {
    type: "password", "data-testid": "api-key", autocomplete: "off",
    placeholder: "API 密钥", "aria-label": "API 密钥", size: 48,
  });
  const submit = (ev) => {
    ev.preventDefault();
    const k = input.value.trim();
    if (k) onKey(k);
  };
  return h("form", { class: "login", onsubmit: submit },
    h("h2", {}, "请输入 API 密钥"),
    h("p", { class: "hint" }, "密钥只保存在本浏览器标签页中，关闭标签页即清除。"),
    input,
    h("button", { type: "submit", "data-testid": "login" }, "登录"),
    errMsg ? h("p", { class: "error", "data-testid": "login-error" }, errMsg) : null);
}

/** Show an API error in words inside `el`. */
export function showError(el, e) {
  const msg = e instanceof ApiError ? `${e.message}${e.field ? `（字段：${e.field}）` : ""}` : String(e);
  el.append(h("div", { class: "error", "data-testid": "error" }, msg));
}
