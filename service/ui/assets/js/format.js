// Numbers as a Chinese bank reads them: amounts in 元 / 万元 / 亿元, rates as percentages with
// one decimal, counts with thousands separators.

const nf = (digits) =>
  new Intl.NumberFormat("zh-CN", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** 1.5e9 → "15.00 亿元", 3.2e6 → "320.00 万元", 800 → "800 元". */
export function amount(yuan) {
  if (yuan === null || yuan === undefined || Number.isNaN(yuan)) return "—";
  const a = Math.abs(yuan);
  if (a >= 1e8) return `${nf(2).format(yuan / 1e8)} 亿元`;
  if (a >= 1e4) return `${nf(2).format(yuan / 1e4)} 万元`;
  return `${nf(0).format(yuan)} 元`;
}

/** 0.12345 → "12.3%". */
export function pct(rate) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return "—";
  return `${nf(1).format(rate * 100)}%`;
}

/** 12345 → "12,345". */
export function count(n) {
  if (n === null || n === undefined) return "—";
  return nf(0).format(n);
}

/** A calibrated confidence 0.734 → "73%". */
export function conf(p) {
  if (p === null || p === undefined) return "—";
  return `${Math.round(p * 100)}%`;
}
