// A dependency-free client for this template's WebSocket protocol (docs/protocol.md), for
// browsers and Node 22 (Node 20: run with --experimental-websocket, or pass `WebSocket`).
//
// What every client of an API Gateway WebSocket API needs, written once:
// - a token provider asked for a token on every (re)connect, and told to refresh it when the
//   handshake fails before the socket opens (a browser cannot see the 401 itself);
// - reconnects with jittered exponential back-off and a cap;
// - a keepalive `ping` before API Gateway's 10-minute idle timeout;
// - promises that settle on the `ack`/`error` (or the action's own answer) with the same
//   `requestId`, or reject after a timeout;
// - rooms joined through it are joined again after a reconnect, with the last `seq` seen
//   (`since`), so the server replays what was missed;
// - `message` frames that carry an `id` are delivered once, even when the server redelivers, and
//   a room's messages in `seq` order (a bounded reorder buffer, gaps filled from `history`);
//   a `reset` event says the server could not bring a room up to date.

/**
 * @typedef {object} TokenRequest
 * @property {boolean} refresh true when the last handshake failed: do not reuse a cached token.
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} url The WebSocket URL, `wss://{api}.execute-api.{region}.amazonaws.com/{stage}`.
 * @property {(request: TokenRequest) => (string | null | Promise<string | null>)} [token]
 *   Returns the token sent as `?token=`; none when authentication is off.
 * @property {typeof WebSocket} [WebSocket] The constructor; the global one by default.
 * @property {number} [pingIntervalMs] Keepalive period; default 5 minutes (API Gateway: 10 idle).
 * @property {number} [requestTimeoutMs] How long a request waits for its answer; default 10 s.
 * @property {number} [backoffBaseMs] First reconnect delay ceiling; default 500 ms.
 * @property {number} [backoffMaxMs] Largest reconnect delay; default 30 s.
 * @property {number} [dedupeWindow] How many message ids are remembered; default 1 000.
 */

/**
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ConnectionState
 */

import {
  ACTIONS,
  ANSWER_TYPES,
  FRAME_TYPES,
  HASHED_INBOX_MARK,
  INBOX_PREFIX,
  ROOM_NAME,
} from './protocol.js';
import { RoomOrder } from './room-order.js';

export * from './protocol.js';
export { RoomOrder } from './room-order.js';

/**
 * @typedef {import('./protocol.js').AckFrame} AckFrame
 * @typedef {import('./protocol.js').MembersFrame} MembersFrame
 * @typedef {import('./protocol.js').IdentityFrame} IdentityFrame
 * @typedef {import('./protocol.js').PongFrame} PongFrame
 * @typedef {import('./protocol.js').HistoryFrame} HistoryFrame
 * @typedef {import('./protocol.js').Frame} Frame
 */

/** A request the server refused: `code` is the `error` frame's code (`not_member`, ...). */
export class RequestError extends Error {
  /** @param {string} code @param {string} message @param {object} [frame] */
  constructor(code, message, frame) {
    super(`${code}: ${message}`);
    this.name = 'RequestError';
    this.code = code;
    this.frame = frame;
  }
}

/**
 * The private inbox room of `principal` (a token's `sub`), as the service names it: `user:{sub}`
 * when that is a room name (1-64 of `[A-Za-z0-9_.:-]`) and does not start with `x.`, otherwise
 * `user:x.` and the SHA-256 of the principal in lower-case base32 without padding. A backend
 * publishes to this room to reach one user; only that user's connections may join it.
 * @param {string} principal
 * @returns {Promise<string>}
 */
export async function inboxOf(principal) {
  const plain = `${INBOX_PREFIX}${principal}`;
  if (!principal.startsWith(HASHED_INBOX_MARK) && ROOM_NAME.test(plain)) {
    return plain;
  }
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(principal));
  return `${INBOX_PREFIX}${HASHED_INBOX_MARK}${base32Lower(new Uint8Array(digest))}`;
}

/** RFC 4648 base32, lower case, no padding. @param {Uint8Array} bytes */
function base32Lower(bytes) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += alphabet[(buffer >> bits) & 31];
    }
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

/** Frame types that answer a request by themselves (no `ack` follows them). */
const ANSWERING = new Set(ANSWER_TYPES);
/** Frame types the client emits as events of their own. */
const EVENT_TYPES = new Set([FRAME_TYPES.MESSAGE, FRAME_TYPES.TYPING, FRAME_TYPES.PRESENCE]);
/** History pages one gap fill reads at most (100 messages each). */
const MAX_FILL_PAGES = 20;

/**
 * Events (an `EventTarget`; each event's `detail` is the frame or the state):
 * `message`, `typing`, `presence`, `frame` (every frame), `state` ({@link ConnectionState}).
 */
export class WsClient extends EventTarget {
  /** @param {ClientOptions} options */
  constructor(options) {
    super();
    if (!options || typeof options.url !== 'string') throw new TypeError('options.url is required');
    this.options = {
      token: () => null,
      WebSocket: globalThis.WebSocket,
      pingIntervalMs: 5 * 60 * 1000,
      requestTimeoutMs: 10_000,
      backoffBaseMs: 500,
      backoffMaxMs: 30_000,
      dedupeWindow: 1000,
      reauthBeforeMs: 60_000,
      ...options,
    };
    if (typeof this.options.WebSocket !== 'function') {
      throw new TypeError('no WebSocket: pass options.WebSocket (Node 20: --experimental-websocket)');
    }
    /** @type {ConnectionState} */
    this.state = 'idle';
    /** The connection id the server gave this socket (from `whoami` after each connect). */
    this.connectionId = null;
    /** @type {Set<string>} rooms to join again after a reconnect */
    this.rooms = new Set();
    /** @type {Map<string, RoomOrder>} each joined room's order: its last `seq`, its buffer */
    this.orders = new Map();
    this.socket = null;
    this.socketOpen = false;
    this.pending = new Map();
    this.seenIds = new Set();
    this.nextRequest = 1;
    this.attempt = 0;
    this.refreshToken = false;
    this.timers = { ping: null, reconnect: null, reauth: null };
    /** The last `closing` frame: after `kicked` or `banned` the client does not reconnect. */
    this.closedBy = null;
  }

  /** Opens the socket; resolves once it is open and rooms are joined again. */
  connect() {
    if (this.state === 'open') return Promise.resolve();
    this.closing = false;
    this.closedBy = null;
    return new Promise((resolve, reject) => {
      this.opened = { resolve, reject };
      this.open();
    });
  }

  /** Closes for good: no reconnect. Pending requests reject. */
  close() {
    this.closing = true;
    clearTimeout(this.timers.reconnect);
    clearTimeout(this.timers.reauth);
    clearInterval(this.timers.ping);
    if (this.socket) this.socket.close(1000, 'client closed');
    this.socket = null;
    this.failPending(new Error('the client was closed'));
    this.opened?.reject(new Error('the client was closed'));
    this.opened = null;
    this.setState('closed');
  }

  /** @param {string} room @returns {Promise<AckFrame>} */
  async join(room) {
    this.orderOf(room);
    const ack = await this.request({ action: ACTIONS.JOIN, room });
    // The room's stream starts there for this member: a message it misses later is a gap.
    this.orderOf(room).startAfter(ack.seq);
    this.rooms.add(room);
    return ack;
  }

  /** @param {string} room @returns {Promise<AckFrame>} */
  async leave(room) {
    this.rooms.delete(room);
    this.orders.get(room)?.reset();
    this.orders.delete(room);
    return this.request({ action: ACTIONS.LEAVE, room });
  }

  /** The last `seq` of `room` handed to the application (null before the first).
   * @param {string} room @returns {number | null} */
  lastSeq(room) {
    return this.orders.get(room)?.lastSeq ?? null;
  }

  /**
   * One page of `room`'s history: `{after}` pages up, `{before}` down, both bound a range;
   * pass the answer's `cursor` for the next page.
   * @param {string} room
   * @param {{after?: number, before?: number, limit?: number, cursor?: string}} [page]
   * @returns {Promise<HistoryFrame>}
   */
  history(room, page = {}) {
    const body = { action: ACTIONS.HISTORY, room };
    for (const key of ['after', 'before', 'limit', 'cursor']) {
      if (page[key] !== undefined) body[key] = page[key];
    }
    return this.request(body);
  }

  /** @param {string} room @param {unknown} data @returns {Promise<AckFrame>} */
  publish(room, data) {
    return this.request({ action: ACTIONS.PUBLISH, room, data });
  }

  /** @param {unknown} data Everyone connected gets it. @returns {Promise<AckFrame>} */
  broadcast(data) {
    return this.request({ action: ACTIONS.SENDMESSAGE, data });
  }

  /** @param {string} to A connection id. @param {unknown} data @returns {Promise<AckFrame>} */
  sendTo(to, data) {
    return this.request({ action: ACTIONS.SEND, to, data });
  }

  /** @param {string} room @returns {Promise<AckFrame>} */
  typing(room) {
    return this.request({ action: ACTIONS.TYPING, room });
  }

  /** One page of a room's member list; pass the answer's `cursor` for the next one.
   * @param {string} room @param {string} [cursor] @returns {Promise<MembersFrame>} */
  members(room, cursor) {
    return this.request(cursor ? { action: ACTIONS.MEMBERS, room, cursor } : { action: ACTIONS.MEMBERS, room });
  }

  /** @returns {Promise<IdentityFrame>} */
  whoami() {
    return this.request({ action: ACTIONS.WHOAMI });
  }

  /** @returns {Promise<PongFrame>} */
  ping() {
    return this.request({ action: ACTIONS.PING });
  }

  /**
   * Sends `body` with a fresh `requestId`; resolves with the frame that answers it, rejects with
   * a {@link RequestError} on an `error` frame, or with a timeout.
   * @param {Record<string, unknown>} body
   * @returns {Promise<any>} the answering frame (its type depends on the action)
   */
  request(body) {
    if (!this.socket || !this.socketOpen) {
      return Promise.reject(new Error(`not connected (${this.state})`));
    }
    const requestId = `c${this.nextRequest++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`no answer to ${String(body.action)} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...body, requestId }));
    });
  }

  // --- Internals ---------------------------------------------------------------------------

  async open() {
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let url = this.options.url;
    try {
      const token = await this.options.token({ refresh: this.refreshToken });
      if (token) url += `${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    } catch (error) {
      this.scheduleReconnect(error);
      return;
    }
    if (this.closing) return;
    const socket = new this.options.WebSocket(url);
    this.socket = socket;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
      this.onOpen();
    });
    socket.addEventListener('message', (event) => this.onFrame(event.data));
    // A refused handshake fires `error` and, depending on the runtime, `close` too (Node 20's
    // fires only `error`): whichever comes first ends this socket, once.
    const ended = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.socketOpen = false;
      clearInterval(this.timers.ping);
      clearTimeout(this.timers.reauth);
      this.failPending(new Error('the connection closed'));
      // Kicked or banned: reconnecting would only be refused (403) again and again.
      if (this.closedBy === 'kicked' || this.closedBy === 'banned') {
        this.closing = true;
        this.setState('closed', new Error(`closed by the service: ${this.closedBy}`));
        return;
      }
      // Ended before it opened: the handshake was refused, maybe for the token (401).
      if (!opened) this.refreshToken = true;
      if (!this.closing) this.scheduleReconnect();
    };
    socket.addEventListener('close', ended);
    socket.addEventListener('error', () => {
      if (!opened) ended();
    });
  }

  async onOpen() {
    this.socketOpen = true;
    this.attempt = 0;
    this.refreshToken = false;
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      this.ping().catch(() => {}); // a lost pong shows up as a close, and a reconnect
    }, this.options.pingIntervalMs);
    try {
      const identity = await this.whoami();
      this.connectionId = identity.connectionId ?? null;
      this.scheduleReauth(identity.expiresAt);
      // Each room again, from the last message the application got: the server replays the rest.
      await Promise.all([...this.rooms].map((room) => {
        const since = this.lastSeq(room);
        if (since !== null) return this.request({ action: ACTIONS.JOIN, room, since });
        return this.request({ action: ACTIONS.JOIN, room }).then((ack) => this.orderOf(room).startAfter(ack.seq));
      }));
      // Open means usable: the rooms of before the reconnect are joined again.
      this.setState('open');
      this.opened?.resolve();
    } catch (error) {
      this.opened?.reject(error);
    }
    this.opened = null;
  }

  /** @param {unknown} raw */
  onFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(String(raw));
    } catch {
      return; // not ours: the protocol only sends JSON objects
    }
    if (!frame || typeof frame !== 'object') return;
    const waiting = frame.requestId !== undefined && this.pending.get(frame.requestId);
    if (waiting && ANSWERING.has(frame.type)) {
      this.pending.delete(frame.requestId);
      clearTimeout(waiting.timer);
      if (frame.type === FRAME_TYPES.ERROR) waiting.reject(new RequestError(frame.code, frame.message, frame));
      else waiting.resolve(frame);
      return;
    }
    const order = typeof frame.room === 'string' ? this.orders.get(frame.room) : undefined;
    if (frame.type === FRAME_TYPES.MESSAGE && order && typeof frame.seq === 'number') {
      order.offer(frame); // handed on by its order, exactly once
      return;
    }
    if (frame.type === FRAME_TYPES.RESET && order) order.reset();
    if (frame.type === FRAME_TYPES.CLOSING) {
      this.closedBy = frame.code;
      // Closed for its token (not kicked or banned): the next handshake asks for a new one.
      if (frame.code !== 'kicked' && frame.code !== 'banned') this.refreshToken = true;
    }
    if (frame.type === FRAME_TYPES.MESSAGE && typeof frame.id === 'string') {
      if (this.seenIds.has(frame.id)) return;
      this.seenIds.add(frame.id);
      if (this.seenIds.size > this.options.dedupeWindow) {
        this.seenIds.delete(this.seenIds.values().next().value);
      }
    }
    this.deliver(frame);
  }

  /** Emits a frame to the application: as `frame`, and as its own type's event. */
  deliver(frame) {
    this.emit('frame', frame);
    if (EVENT_TYPES.has(frame.type)) this.emit(frame.type, frame);
    if (frame.type === FRAME_TYPES.RESET) this.emit('reset', frame);
    if (frame.type === FRAME_TYPES.CLOSING) this.emit('closing', frame);
  }

  /** Renews the session `reauthBeforeMs` before `expiresAt` (ms since the epoch) with a fresh
   * token from the provider; again before the new token's expiry. A refused renewal is left to
   * expiry: the service then closes with `token_expired`, and the reconnect asks for a token. */
  scheduleReauth(expiresAt) {
    clearTimeout(this.timers.reauth);
    if (typeof expiresAt !== 'number') return;
    // `reauthBeforeMs` ahead, or halfway for a token that lives less than twice that; never at
    // once (a renewal that fails is not retried in a loop) and within what setTimeout can wait.
    const remaining = expiresAt - Date.now();
    const before = this.options.reauthBeforeMs;
    const ahead = remaining > 2 * before ? remaining - before : remaining / 2;
    const wait = Math.min(Math.max(ahead, 1_000), 2 ** 31 - 1);
    this.timers.reauth = setTimeout(async () => {
      try {
        const token = await this.options.token({ refresh: true });
        if (!token) return;
        await this.request({ action: ACTIONS.REAUTH, token });
        this.scheduleReauth((await this.whoami()).expiresAt);
        this.emit('reauth', { ok: true });
      } catch (error) {
        this.emit('reauth', { ok: false, error });
      }
    }, wait);
  }

  /** The order of `room`, made on first need. @param {string} room */
  orderOf(room) {
    let order = this.orders.get(room);
    if (!order) {
      order = new RoomOrder(room, {
        deliver: (frame) => this.deliver(frame),
        fill: (name, after, before) => this.fillFromHistory(name, after, before),
      });
      this.orders.set(room, order);
    }
    return order;
  }

  /** Every kept message of `room` between `after` and `before`, or null when history cannot say
   * (it is off, or the socket is down). */
  async fillFromHistory(room, after, before) {
    const found = [];
    let page = { after, before, limit: 100 };
    for (let i = 0; i < MAX_FILL_PAGES; i += 1) {
      let answer;
      try {
        answer = await this.history(room, page);
      } catch {
        return null;
      }
      found.push(...(answer.messages ?? []));
      if (!answer.cursor) return found;
      page = { cursor: answer.cursor, limit: 100 };
    }
    return found;
  }

  scheduleReconnect(error) {
    if (this.closing) return;
    this.attempt += 1;
    // Full jitter: clients dropped together do not come back together.
    const ceiling = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffBaseMs * 2 ** Math.min(this.attempt - 1, 20),
    );
    const delay = Math.random() * ceiling;
    this.setState('reconnecting', error);
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this.open(), delay);
  }

  failPending(error) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this.pending.clear();
  }

  /** @param {ConnectionState} state */
  setState(state, error) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state, error });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
