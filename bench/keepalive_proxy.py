"""A keep-alive HTTP/1.1 front for moto, whose server (werkzeug) closes every connection.

Usage: python3 bench/keepalive_proxy.py LISTEN_PORT MOTO_PORT

Listens on 127.0.0.1:LISTEN_PORT and forwards each request to moto on 127.0.0.1:MOTO_PORT,
answering over a connection it keeps open. For benchmarks only (BENCHMARKS.md, "The local
gateway"): it buffers whole bodies and refuses chunked requests.
"""
import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "server", "date"}


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle client connection is dropped after this many seconds

    def log_message(self, *args):
        pass

    def _answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._answer(411, [], b"chunked request bodies are not forwarded\n")
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as error:
            self._answer(502, [], f"moto did not answer: {error}\n".encode())
            return
        finally:
            upstream.close()
        self._answer(answer.status, answer.getheaders(), data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    UPSTREAM_PORT = int(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Forward).serve_forever()
