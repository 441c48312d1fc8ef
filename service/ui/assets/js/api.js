// The one place the pages talk to the API: the key (kept in this tab's sessionStorage, never in
// a URL), the Authorization header, and errors in the contract shape
// {"error": {"code", "message", "field"}} turned into ApiError.

const KEY = "touxiang.key";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (k) => sessionStorage.setItem(KEY, k);
export const clearKey = () => sessionStorage.removeItem(KEY);

async function errorOf(resp) {
  let code = "http_" + resp.status;
  let message = `${resp.status} ${resp.statusText}`;
  let field = null;
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field || null;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(resp.status, code, message, field);
}

/** Call the API. `opts.body` is sent as JSON; `opts.blob` returns the raw body as a Blob.
 *  Resolves to the parsed JSON (or null for 204); rejects with ApiError. */
export async function api(path, opts = {}) {
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method: opts.method || "GET", headers };
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", `无法连接服务：${e.message}`, null);
  }
  if (!resp.ok) throw await errorOf(resp);
  if (opts.blob) return { blob: await resp.blob(), filename: filenameOf(resp) };
  if (resp.status === 204) return null;
  return resp.json();
}

function filenameOf(resp) {
  const cd = resp.headers.get("Content-Disposition") || "";
  const m = /filename="?([^";]+)"?/.exec(cd);
  return m ? m[1] : "export";
}

/** Build a query string from an object, skipping null/undefined/"" values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") u.append(k, String(v));
  }
  return u.toString();
}
