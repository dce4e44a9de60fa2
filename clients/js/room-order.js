// A room's messages to the application exactly once and in `seq` order, whatever the network
// does: duplicates (at-least-once delivery, a replay overlapping live messages) are dropped by
// `seq`, and a message that comes before the ones it follows waits in a bounded buffer until the
// gap closes by itself, or is filled from the room's `history`, or is found to hold nothing.
//
// Pure: it sends nothing itself. `deliver(frame)` hands a message to the application;
// `fill(room, after, before)` asks for the messages between (a `history` request) and resolves
// with them, or with null when history cannot say (then the gap is skipped, in order).

/** How long a gap may stay open before history is asked to fill it. */
export const GAP_WAIT_MS = 1_000;
/** Messages held at most while a gap is open; past it, history is asked at once. */
export const MAX_BUFFERED = 1_000;

export class RoomOrder {
  /**
   * @param {string} room
   * @param {{deliver: (frame: object) => void,
   *          fill: (room: string, after: number, before: number) => Promise<object[] | null>,
   *          setTimer?: typeof setTimeout, clearTimer?: typeof clearTimeout,
   *          gapWaitMs?: number, maxBuffered?: number}} io
   */
  constructor(room, io) {
    this.room = room;
    this.io = io;
    /** The last `seq` handed to the application; null before the first. */
    this.last = null;
    /** @type {Map<number, object>} messages waiting for the gap below them to close */
    this.buffer = new Map();
    this.timer = null;
    this.filling = false;
  }

  /** Where the application is: the `since` to rejoin with. */
  get lastSeq() {
    return this.last;
  }

  /** Where a join without `since` starts this member's stream (its `ack`'s `seq`): every later
   * message is owed, and a gap above it is filled. Ignored once the order has started. */
  startAfter(seq) {
    if (this.last === null && typeof seq === 'number') this.last = seq;
  }

  /** A message of this room as it came. */
  offer(frame) {
    const seq = frame.seq;
    if (typeof seq !== 'number') {
      this.io.deliver(frame); // a room message without a place (a server without streams)
      return;
    }
    if (this.last === null) this.last = seq - 1; // the first message after a join starts the order
    if (seq <= this.last || this.buffer.has(seq)) return; // already delivered, or waiting
    this.buffer.set(seq, frame);
    this.flush();
    if (this.buffer.size > (this.io.maxBuffered ?? MAX_BUFFERED)) this.fillGap();
    else this.armTimer();
  }

  /** The server said the replay cannot bring this client up to date: start over from the next. */
  reset() {
    this.last = null;
    this.buffer.clear();
    this.disarm();
  }

  /** Hands over every message that now follows in order. */
  flush() {
    while (this.buffer.has(this.last + 1)) {
      const frame = this.buffer.get(this.last + 1);
      this.buffer.delete(this.last + 1);
      this.last += 1;
      this.io.deliver(frame);
    }
    if (this.buffer.size === 0) this.disarm();
  }

  armTimer() {
    if (this.timer !== null || this.buffer.size === 0) return;
    const set = this.io.setTimer ?? setTimeout;
    this.timer = set(() => {
      this.timer = null;
      this.fillGap();
    }, this.io.gapWaitMs ?? GAP_WAIT_MS);
  }

  disarm() {
    if (this.timer === null) return;
    (this.io.clearTimer ?? clearTimeout)(this.timer);
    this.timer = null;
  }

  /** Asks history for what lies between the last delivered and the first waiting message. */
  async fillGap() {
    if (this.filling || this.buffer.size === 0) return;
    this.filling = true;
    this.disarm();
    const after = this.last;
    const before = Math.min(...this.buffer.keys());
    let found = null;
    try {
      found = await this.io.fill(this.room, after, before);
    } catch {
      found = null;
    }
    this.filling = false;
    if (this.last !== after) return this.armTimer(); // a reset or the gap closed meanwhile
    for (const frame of found ?? []) {
      if (typeof frame.seq === 'number' && frame.seq > this.last && frame.seq < before) {
        this.buffer.set(frame.seq, frame);
      }
    }
    this.flush();
    // What history does not hold between the two is no message: numbers skipped, or expired.
    if (this.buffer.size > 0 && !this.buffer.has(this.last + 1)) {
      const next = Math.min(...this.buffer.keys());
      if (next <= before) this.last = next - 1;
      this.flush();
    }
    this.armTimer();
  }
}
