// The inspector: what the gateway sees, live from /inspector/events (Server-Sent Events).
// Client data (ids, principals, rooms, bodies) only ever goes into the page as text.
import { el, shortId, clock, since } from './dom.js';
import { startChat } from './chat.js';
import { startMetrics } from './metrics.js';
import { startLifecycle } from './lifecycle.js';
import { FRAME_TYPES } from './protocol.js';

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const stage = meta('gateway-stage');
const wsUrl = `ws://${location.host}/${encodeURIComponent(stage)}`;
const MAX_ROWS = 200;

for (const node of [$('ws-url'), ...document.querySelectorAll('.ws-url')]) node.textContent = wsUrl;

// Tabs: the protocol console loads the first time it is shown.
for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => {
    for (const other of document.querySelectorAll('.tab')) other.classList.toggle('active', other === tab);
    $('inspector-tab').hidden = tab.dataset.tab !== 'inspector-tab';
    $('console-tab').hidden = tab.dataset.tab !== 'console-tab';
    if (tab.dataset.tab === 'console-tab' && !$('console-tab').src) $('console-tab').src = '/inspector/console';
  });
}

// Without the chat view (--chat-view false) the page opens no WebSocket of its own.
const chatView = meta('gateway-chat-view') === 'on';
const chat = chatView
  ? startChat({ url: wsUrl, idleTimeoutSecs: Number(meta('gateway-idle-timeout-secs')) })
  : Object.assign(new EventTarget(), { connectionId: null });
if (!chatView) {
  $('chat').hidden = true;
  document.body.classList.add('no-chat');
}
chat.addEventListener('identity', () => renderConnections());
const pokeMetrics = startMetrics($('metrics'));
const pokeLifecycle = startLifecycle($('lifecycle'), $('lifecycle-empty'));

/** Each room's latest `seq`, as its stream last said. @type {Map<string, number>} */
const streams = new Map();

/** @type {Map<string, {id: string, principal: string|null, connectedAt: number, rooms: string[]}>} */
const connections = new Map();

function renderConnections() {
  const rows = [...connections.values()].sort((a, b) => a.connectedAt - b.connectedAt).map((c) =>
    el('tr', { class: c.id === chat.connectionId ? 'mine' : '', 'data-connection-id': c.id },
      el('td', { class: 'id', title: c.id }, c.id),
      el('td', {}, c.principal ?? el('span', { class: 'muted' }, 'anonymous')),
      el('td', { title: new Date(c.connectedAt).toISOString() }, clock(c.connectedAt), ' ', el('span', { class: 'muted' }, since(c.connectedAt))),
      el('td', {}, ...(c.rooms.length ? c.rooms.map((r) => el('span', { class: 'chip' }, r)) : [el('span', { class: 'muted' }, '—')]))));
  $('connections').replaceChildren(...rows);
  $('connections-count').textContent = String(connections.size);
  $('connections-empty').hidden = connections.size > 0;
  renderRooms();
}

function renderRooms() {
  const members = new Map();
  for (const c of connections.values()) for (const r of c.rooms) members.set(r, (members.get(r) ?? 0) + 1);
  const largest = Math.max(1, ...members.values());
  const items = [...members].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([room, count]) =>
    el('li', { 'data-room': room },
      el('span', {}, room),
      el('span', { class: 'muted' }, `${count} member${count === 1 ? '' : 's'}`
        + (streams.has(room) ? ` · seq ${streams.get(room)}` : '')),
      bar(count / largest)));
  $('rooms').replaceChildren(...items);
  $('rooms-count').textContent = String(members.size);
  $('rooms-empty').hidden = members.size > 0;
}

/** A member-count bar; its width is set through the CSSOM, which the page's CSP allows. */
function bar(fraction) {
  const fill = el('span', { class: 'bar-fill' });
  fill.style.width = `${Math.round(100 * fraction)}%`;
  return fill;
}

function prepend(list, row, fresh) {
  if (fresh) row.classList.add('fresh');
  list.prepend(row);
  while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
  $(`${list.id}-empty`).hidden = true;
}

// A handler answers 200 even when it refuses a request: the refusal is the `error` frame it posts
// back, which comes before the invocation ends. Kept by connection and requestId (bounded), so
// the invocation's row can say `not_member` rather than a bare 200.
const refusals = new Map();
function noteRefusal(call) {
  const frame = call.method === 'POST' ? parsed(call.body) : null;
  if (frame?.type !== FRAME_TYPES.ERROR || frame.requestId === undefined) return;
  refusals.set(`${call.connectionId} ${frame.requestId}`, frame.code);
  if (refusals.size > MAX_ROWS) refusals.delete(refusals.keys().next().value);
}

function refusalOf(inv) {
  const requestId = parsed(inv.event?.body ?? '')?.requestId;
  return requestId === undefined ? undefined : refusals.get(`${inv.connectionId} ${requestId}`);
}

function invocationRow(inv) {
  const route = inv.route.replace('$', '');
  const refused = refusalOf(inv);
  const ok = inv.ok && !refused;
  const outcome = refused ? `✕ ${refused}` : inv.ok ? `${inv.status}` : inv.status === null ? 'handler error' : `refused ${inv.status}`;
  const row = el('div', { class: 'rows row', 'data-route': inv.route, 'data-connection-id': inv.connectionId ?? '' },
    el('span', { class: 'muted' }, clock(inv.at)),
    el('span', { class: `route route-${route}` }, inv.route),
    el('span', {}, inv.action ?? ''),
    el('span', { class: 'id', title: inv.connectionId ?? '' }, shortId(inv.connectionId)),
    el('span', { class: 'num' }, inv.durationMs.toFixed(1)),
    el('span', { class: `outcome ${ok ? 'outcome-ok' : 'outcome-bad'}`, title: outcome }, outcome));
  row.addEventListener('click', () => showDetail(`${inv.route} ${inv.action ?? ''} · ${inv.connectionId ?? ''}`,
    ['Event', inv.event], ['Response', inv.response]));
  return row;
}

function callRow(call) {
  const row = el('div', { class: 'rows row', 'data-connection-id': call.connectionId },
    el('span', { class: 'muted' }, clock(call.at)),
    el('span', {}, call.method),
    el('span', { class: 'id', title: call.connectionId }, shortId(call.connectionId)),
    el('span', { class: call.status < 300 ? 'outcome-ok' : 'outcome-bad' }, String(call.status)),
    el('span', { class: frameType(call) === 'error' ? 'outcome-bad' : 'muted', title: `${call.bytes} bytes` }, frameType(call)));
  row.addEventListener('click', () => showDetail(`${call.method} @connections/${call.connectionId} → ${call.status}`,
    ['Body', parsed(call.body)], ['Status', call.status]));
  return row;
}

/** What a POST carried (`message`, `ack`, `presence`...), or the call's own name. */
function frameType(call) {
  if (call.method !== 'POST') return call.method === 'DELETE' ? 'close' : 'info';
  const frame = parsed(call.body);
  return typeof frame?.type === 'string' ? frame.type : `${call.bytes} B`;
}

function parsed(text) {
  try { return JSON.parse(text); } catch { return text; }
}

function showDetail(title, [leftTitle, left], [rightTitle, right]) {
  $('detail-title').textContent = title;
  $('detail-left-title').textContent = leftTitle;
  $('detail-right-title').textContent = rightTitle;
  const pretty = (v) => (typeof v === 'string' ? v : JSON.stringify(v, (k, x) => (k === 'body' ? parsed(x) : x), 2));
  $('detail-left').textContent = pretty(left);
  $('detail-right').textContent = pretty(right);
  $('detail').showModal();
}

// The feed: a snapshot first (and again whenever this page fell behind), then events.
const feed = new EventSource('/inspector/events');
const feedState = (text, kind) => { $('feed-state').textContent = text; $('feed-state').className = `pill pill-${kind}`; };
feed.addEventListener('open', () => feedState('live', 'ok'));
feed.addEventListener('error', () => feedState('gateway unreachable: retrying', 'bad'));
const on = (kind, handle) => feed.addEventListener(kind, (e) => handle(JSON.parse(e.data)));
on('snapshot', (s) => {
  connections.clear();
  for (const c of s.connections) connections.set(c.id, c);
  streams.clear();
  for (const [room, seq] of Object.entries(s.streams ?? {})) streams.set(room, seq);
  for (const list of ['invocations', 'calls']) {
    $(list).replaceChildren();
    $(`${list}-empty`).hidden = false;
  }
  for (const call of s.calls) { noteRefusal(call); prepend($('calls'), callRow(call), false); }
  for (const inv of s.invocations) prepend($('invocations'), invocationRow(inv), false);
  renderConnections();
});
on('connection', (c) => { connections.set(c.id, c); renderConnections(); });
on('disconnection', (c) => { connections.delete(c.id); renderConnections(); });
on('rooms', (r) => {
  const c = connections.get(r.id);
  if (c) { c.rooms = r.rooms; renderConnections(); }
});
on('stream', (s) => { streams.set(s.room, s.latestSeq); renderRooms(); });
on('invocation', (inv) => { prepend($('invocations'), invocationRow(inv), true); pokeMetrics(); pokeLifecycle(); });
on('call', (call) => { noteRefusal(call); prepend($('calls'), callRow(call), true); });
setInterval(renderConnections, 30_000); // "connected 2 min ago" moves on
