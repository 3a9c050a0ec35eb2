// ui.js: small DOM helpers the studio's modules share.

export const $ = (id) => document.getElementById(id);

// el("li", {class: "npc", onclick: fn}, "text", child): an element with attributes, listeners and children.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") Object.assign(node.style, value); // CSSOM: the page's CSP refuses style attributes
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function fmt(value, digits = 2) {
  return typeof value === "number" ? value.toFixed(digits) : value === undefined ? "" : String(value);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// The name of an rpc error as the page shows it: "NOT_FOUND: session_id: no session 'x'".
export function errorText(err) {
  return err && err.code ? `${err.code}: ${err.message}` : String(err && err.message ? err.message : err);
}

// A progress bar for `used` of `budget`.
export function bar(used, budget) {
  const share = budget > 0 ? Math.min(1, used / budget) : 0;
  return el("div", {class: used > budget ? "bar over" : "bar"}, el("i", {style: {width: `${(share * 100).toFixed(1)}%`}}));
}

// JSON with its object keys sorted: two messages compare equal however their fields were ordered.
export function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

export function download(name, text) {
  const link = el("a", {href: URL.createObjectURL(new Blob([text], {type: "application/json"})), download: name});
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}
