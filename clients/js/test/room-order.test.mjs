// The reorder-and-dedupe buffer, by property: for any room log, any interleaving of live
// messages with duplicates, delays and losses yields the log to the application exactly once and
// in order, with the losses filled from history; numbers the log skipped are no gap forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { RoomOrder } from '../room-order.js';

/** A RoomOrder over `log`, with timers the test fires by hand. */
function harness(log, { historyOff = false } = {}) {
  const delivered = [];
  const timers = new Map();
  let nextTimer = 1;
  const fills = [];
  const order = new RoomOrder('r', {
    deliver: (frame) => delivered.push(frame),
    fill: async (room, after, before) => {
      fills.push([after, before]);
      if (historyOff) return null;
      return log.filter((m) => m.seq > after && m.seq < before);
    },
    setTimer: (fn) => { const id = nextTimer++; timers.set(id, fn); return id; },
    clearTimer: (id) => timers.delete(id),
    maxBuffered: 50,
  });
  /** Fires pending timers until none is left (bounded), letting fills resolve between. */
  const settle = async () => {
    for (let round = 0; round < 200 && (timers.size > 0 || order.filling); round += 1) {
      const due = [...timers.entries()];
      timers.clear();
      for (const [, fn] of due) fn();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { order, delivered, settle, fills };
}

/** A room's log: seqs from 1 with some skipped (a failed backend run's), each with its id. */
const roomLog = fc
  .array(fc.boolean(), { minLength: 1, maxLength: 80 })
  .map((skips) => {
    const log = [];
    skips.forEach((skipped, i) => {
      if (!skipped || i === skips.length - 1) log.push({ type: 'message', room: 'r', seq: i + 1, id: `m${i + 1}` });
    });
    return log;
  });

/** What the network makes of the log: each message lost, once or several times, reordered; the
 * last one always arrives (a later message is how any gap is noticed). */
const arrivals = (log) => fc
  .tuple(
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: log.length, maxLength: log.length }),
    fc.array(fc.nat(), { minLength: log.length * 3, maxLength: log.length * 3 }),
  )
  .map(([copies, keys]) => {
    const live = [];
    log.forEach((message, i) => {
      const n = i === log.length - 1 ? Math.max(1, copies[i]) : copies[i];
      for (let c = 0; c < n; c += 1) live.push(message);
    });
    return live
      .map((message, i) => ({ message, key: keys[i % keys.length] }))
      .sort((a, b) => a.key - b.key)
      .map(({ message }) => message);
  });

test('any interleaving yields the log once and in order, losses filled from history', async () => {
  await fc.assert(
    fc.asyncProperty(roomLog.chain((log) => fc.tuple(fc.constant(log), arrivals(log))), async ([log, live]) => {
      const { order, delivered, settle } = harness(log);
      order.offer({ type: 'message', room: 'r', seq: 0, id: 'start' }); // joined at 0
      for (const frame of live) order.offer(frame);
      await settle();
      assert.deepEqual(delivered.slice(1).map((m) => m.id), log.map((m) => m.id));
      assert.equal(order.lastSeq, log[log.length - 1].seq);
    }),
    { numRuns: 300 },
  );
});

test('without history, messages still come in order and each once; a lost one is skipped', async () => {
  await fc.assert(
    fc.asyncProperty(roomLog.chain((log) => fc.tuple(fc.constant(log), arrivals(log))), async ([log, live]) => {
      const { order, delivered, settle } = harness(log, { historyOff: true });
      order.offer({ type: 'message', room: 'r', seq: 0, id: 'start' });
      for (const frame of live) order.offer(frame);
      await settle();
      const seqs = delivered.map((m) => m.seq);
      assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'increasing, no repeat');
      assert.equal(order.lastSeq, log[log.length - 1].seq);
    }),
    { numRuns: 200 },
  );
});

test('a reset starts the order again from the next message, forgetting what waited', async () => {
  const log = [1, 2, 3, 10, 11].map((seq) => ({ type: 'message', room: 'r', seq, id: `m${seq}` }));
  const { order, delivered } = harness(log);
  order.offer(log[0]);
  order.offer(log[2]); // waits for 2
  order.reset();
  order.offer(log[3]);
  order.offer(log[4]);

  assert.deepEqual(delivered.map((m) => m.seq), [1, 10, 11]);
});

test('a stream started by a join\'s seq fills a loss right after the join from history', async () => {
  const log = [1, 2, 3, 4].map((seq) => ({ type: 'message', room: 'r', seq, id: `m${seq}` }));
  const { order, delivered, settle } = harness(log);
  order.startAfter(1); // the room held seq 1 when the member joined
  order.offer(log[3]); // 2 and 3 were lost to a cut connection
  await settle();
  assert.deepEqual(delivered.map((m) => m.seq), [2, 3, 4]);
  order.startAfter(0); // ignored once started
  assert.equal(order.lastSeq, 4);
});
