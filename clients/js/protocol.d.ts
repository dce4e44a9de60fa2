// Generated from domain/src/actions and domain/src/protocol by `UPDATE_GENERATED=1 cargo test -p domain generated`: do not edit.

/** One member of a room, as the members frame lists it. */
export interface Member {
  connectionId: string;
  principal: string | null;
}

export type ErrorCode = 'bad_json' | 'unknown_action' | 'invalid_field' | 'too_large' | 'not_member' | 'unknown_connection' | 'too_many_rooms' | 'forbidden' | 'rate_limited' | 'rejected' | 'room_busy' | 'history_off' | 'token_expired' | 'reauth_refused';

/** data to every live connection */
export interface SendmessageRequest {
  action: 'sendmessage';
  /** any JSON value, delivered byte for byte */
  data: unknown;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** data to one connection; unknown_connection if it is not connected */
export interface SendRequest {
  action: 'send';
  /** the recipient's connection id */
  to: string;
  /** any JSON value, delivered byte for byte */
  data: unknown;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** join the room (at most MAX_ROOMS_PER_CONNECTION of them: too_many_rooms); the room policy decides who may (forbidden) */
export interface JoinRequest {
  action: 'join';
  /** the room */
  room: string;
  /** the last seq of this room the client saw: after the ack, every later message is replayed (or a reset says it cannot be) */
  since?: number;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** leave the room; leaving a room one is not in succeeds */
export interface LeaveRequest {
  action: 'leave';
  /** the room */
  room: string;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** data to the room's members; the sender must be one (not_member) allowed to speak there (forbidden) */
export interface PublishRequest {
  action: 'publish';
  /** the room */
  room: string;
  /** any JSON value, delivered byte for byte */
  data: unknown;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** a typing frame to the room's other members, never to the sender; the sender must be a member (not_member) allowed to speak there (forbidden); nothing is stored */
export interface TypingRequest {
  action: 'typing';
  /** the room */
  room: string;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** one page of at most 100 members in connection-id order, to a member of the room (not_member); send the cursor back for the next page */
export interface MembersRequest {
  action: 'members';
  /** the room */
  room: string;
  /** the cursor of the previous members frame, for the next page */
  cursor?: string;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** one page of the room's kept messages in seq order, to a member of the room (not_member) the room policy lets read it (forbidden); history_off when the service keeps none */
export interface HistoryRequest {
  action: 'history';
  /** the room */
  room: string;
  /** pages go up from the first message after this seq (default: from the oldest kept) */
  after?: number;
  /** pages go down from the last message before this seq; with after, pages go up from after and stop before it */
  before?: number;
  /** messages in a page, 1 to 100 (default 50); a page also stops at the frame limit */
  limit?: number;
  /** the cursor of the previous history frame, for the next page (after and before are then ignored) */
  cursor?: string;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** pong: keeps the socket past API Gateway's 10-minute idle timeout */
export interface PingRequest {
  action: 'ping';
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** identity: your connection id and principal */
export interface WhoamiRequest {
  action: 'whoami';
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** renew the session with a fresh token for the same principal before the current one expires; reauth_refused if it does not check out */
export interface ReauthRequest {
  action: 'reauth';
  /** a fresh token for the same principal, as the authorizer accepts them */
  token: string;
  /** echoed in the frame that answers the request */
  requestId?: string;
}

/** A message from a connection (sendmessage, publish, send) or from a backend. */
export interface MessageFrame {
  type: 'message';
  /** the same on every copy of one message, redeliveries included: drop duplicates by it */
  id: string;
  /** the sending connection; absent for a backend's publish */
  from?: string;
  /** the sender's principal (its token's sub), when authentication is on */
  principal?: string;
  /** the room it was published to */
  room?: string;
  /** its place in the room's stream, strictly increasing (room messages only): order and resume by it */
  seq?: number;
  /** any JSON value, delivered byte for byte */
  data: unknown;
  /** when it was sent, in milliseconds since the epoch (the service's clock) */
  sentAt: number;
}

/** The answer to ping. */
export interface PongFrame {
  type: 'pong';
  /** the requestId of the request this answers */
  requestId?: string;
}

/** The answer to whoami. */
export interface IdentityFrame {
  type: 'identity';
  /** this connection's id */
  connectionId: string;
  /** this connection's principal, null when authentication is off */
  principal: string | null;
  /** the protocol this server speaks; docs/UPGRADING.md lists what each version changed */
  protocolVersion: number;
  /** when this connection's token expires, in milliseconds since the epoch: reauth before it */
  expiresAt?: number;
  /** the requestId of the request this answers */
  requestId?: string;
}

/** Someone in the room is typing; never sent to the typist. */
export interface TypingFrame {
  type: 'typing';
  /** the typing connection */
  from: string;
  /** the sender's principal (its token's sub), when authentication is on */
  principal?: string;
  /** the room */
  room: string;
}

/** A member joined or left a room of at most PRESENCE_MAX_MEMBERS members. */
export interface PresenceFrame {
  type: 'presence';
  /** the room */
  room: string;
  /** joined or left */
  event: 'joined' | 'left';
  /** who joined or left */
  connectionId: string;
  /** the sender's principal (its token's sub), when authentication is on */
  principal?: string;
}

/** One page of a room's member list, in connection-id order. */
export interface MembersFrame {
  type: 'members';
  /** the room */
  room: string;
  /** at most 100 members */
  members: Member[];
  /** how many members this page holds */
  count: number;
  /** send it back in the next members request for the next page; absent on the last */
  cursor?: string;
  /** the requestId of the request this answers */
  requestId?: string;
}

/** One page of a room's kept messages, in seq order (upward from after, downward from before), within the frame limit. */
export interface HistoryFrame {
  type: 'history';
  /** the room */
  room: string;
  /** message frames, as members received them live */
  messages: MessageFrame[];
  /** send it back in the next history request for the next page; absent on the last */
  cursor?: string;
  /** the requestId of the request this answers */
  requestId?: string;
}

/** A join with since cannot be brought up to date by replay (older than the history keeps, or too far behind): read the room's state again. */
export interface ResetFrame {
  type: 'reset';
  /** the room */
  room: string;
  /** the oldest seq the history still keeps, when it keeps any */
  oldestSeq?: number;
}

/** The service is closing this socket: kicked or banned by the operator, or its token expired. Do not reconnect after kicked or banned. */
export interface ClosingFrame {
  type: 'closing';
  /** why: kicked, banned or token_expired */
  code: 'kicked' | 'banned' | 'token_expired';
  /** the operator's words, for people */
  reason?: string;
}

/** The answer to a request with a requestId whose action has no answer of its own. */
export interface AckFrame {
  type: 'ack';
  /** the request's requestId */
  requestId: string;
  /** recipients posted to inline */
  delivered: number;
  /** recipients found gone (410) */
  gone: number;
  /** recipients no retry can reach: a deploy fault, or, without a delivery queue, posts that kept failing */
  failed: number;
  /** whether part of the audience was handed to the delivery queue */
  queued: boolean;
  /** recipients of the inline part handed to the queue for another try (throttled, failing, or out of time) */
  requeued: number;
  /** a join without since: the room's latest seq just before joining (0: none yet); every later message reaches the member, so a client keeps it as its last seq */
  seq?: number;
}

/** A request was refused; nothing was done for it. */
export interface ErrorFrame {
  type: 'error';
  /** what went wrong */
  code: 'bad_json' | 'unknown_action' | 'invalid_field' | 'too_large' | 'not_member' | 'unknown_connection' | 'too_many_rooms' | 'forbidden' | 'rate_limited' | 'rejected' | 'room_busy' | 'history_off' | 'token_expired' | 'reauth_refused';
  /** for people, never parse it */
  message: string;
  /** the requestId of the request this answers */
  requestId?: string;
  /** when a retry can succeed (rate_limited) */
  retryAfterMs?: number;
}

/** Every request a client can send. */
export type Request = SendmessageRequest | SendRequest | JoinRequest | LeaveRequest | PublishRequest | TypingRequest | MembersRequest | HistoryRequest | PingRequest | WhoamiRequest | ReauthRequest;

/** Every frame the server sends. */
export type Frame = MessageFrame | PongFrame | IdentityFrame | TypingFrame | PresenceFrame | MembersFrame | HistoryFrame | ResetFrame | ClosingFrame | AckFrame | ErrorFrame;

/** The frame that answers each action's request. */
export interface Answers {
  sendmessage: AckFrame;
  send: AckFrame;
  join: AckFrame;
  leave: AckFrame;
  publish: AckFrame;
  typing: AckFrame;
  members: MembersFrame;
  history: HistoryFrame;
  ping: PongFrame;
  whoami: IdentityFrame;
  reauth: AckFrame;
}

export declare const PROTOCOL_VERSION: 3;
export declare const ACTIONS: {
  readonly SENDMESSAGE: 'sendmessage';
  readonly SEND: 'send';
  readonly JOIN: 'join';
  readonly LEAVE: 'leave';
  readonly PUBLISH: 'publish';
  readonly TYPING: 'typing';
  readonly MEMBERS: 'members';
  readonly HISTORY: 'history';
  readonly PING: 'ping';
  readonly WHOAMI: 'whoami';
  readonly REAUTH: 'reauth';
};
export declare const FRAME_TYPES: {
  readonly MESSAGE: 'message';
  readonly PONG: 'pong';
  readonly IDENTITY: 'identity';
  readonly TYPING: 'typing';
  readonly PRESENCE: 'presence';
  readonly MEMBERS: 'members';
  readonly HISTORY: 'history';
  readonly RESET: 'reset';
  readonly CLOSING: 'closing';
  readonly ACK: 'ack';
  readonly ERROR: 'error';
};
export declare const ANSWERS: { readonly [A in keyof Answers]: Answers[A]['type'] };
export declare const ANSWER_TYPES: readonly Frame['type'][];
export declare const ERROR_CODES: readonly ErrorCode[];
export declare const ROOM_NAME: RegExp;
export declare const INBOX_PREFIX: string;
export declare const HASHED_INBOX_MARK: string;
export declare const MAX_MESSAGE_BYTES: number;
