"""A small WebSocket client (RFC 6455, text frames) and HS256 tokens, on the standard library: the
rehearsal's clients need nothing more, and no package to install.

Each client has a reader thread that collects incoming JSON frames; `wait_for` waits (bounded) for
one that matches.
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import threading
import time
from urllib.parse import urlparse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeRefused(Exception):
    def __init__(self, status, body):
        super().__init__(f"handshake answered {status}: {body[:300]!r}")
        self.status = status
        self.body = body


def hs256_token(secret, subject, lifetime=3600, now=None):
    """A JWT signed with HS256: `sub` and `exp` (an hour by default), `iat`."""
    now = int(now if now is not None else time.time())

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = b64(json.dumps({"sub": subject, "iat": now, "exp": now + lifetime}, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


class Client:
    def __init__(self, url, headers=None, timeout=10):
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {parsed.netloc}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in head and len(head) < 65536 and time.monotonic() < deadline:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        header_text, _, rest = head.partition(b"\r\n\r\n")
        status_line = header_text.split(b"\r\n", 1)[0].decode(errors="replace")
        status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
        if status != 101:
            body = rest
            self.sock.settimeout(1)
            try:
                for _ in range(16):
                    more = self.sock.recv(4096)
                    if not more:
                        break
                    body += more
            except OSError:
                pass
            self.sock.close()
            raise HandshakeRefused(status, body.decode(errors="replace"))
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if accept.encode() not in header_text:
            self.sock.close()
            raise HandshakeRefused(status, "Sec-WebSocket-Accept does not match")
        self.buffer = rest
        self.frames = []
        self.closed = None
        self.lock = threading.Condition()
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    # --- Framing -------------------------------------------------------------------------------
    def _recv_exact(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_frame(self):
        first, second = self._recv_exact(2)
        fin, opcode = first & 0x80, first & 0x0F
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", self._recv_exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._recv_exact(8))[0]
        mask = self._recv_exact(4) if second & 0x80 else None
        payload = self._recv_exact(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def _read_loop(self):
        message = b""
        try:
            for _ in range(10_000_000):
                fin, opcode, payload = self._read_frame()
                if opcode == 0x8:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                    self._closed(code)
                    try:
                        self._send(0x8, payload[:2])
                    except OSError:
                        pass
                    return
                if opcode == 0x9:
                    self._send(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                if opcode in (0x1, 0x2):
                    message = payload
                else:
                    message += payload
                if fin:
                    text = message.decode("utf-8", "replace")
                    try:
                        frame = json.loads(text)
                    except ValueError:
                        frame = {"_raw": text}
                    with self.lock:
                        self.frames.append(frame)
                        self.lock.notify_all()
                    message = b""
        except (OSError, ConnectionError):
            self._closed(1006)

    def _closed(self, code):
        with self.lock:
            if self.closed is None:
                self.closed = code
            self.lock.notify_all()

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    # --- API -----------------------------------------------------------------------------------
    def send(self, frame):
        self._send(0x1, json.dumps(frame).encode())

    def wait_for(self, predicate, timeout=10.0, what="a frame"):
        """The first frame (not yet taken) matching `predicate`; it is taken. Raises TimeoutError
        naming `what` and the frames seen."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for i, frame in enumerate(self.frames):
                    if predicate(frame):
                        return self.frames.pop(i)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed is not None:
                    seen = [json.dumps(f)[:160] for f in self.frames[-5:]]
                    state = f"; socket closed ({self.closed})" if self.closed is not None else ""
                    raise TimeoutError(f"no {what} within {timeout:g} s{state}; last frames: {seen}")
                self.lock.wait(min(left, 0.5))

    def taken(self, predicate):
        """Every frame (not yet taken) matching `predicate`, taken now."""
        with self.lock:
            hits = [f for f in self.frames if predicate(f)]
            self.frames = [f for f in self.frames if not predicate(f)]
            return hits

    def close(self, timeout=5.0):
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.closed is None and time.monotonic() < deadline:
                self.lock.wait(0.2)
        try:
            self.sock.close()
        except OSError:
            pass
