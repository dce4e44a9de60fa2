// Lifecycle events (connected, disconnected and why, joined, left): GET /inspector/lifecycle,
// as EventBridge would deliver them, newest first; refreshed soon after each invocation.
import { el, shortId, clock } from './dom.js';

const EVERY_MS = 2_000;

/** One row: time, kind, connection, principal, and the room or the reason. */
function row(event) {
  const detail = event.detail ?? {};
  const about = detail.room ?? detail.reason ?? '';
  return el('div', { class: 'rows row', title: JSON.stringify(event) },
    el('span', {}, clock(detail.at ?? Date.now())),
    el('span', { class: `kind kind-${event['detail-type']}` }, event['detail-type'] ?? '?'),
    el('span', { class: 'id' }, shortId(detail.connectionId)),
    el('span', {}, detail.principal ?? '—'),
    el('span', {}, about));
}

/** Fills `list` (hiding `empty` once there is one) and returns `poke()`. */
export function startLifecycle(list, empty) {
  async function refresh() {
    let events;
    try {
      const response = await fetch('/inspector/lifecycle');
      if (!response.ok) return;
      events = await response.json();
    } catch {
      return; // the gateway is restarting: the feed's pill says so
    }
    list.replaceChildren(...events.slice().reverse().map(row));
    empty.hidden = events.length > 0;
  }
  refresh();
  setInterval(refresh, EVERY_MS);
  let soon = null;
  return function poke() {
    soon ??= setTimeout(() => { soon = null; refresh(); }, 250);
  };
}
