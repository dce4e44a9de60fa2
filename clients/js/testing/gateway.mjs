// Shared by the tests that need a real local gateway: a child process on a free loopback port.
// LOCAL_GATEWAY_BIN names the binary; scripts/test builds it first.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.LOCAL_GATEWAY_BIN ?? path.join(here, '../../../target/debug/local-gateway');
export const WAIT_MS = 10_000;

/** Starts the gateway; resolves with its WebSocket URL once its banner says it is ready. */
export function startGateway(flags = []) {
  const port = flags.includes('--port') ? [] : ['--port', '0'];
  const child = spawn(BIN, [...port, ...flags], { stdio: ['ignore', 'pipe', 'inherit'] });
  // Never outlive the test process, even when it dies before its `t.after` hooks run.
  process.once('exit', () => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not start in time')), WAIT_MS);
    let out = '';
    child.on('error', reject);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const url = /WebSocket:\s+(ws:\/\/\S+)/.exec(out)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve({ url, child, stop: () => stopGateway(child) });
      }
    });
  });
}

export function stopGateway(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.on('exit', resolve);
    child.kill('SIGTERM');
  });
}

/** Resolves with the detail of the next `type` event, or rejects after WAIT_MS. */
export function nextEvent(client, type, wanted = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event in time`)), WAIT_MS);
    const listener = (event) => {
      if (!wanted(event.detail)) return;
      clearTimeout(timer);
      client.removeEventListener(type, listener);
      resolve(event.detail);
    };
    client.addEventListener(type, listener);
  });
}

