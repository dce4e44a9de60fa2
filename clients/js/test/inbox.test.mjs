// inboxOf names each principal's inbox as the service does: the vectors were computed with
// Python's hashlib, and the Rust code (domain::RoomName::inbox_of, wsctl inbox) holds to them too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inboxOf } from '../ws-client.js';

const { vectors } = JSON.parse(readFileSync(new URL('./inbox-vectors.json', import.meta.url), 'utf8'));

test('every principal gets the inbox the vectors name', async () => {
  assert.ok(vectors.length >= 10);
  for (const { principal, inbox } of vectors) {
    assert.equal(await inboxOf(principal), inbox, principal);
  }
});
