// A TCP proxy on a free loopback port that cuts its connections on demand, abruptly: both
// sockets destroyed, no WebSocket close frame either way, as a phone changing networks does.
import net from 'node:net';

/** Starts a proxy to `target` (`host:port`); `cutOne()` destroys one open pair at random. */
export function chaosProxy(target) {
  const [host, port] = target.split(':');
  const pairs = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        address: `127.0.0.1:${server.address().port}`,
        open: () => pairs.size,
        cutOne() {
          const all = [...pairs];
          if (all.length === 0) return false;
          const pair = all[Math.floor(Math.random() * all.length)];
          pairs.delete(pair);
          pair.client.destroy();
          pair.upstream.destroy();
          return true;
        },
        close: () => new Promise((done) => {
          for (const pair of pairs) { pair.client.destroy(); pair.upstream.destroy(); }
          server.close(() => done());
        }),
      });
    });
  });
}
