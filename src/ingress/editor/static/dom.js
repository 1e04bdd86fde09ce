// DOM helpers. Every value reaches the page as a text node or an attribute value, never as parsed HTML:
// the page runs with the admin token, and samples and console lines are written by strangers.

export const byId = (id) => document.getElementById(id);

/** An element with attributes (`on*` become listeners) and children (strings become text nodes). */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** Show `text` in `node`, or hide `node` when there is none. */
export function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

/** JSON with sorted keys, so two specs compare equal whatever order their keys came in. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export const clock = (iso) => new Date(iso).toLocaleTimeString();
