// Compiled (strict, never run) by test/types.test.mjs: what a TypeScript user writes against
// ws-client.d.ts. A wrong type here, or a declaration the protocol no longer supports, fails it.
import {
  ACTIONS,
  ERROR_CODES,
  PROTOCOL_VERSION,
  RequestError,
  WsClient,
  inboxOf,
  type AckFrame,
  type ErrorCode,
  type Frame,
  type Request,
} from '../ws-client.js';

async function chat(): Promise<void> {
  const client = new WsClient({ url: 'ws://127.0.0.1:3001/local', token: () => 'a-jwt' });
  await client.connect();
  const ack: AckFrame = await client.publish('lobby', { text: 'hi' });
  const delivered: number = ack.delivered + ack.requeued;
  const queued: boolean = ack.queued;
  const page = await client.members('lobby');
  const next: string | undefined = page.cursor;
  const first: string | undefined = page.members[0]?.connectionId;
  const identity = await client.whoami();
  const version: 3 = PROTOCOL_VERSION;
  const sameVersion: boolean = identity.protocolVersion === version;
  client.addEventListener('message', (event) => {
    const id: string = event.detail.id;
    const sentAt: number = event.detail.sentAt;
    console.log(id, sentAt, event.detail.data);
  });
  client.addEventListener('reset', (event) => {
    const oldest: number | undefined = event.detail.oldestSeq;
    console.log(event.detail.room, oldest);
  });
  const since: number | null = client.lastSeq('lobby');
  const kept = await client.history('lobby', { after: since ?? 0, limit: 10 });
  const seqs: (number | undefined)[] = kept.messages.map((m) => m.seq);
  console.log(seqs, kept.cursor);
  client.addEventListener('presence', (event) => {
    const joined: boolean = event.detail.event === 'joined';
    console.log(joined);
  });
  try {
    await client.join('team:secret');
  } catch (error) {
    if (error instanceof RequestError) {
      const code = error.code as ErrorCode;
      console.log(ERROR_CODES.includes(code));
    }
  }
  const request: Request = { action: ACTIONS.PUBLISH, room: 'lobby', data: 1, requestId: 'r1' };
  const frame: Frame = await client.request(request as unknown as Record<string, unknown>);
  if (frame.type === 'error') {
    const code: ErrorCode = frame.code;
    console.log(code, frame.retryAfterMs);
  }
  console.log(delivered, queued, next, first, sameVersion, await inboxOf('auth0|abc'));
  client.close();
}

void chat;
