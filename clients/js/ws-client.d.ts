// The client's public API. The frame and request types come from protocol.d.ts, generated from
// the service's declarations; test/types.test.mjs compiles test/usage.ts against this file
// (strict) and checks that every method declared here is the client's own, and no other.

import type {
  AckFrame,
  ClosingFrame,
  Frame,
  HistoryFrame,
  IdentityFrame,
  MembersFrame,
  MessageFrame,
  PongFrame,
  PresenceFrame,
  ResetFrame,
  TypingFrame,
} from './protocol.js';

export * from './protocol.js';

export interface TokenRequest {
  /** true when the last handshake failed: do not reuse a cached token. */
  refresh: boolean;
}

export interface ClientOptions {
  /** The WebSocket URL, `wss://{api}.execute-api.{region}.amazonaws.com/{stage}`. */
  url: string;
  /** Returns the token sent as `?token=`; none when authentication is off. */
  token?: (request: TokenRequest) => string | null | Promise<string | null>;
  /** The constructor; the global one by default. */
  WebSocket?: typeof WebSocket;
  /** Keepalive period; default 5 minutes (API Gateway closes a socket idle for 10). */
  pingIntervalMs?: number;
  /** How long a request waits for its answer; default 10 s. */
  requestTimeoutMs?: number;
  /** First reconnect delay ceiling; default 500 ms. */
  backoffBaseMs?: number;
  /** Largest reconnect delay; default 30 s. */
  backoffMaxMs?: number;
  /** How many message ids are remembered to drop duplicates; default 1 000. */
  dedupeWindow?: number;
  /** How long before the token's `expiresAt` the client renews it (`reauth`, with a token from
   * the provider asked with `refresh: true`); default 60 s. */
  reauthBeforeMs?: number;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A request the server refused: `code` is the `error` frame's code (`not_member`, ...). */
export declare class RequestError extends Error {
  constructor(code: string, message: string, frame?: object);
  readonly code: string;
  readonly frame: object | undefined;
}

/**
 * The private inbox room of `principal` (a token's `sub`), as the service names it: a backend
 * publishes there to reach one user; only that user's connections may join it.
 */
export declare function inboxOf(principal: string): Promise<string>;

export interface ClientEvents {
  /** Room messages come in `seq` order, each once; others as they come, each once by `id`. */
  message: CustomEvent<MessageFrame>;
  /** The server could not bring a room up to date after a reconnect: read its state again. */
  reset: CustomEvent<ResetFrame>;
  typing: CustomEvent<TypingFrame>;
  presence: CustomEvent<PresenceFrame>;
  frame: CustomEvent<Frame>;
  state: CustomEvent<{ state: ConnectionState; error?: unknown }>;
  /** The service is closing the socket: after `kicked` or `banned` the client stays closed
   * (state `closed`); after `token_expired` it reconnects with a fresh token. */
  closing: CustomEvent<ClosingFrame>;
  /** A renewal before the token's expiry succeeded or was refused. */
  reauth: CustomEvent<{ ok: boolean; error?: unknown }>;
}

/** One room's messages in `seq` order, each once (the client keeps one per joined room). */
export declare class RoomOrder {
  constructor(
    room: string,
    io: {
      deliver: (frame: MessageFrame) => void;
      fill: (room: string, after: number, before: number) => Promise<MessageFrame[] | null>;
      gapWaitMs?: number;
      maxBuffered?: number;
    },
  );
  readonly lastSeq: number | null;
  startAfter(seq: number | undefined): void;
  offer(frame: MessageFrame): void;
  reset(): void;
}

export declare class WsClient extends EventTarget {
  constructor(options: ClientOptions);
  readonly state: ConnectionState;
  /** The connection id the server gave this socket (from `whoami` after each connect). */
  readonly connectionId: string | null;
  /** Rooms joined through this client, joined again after a reconnect. */
  readonly rooms: Set<string>;
  /** Opens the socket; resolves once it is open and the rooms are joined again. */
  connect(): Promise<void>;
  /** Closes for good: no reconnect. Pending requests reject. */
  close(): void;
  join(room: string): Promise<AckFrame>;
  leave(room: string): Promise<AckFrame>;
  publish(room: string, data: unknown): Promise<AckFrame>;
  /** Everyone connected gets it. */
  broadcast(data: unknown): Promise<AckFrame>;
  sendTo(connectionId: string, data: unknown): Promise<AckFrame>;
  typing(room: string): Promise<AckFrame>;
  /** One page of a room's member list; pass the answer's `cursor` for the next one. */
  members(room: string, cursor?: string): Promise<MembersFrame>;
  /** The last `seq` of `room` handed to the application (null before the first). */
  lastSeq(room: string): number | null;
  /** One page of `room`'s history; pass the answer's `cursor` for the next. */
  history(
    room: string,
    page?: { after?: number; before?: number; limit?: number; cursor?: string },
  ): Promise<HistoryFrame>;
  whoami(): Promise<IdentityFrame>;
  ping(): Promise<PongFrame>;
  /** Sends `body` with a fresh `requestId`; resolves with the frame that answers it. */
  request(body: Record<string, unknown>): Promise<Frame>;
  addEventListener<K extends keyof ClientEvents>(
    type: K,
    listener: (event: ClientEvents[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}
