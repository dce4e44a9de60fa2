"""A keep-alive HTTP/1.1 front for moto (werkzeug closes every connection)."""
import http.client, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
UP = ("127.0.0.1", int(sys.argv[2]))
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _fwd(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        c = http.client.HTTPConnection(*UP, timeout=30)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        c.request(self.command, self.path, body=body, headers=hdrs)
        r = c.getresponse(); data = r.read(); c.close()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "content-length", "transfer-encoding", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _fwd
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
