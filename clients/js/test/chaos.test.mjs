// No message lost across reconnects, through the local gateway with real sockets: 5 senders
// publish 1 000 messages to one room (inline, queued past --inline-recipients, and from a backend
// through @publish) while 3 receivers on the JS client are cut off abruptly at random and
// reconnect. At the end each receiver's application saw exactly the room's log: every message
// once, in seq order.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RequestError, WsClient } from '../ws-client.js';
import { chaosProxy } from '../testing/chaos-proxy.mjs';
import { startGateway } from '../testing/gateway.mjs';

const ROOM = 'chaos';
const MESSAGES = 1_000;
const SENDERS = 5;
const RECEIVERS = 3;
const FINISH_MS = 60_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes, waiting out `room_busy` as a well-behaved client does. */
async function publishPatiently(client, data) {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    try {
      return await client.publish(ROOM, data);
    } catch (error) {
      if (!(error instanceof RequestError) || error.code !== 'room_busy') throw error;
      await sleep(error.frame?.retryAfterMs ?? 50);
    }
  }
  throw new Error('the room stayed busy');
}

/** A backend's publish through the local gateway's @publish. */
async function backendPublish(gatewayUrl, data) {
  const url = gatewayUrl.replace('ws://', 'http://') + '/@publish';
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room: ROOM, data }),
  });
  assert.equal(response.status, 202, await response.text());
}

/** Every message of the room's log, in order, read from its history by a fresh client. */
async function roomLog(url) {
  const reader = new WsClient({ url });
  await reader.connect();
  await reader.join(ROOM);
  const log = [];
  let page = { limit: 100 };
  for (let i = 0; i < 100; i += 1) {
    const answer = await reader.history(ROOM, page);
    log.push(...answer.messages);
    if (!answer.cursor) break;
    page = { cursor: answer.cursor, limit: 100 };
  }
  reader.close();
  return log;
}

test('receivers cut off at random still see the room\'s log exactly once and in order', { timeout: 120_000 }, async (t) => {
  const gw = await startGateway(['--inline-recipients', '2', '--workers', '2']);
  t.after(gw.stop);
  const proxy = await chaosProxy(new URL(gw.url.replace('ws://', 'http://')).host);
  t.after(proxy.close);
  const stage = new URL(gw.url.replace('ws://', 'http://')).pathname;
  const throughProxy = `ws://${proxy.address}${stage}`;

  const receivers = [];
  for (let r = 0; r < RECEIVERS; r += 1) {
    const client = new WsClient({ url: throughProxy, backoffBaseMs: 20, backoffMaxMs: 200, requestTimeoutMs: 5_000 });
    const seen = [];
    client.addEventListener('message', (event) => {
      if (event.detail.room === ROOM) seen.push(event.detail);
    });
    await client.connect();
    await client.join(ROOM);
    receivers.push({ client, seen });
  }
  t.after(() => receivers.forEach(({ client }) => client.close()));
  const senders = [];
  for (let s = 0; s < SENDERS; s += 1) {
    const client = new WsClient({ url: gw.url });
    await client.connect();
    await client.join(ROOM);
    senders.push(client);
  }
  t.after(() => senders.forEach((client) => client.close()));

  // Chaos: a receiver's connection cut every 20-80 ms while the messages go out.
  let publishing = true;
  let cuts = 0;
  const chaos = (async () => {
    while (publishing) {
      await sleep(20 + Math.random() * 60);
      if (proxy.cutOne()) cuts += 1;
    }
  })();
  const perSender = MESSAGES / SENDERS;
  await Promise.all(senders.map(async (client, s) => {
    for (let i = 0; i < perSender; i += 1) {
      const data = { sender: s, i };
      // Every tenth message of a sender comes from a backend instead.
      if (i % 10 === 9) await backendPublish(gw.url, data);
      else await publishPatiently(client, data);
    }
  }));
  publishing = false;
  await chaos;

  const log = await roomLog(gw.url);
  assert.equal(log.length, MESSAGES, 'the room\'s log holds every message once');
  const latest = log[log.length - 1].seq;
  const deadline = Date.now() + FINISH_MS;
  while (Date.now() < deadline && receivers.some(({ client }) => client.lastSeq(ROOM) !== latest)) {
    await sleep(50);
  }
  assert.ok(cuts >= 10, `the chaos cut connections (${cuts} cuts)`);
  const expected = log.map((m) => m.id);
  receivers.forEach(({ seen }, r) => {
    assert.deepEqual(seen.map((m) => m.id), expected, `receiver ${r} saw the log exactly`);
  });
});
