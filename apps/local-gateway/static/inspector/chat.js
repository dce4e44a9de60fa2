// The chat view: messages per room as a person reads them, on the project's own client library
// (reconnects, keepalive, rooms joined again after a reconnect: none of it is written here).
import { WsClient } from './ws-client.js';
import { el, clock, shortId } from './dom.js';

const $ = (id) => document.getElementById(id);
const MAX_MESSAGES_PER_ROOM = 500;
/** Where messages sent to everyone (`sendmessage`) go. */
const EVERYONE = '*';

/** Half the gateway's idle timeout, so one lost ping still leaves time for the next. */
const keepaliveMs = (idleTimeoutSecs) => Math.max(500, Math.min(5 * 60_000, (idleTimeoutSecs * 1000) / 2));

/** What a message's `data` says, as text: a string, an object's `text`, or its JSON. */
function textOf(data) {
  if (typeof data === 'string') return data;
  if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
  return JSON.stringify(data);
}

/**
 * Starts the chat view in the page's `#chat`. Returns an EventTarget with `connectionId`; it
 * fires `identity` whenever the connection id changes.
 * @param {{url: string, idleTimeoutSecs: number}} options
 */
export function startChat({ url, idleTimeoutSecs }) {
  const view = new EventTarget();
  view.connectionId = null;
  const root = $('chat');
  const client = new WsClient({
    url,
    token: () => $('token-input').value.trim() || null,
    pingIntervalMs: keepaliveMs(idleTimeoutSecs),
    backoffMaxMs: 5_000, // a local gateway restarts in seconds: come back quickly
  });
  /** @type {Map<string, {nodes: Node[], unread: number}>} */
  const rooms = new Map();
  let current = null;
  let reconnects = 0;
  let everOpen = false;
  root.dataset.reconnects = '0';

  const roomOf = (name) => {
    if (!rooms.has(name)) rooms.set(name, { nodes: [], unread: 0 });
    return rooms.get(name);
  };

  function add(name, node) {
    const room = roomOf(name);
    room.nodes.push(node);
    if (room.nodes.length > MAX_MESSAGES_PER_ROOM) room.nodes.shift();
    if (name === current) {
      const list = $('messages');
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.append(node);
      while (list.children.length > MAX_MESSAGES_PER_ROOM) list.firstElementChild.remove();
      if (atBottom || node.classList.contains('mine')) list.scrollTop = list.scrollHeight;
    } else {
      room.unread += 1;
      renderTabs();
    }
  }

  const system = (text) => el('div', { class: 'system' }, text);
  const toEveryRoom = (text) => { for (const name of rooms.keys()) add(name, system(text)); };

  function select(name) {
    current = name;
    roomOf(name).unread = 0;
    $('messages').replaceChildren(...roomOf(name).nodes);
    $('messages').scrollTop = $('messages').scrollHeight;
    $('message-input').disabled = name === EVERYONE;
    $('send-button').disabled = name === EVERYONE;
    root.dataset.room = name;
    renderTabs();
  }

  function renderTabs() {
    $('room-tabs').replaceChildren(...[...rooms].map(([name, room]) => {
      const tab = el('button', { class: `room-tab${name === current ? ' active' : ''}`, type: 'button', 'data-room': name },
        name === EVERYONE ? 'everyone' : `# ${name}`);
      if (room.unread) tab.append(el('span', { class: 'unread' }, room.unread));
      tab.addEventListener('click', () => select(name));
      return tab;
    }));
  }

  function setState(state) {
    root.dataset.state = state;
    const [text, kind] = { open: ['connected', 'ok'], connecting: ['connecting…', 'wait'], reconnecting: ['reconnecting…', 'bad'], closed: ['closed', 'bad'] }[state] ?? [state, 'wait'];
    $('chat-state').textContent = text;
    $('chat-state').className = `pill pill-${kind}`;
  }

  client.addEventListener('state', ({ detail: { state } }) => {
    setState(state);
    if (state === 'reconnecting' && everOpen && root.dataset.lost !== 'yes') {
      root.dataset.lost = 'yes';
      toEveryRoom('Connection lost: reconnecting…');
    }
    if (state !== 'open') return;
    if (everOpen) {
      reconnects += 1;
      root.dataset.reconnects = String(reconnects);
      toEveryRoom('Reconnected: rooms joined again');
    }
    everOpen = true;
    root.dataset.lost = 'no';
    view.connectionId = client.connectionId;
    root.dataset.connectionId = client.connectionId ?? '';
    $('chat-me').textContent = client.connectionId ?? '?';
    view.dispatchEvent(new Event('identity'));
  });

  client.addEventListener('message', ({ detail: frame }) => {
    const mine = frame.from === client.connectionId;
    const author = mine ? 'you' : frame.principal ?? `conn ${shortId(frame.from)}`;
    const node = el('div', { class: `message${mine ? ' mine' : ''}` },
      el('div', { class: 'meta' }, `${author} · ${clock(frame.sentAt ?? Date.now())}`),
      el('div', { class: 'text' }, textOf(frame.data)));
    const name = typeof frame.room === 'string' ? frame.room : EVERYONE;
    const isNew = !rooms.has(name);
    add(name, node);
    if (isNew) renderTabs();
  });

  client.addEventListener('presence', ({ detail: p }) => {
    if (!rooms.has(p.room)) return;
    const who = p.principal ?? `conn ${shortId(p.connectionId)}`;
    add(p.room, system(`${who} ${p.event === 'joined' ? 'joined' : 'left'}`));
  });

  $('join-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('room-input').value.trim();
    if (!name) return;
    try {
      await client.join(name);
      const isNew = !rooms.has(name);
      select(name);
      if (isNew) add(name, system(`You joined # ${name}`));
    } catch (error) {
      if (current) add(current, system(`Could not join ${name}: ${error.message}`));
      else $('messages').replaceChildren(system(`Could not join ${name}: ${error.message}`));
    }
  });

  $('send-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('message-input').value;
    if (!text || !current || current === EVERYONE) return;
    $('message-input').value = '';
    const room = current;
    try {
      await client.publish(room, { text });
    } catch (error) {
      add(room, system(`Not sent: ${error.message}`));
    }
  });

  setState('connecting');
  client.connect().catch(() => {}); // failures show as the state pill; the client retries
  return view;
}
