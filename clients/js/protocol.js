// Generated from domain/src/actions and domain/src/protocol by `UPDATE_GENERATED=1 cargo test -p domain generated`: do not edit.

/** The protocol version every `identity` frame carries (docs/UPGRADING.md). */
export const PROTOCOL_VERSION = 3;

/** Every action's `action` value. */
export const ACTIONS = Object.freeze({
  SENDMESSAGE: 'sendmessage',
  SEND: 'send',
  JOIN: 'join',
  LEAVE: 'leave',
  PUBLISH: 'publish',
  TYPING: 'typing',
  MEMBERS: 'members',
  HISTORY: 'history',
  PING: 'ping',
  WHOAMI: 'whoami',
  REAUTH: 'reauth',
});

/** Every frame's `type`. */
export const FRAME_TYPES = Object.freeze({
  MESSAGE: 'message',
  PONG: 'pong',
  IDENTITY: 'identity',
  TYPING: 'typing',
  PRESENCE: 'presence',
  MEMBERS: 'members',
  HISTORY: 'history',
  RESET: 'reset',
  CLOSING: 'closing',
  ACK: 'ack',
  ERROR: 'error',
});

/** The frame type that answers each action's request. */
export const ANSWERS = Object.freeze({
  sendmessage: 'ack',
  send: 'ack',
  join: 'ack',
  leave: 'ack',
  publish: 'ack',
  typing: 'ack',
  members: 'members',
  history: 'history',
  ping: 'pong',
  whoami: 'identity',
  reauth: 'ack',
});

/** Frame types that answer a request by themselves (no `ack` follows them). */
export const ANSWER_TYPES = Object.freeze(['ack', 'members', 'history', 'pong', 'identity', 'error']);

/** Every `error` frame's `code`. */
export const ERROR_CODES = Object.freeze(['bad_json', 'unknown_action', 'invalid_field', 'too_large', 'not_member', 'unknown_connection', 'too_many_rooms', 'forbidden', 'rate_limited', 'rejected', 'room_busy', 'history_off', 'token_expired', 'reauth_refused']);

/** A room name. */
export const ROOM_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** What starts a principal's inbox room, and what marks one named by a hash. */
export const INBOX_PREFIX = 'user:';
export const HASHED_INBOX_MARK = 'x.';

/** API Gateway's limit on one message, either way. */
export const MAX_MESSAGE_BYTES = 131072;
