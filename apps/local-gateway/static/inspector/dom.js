// Building the page from data without ever parsing it as HTML: every string becomes a text node.

/**
 * An element with attributes and children (nodes, or strings that become text nodes).
 * @param {string} tag @param {Record<string, string>} attrs @param {...(Node|string|number)} children
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== '') node.setAttribute(name, value);
  node.append(...children.map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

/** The first characters of a connection id: enough to tell a handful apart. */
export const shortId = (id) => (id ? `${id.slice(0, 8)}…` : '—');

/** @param {number} millis */
export const clock = (millis) => new Date(millis).toLocaleTimeString([], { hour12: false });

/** @param {number} millis */
export function since(millis) {
  const s = Math.max(0, Math.round((Date.now() - millis) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}
