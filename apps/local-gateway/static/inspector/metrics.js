// The metric counters: GET /metrics (Prometheus text) every two seconds, summed per metric.
import { el } from './dom.js';

const EVERY_MS = 2_000;
/** The tiles' order: traffic, then delivery, then the rest as they come. */
const ORDER = ['ConnectionsOpened', 'ConnectionsClosed', 'Messages', 'PostsDelivered', 'Recipients p99', 'FanOutDuration p99',
  'MessagesRefused', 'PostsGone', 'PostsFailed', 'PostsThrottled', 'PostsRetried', 'ConnectionsRefused'];
const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
/** Shown after the value. */
const UNITS = { 'FanOutDuration p99': 'ms' };
/** Counters whose growth means trouble: shown in red when not zero. */
const BAD = new Set(['MessagesRefused', 'PostsFailed', 'PostsGone', 'PostsThrottled', 'PostsMisconfigured', 'ConnectionsRefused', 'AuthorizerRefusals']);

/** `{name: total}` for counters, and `{name p99: value}` for summaries (the largest p99 of their
 * series: one per action, and the zero one without labels every metric is declared with), from
 * Prometheus text. */
export function parseMetrics(text) {
  const types = new Map();
  const totals = new Map();
  for (const line of text.split('\n')) {
    const type = line.match(/^# TYPE (\S+) (\S+)/);
    if (type) { types.set(type[1], type[2]); continue; }
    const sample = line.match(/^([A-Za-z_:][\w:]*)(\{[^}]*\})? (\S+)/);
    if (!sample) continue;
    const [, name, labels = '', raw] = sample;
    const value = Number(raw);
    if (types.get(name) === 'counter') totals.set(name, (totals.get(name) ?? 0) + value);
    else if (types.get(name) === 'summary' && labels.includes('quantile="0.99"')) {
      totals.set(`${name} p99`, Math.max(totals.get(`${name} p99`) ?? 0, value));
    }
  }
  return totals;
}

/** `PostsDelivered p99` as `Posts delivered p99`: the CloudWatch name stays in the tooltip. */
const words = (name) => name.replace(/([a-z])([A-Z])/g, (_, a, b) => `${a} ${b.toLowerCase()}`);

/** Fills `root` with one tile per metric, updated every two seconds; returns `poke()`, which
 * refreshes them soon after something happened. */
export function startMetrics(root) {
  const tiles = new Map();
  const format = (v) => (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(1));
  async function refresh() {
    let totals;
    try {
      const response = await fetch('/metrics');
      if (!response.ok) return;
      totals = parseMetrics(await response.text());
    } catch {
      return; // the gateway is restarting: the feed's pill says so
    }
    let added = false;
    for (const [name, value] of totals) {
      let tile = tiles.get(name);
      if (!tile) {
        tile = el('div', { class: 'tile', title: name, 'data-metric': name }, el('div', { class: 'value' }, ''), el('div', { class: 'name' }, words(name)));
        tiles.set(name, tile);
        added = true;
      }
      const shown = `${format(value)}${UNITS[name] ? ` ${UNITS[name]}` : ''}`;
      const valueNode = tile.querySelector('.value');
      if (valueNode.textContent !== shown) {
        if (valueNode.textContent) { tile.classList.remove('changed'); void tile.offsetWidth; tile.classList.add('changed'); }
        valueNode.textContent = shown;
      }
      tile.classList.toggle('bad', BAD.has(name.split(' ')[0]) && value > 0);
    }
    if (added) {
      const sorted = [...tiles].sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
      root.replaceChildren(...sorted.map(([, tile]) => tile));
    }
  }
  refresh();
  setInterval(refresh, EVERY_MS);
  // Something happened: refresh soon, at most once per burst.
  let soon = null;
  return function poke() {
    soon ??= setTimeout(() => { soon = null; refresh(); }, 250);
  };
}
