// The client against the real local gateway (a child process on a free loopback port).
// LOCAL_GATEWAY_BIN names the binary; scripts/test builds it first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { RequestError, WsClient } from '../ws-client.js';
import { BIN, WAIT_MS, nextEvent, startGateway } from '../testing/gateway.mjs';

test('two clients join a room and read each other; an error rejects with its code', async (t) => {
  const gw = await startGateway();
  t.after(gw.stop);
  const alice = new WsClient({ url: gw.url });
  const bob = new WsClient({ url: gw.url });
  t.after(() => { alice.close(); bob.close(); });
  await Promise.all([alice.connect(), bob.connect()]);
  await alice.join('lobby');
  await bob.join('lobby');

  const heard = nextEvent(bob, 'message');
  const ack = await alice.publish('lobby', { text: 'hi' });

  assert.equal(ack.type, 'ack');
  assert.equal(ack.delivered, 2);
  const message = await heard;
  assert.deepEqual(
    [message.from, message.room, message.data],
    [alice.connectionId, 'lobby', { text: 'hi' }],
  );
  await assert.rejects(alice.publish('elsewhere', 1), (error) => {
    assert.ok(error instanceof RequestError);
    assert.equal(error.code, 'not_member');
    return true;
  });
});

test('after the gateway restarts, the client reconnects and joins its rooms again', async (t) => {
  const first = await startGateway();
  const port = new URL(first.url).port;
  const alice = new WsClient({ url: first.url, backoffBaseMs: 50, backoffMaxMs: 200 });
  t.after(() => alice.close());
  await alice.connect();
  await alice.join('lobby');
  const before = alice.connectionId;

  const reconnected = nextEvent(alice, 'state', (s) => s.state === 'open');
  await first.stop();
  const second = await startGateway(['--port', port]);
  t.after(second.stop);
  await reconnected;

  // Open again means the rooms are joined again: a publish to the room works at once.
  const ack = await alice.publish('lobby', 'back');
  assert.equal(ack.delivered, 1);
  assert.notEqual(alice.connectionId, before, 'a new connection, a new id');
});

test('the keepalive ping holds the socket open past the idle timeout', async (t) => {
  const gw = await startGateway(['--idle-timeout-secs', '1']);
  t.after(gw.stop);
  const alice = new WsClient({ url: gw.url, pingIntervalMs: 300 });
  t.after(() => alice.close());
  await alice.connect();
  const states = [];
  alice.addEventListener('state', (e) => states.push(e.detail));

  await new Promise((resolve) => setTimeout(resolve, 2_500));

  assert.equal(alice.state, 'open');
  assert.deepEqual(states, [], 'never dropped, never reconnected');
});

test('the token provider is asked again, with refresh, after a refused handshake', async (t) => {
  const secret = 'client-test-secret-at-least-32-bytes-long';
  const gw = await startGateway(['--jwt-secret', secret]);
  t.after(gw.stop);
  const minted = await new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--jwt-secret', secret, '--mint-token', 'alice'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`mint: ${code}`))));
  });
  const asked = [];
  const alice = new WsClient({
    url: gw.url,
    backoffBaseMs: 20,
    backoffMaxMs: 50,
    token: ({ refresh }) => {
      asked.push(refresh);
      return asked.length === 1 ? 'not-a-valid-token' : minted;
    },
  });
  t.after(() => alice.close());

  await alice.connect();

  assert.deepEqual(asked.slice(0, 2), [false, true]);
  assert.equal((await alice.whoami()).principal, 'alice');
});

test('a request without an answer rejects after its timeout', async (t) => {
  const gw = await startGateway();
  t.after(gw.stop);
  const alice = new WsClient({ url: gw.url, requestTimeoutMs: 200 });
  t.after(() => alice.close());
  await alice.connect();
  // Stop reading answers: swallow every frame before the client sees it.
  alice.socket.addEventListener('message', (event) => event.stopImmediatePropagation(), { capture: true });
  alice.onFrame = () => {};

  await assert.rejects(alice.ping(), /no answer to ping within 200 ms/);
});

test('message frames with an id already seen are dropped', () => {
  const client = new WsClient({ url: 'ws://127.0.0.1:9', WebSocket: class {} });
  const seen = [];
  client.addEventListener('message', (e) => seen.push(e.detail.data));

  for (const data of [1, 2]) client.onFrame(JSON.stringify({ type: 'message', id: 'm1', data }));
  client.onFrame(JSON.stringify({ type: 'message', id: 'm2', data: 3 }));
  client.onFrame(JSON.stringify({ type: 'message', data: 4 }));

  assert.deepEqual(seen, [1, 3, 4]);
});

/** A token the gateway started with `--jwt-secret secret` accepts, for `ttl` seconds. */
function mint(secret, subject, ttl) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--jwt-secret', secret, '--mint-token', subject, '--mint-ttl-secs', String(ttl)],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`mint: ${code}`))));
  });
}

test('kicked by the operator, the client is told why and does not reconnect', async (t) => {
  const gw = await startGateway();
  t.after(gw.stop);
  const alice = new WsClient({ url: gw.url, backoffBaseMs: 20, backoffMaxMs: 50 });
  t.after(() => alice.close());
  await alice.connect();
  const states = [];
  alice.addEventListener('state', (e) => states.push(e.detail.state));
  const closing = nextEvent(alice, 'closing');
  const closed = nextEvent(alice, 'state', (s) => s.state === 'closed');

  const publish = `${gw.url.replace(/^ws/, 'http')}/@publish`;
  const answer = await fetch(publish, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ disconnect: { connection: alice.connectionId, reason: 'bye' } }),
  });
  assert.equal(answer.status, 202);

  assert.deepEqual(await closing, { type: 'closing', code: 'kicked', reason: 'bye' });
  await closed;
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(states, ['closed'], 'closed for good: no reconnect');
});

test('the client renews its token before it expires, with a fresh one from the provider', async (t) => {
  const secret = 'client-test-secret-at-least-32-bytes-long';
  const gw = await startGateway(['--jwt-secret', secret, '--jwt-leeway-seconds', '0']);
  t.after(gw.stop);
  const short = await mint(secret, 'alice', 3);
  const fresh = await mint(secret, 'alice', 600);
  const asked = [];
  const alice = new WsClient({
    url: gw.url,
    reauthBeforeMs: 2_000,
    token: ({ refresh }) => {
      asked.push(refresh);
      return refresh ? fresh : short;
    },
  });
  t.after(() => alice.close());
  const renewed = nextEvent(alice, 'reauth');
  await alice.connect();
  const before = (await alice.whoami()).expiresAt;

  assert.deepEqual(await renewed, { ok: true });
  const after = (await alice.whoami()).expiresAt;
  assert.ok(after > before + 500_000, `the session runs to the new token's expiry: ${before} -> ${after}`);
  assert.deepEqual(asked, [false, true]);
});
