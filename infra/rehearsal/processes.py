"""The processes a rehearsal starts (moto, the local gateway), each on a free loopback port, each
stopped at the end: SIGTERM, a bounded wait, then SIGKILL."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STOP_WAIT = 15  # s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output lines are kept (and appended to a log file)."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.lines = []
        self.lock = threading.Condition()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = ANSI.sub("", raw.decode("utf-8", "replace").rstrip("\n"))
            self.log.write(line + "\n")
            self.log.flush()
            with self.lock:
                self.lines.append(line)
                self.lock.notify_all()
        with self.lock:
            self.lock.notify_all()

    def wait_for_line(self, pattern, timeout):
        """The first match of `pattern` in the output; None when the process exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.lock:
            seen = 0
            while time.monotonic() < deadline:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if self.proc.poll() is not None and not self.reader.is_alive():
                    return None
                self.lock.wait(0.2)
        return None

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=STOP_WAIT):
        """SIGTERM to the process, a bounded wait, then SIGKILL to whatever is left of its process
        group (the gateway's function instances); the exit code (None if it had to be killed)."""
        code = self.proc.poll()
        if code is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.reader.join(5)
        self.proc.stdout.close()
        self.log.close()
        return code


def start_moto(log_path, python=sys.executable):
    """scripts/moto_server.py (DynamoDB serialised as the tests run it) on a free port."""
    for _ in range(3):
        port = free_port()
        moto = Process("moto", [python, str(ROOT / "scripts" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
                       log_path)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and moto.alive():
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    return moto, url
            except OSError:
                time.sleep(0.2)
        moto.stop()
    raise RuntimeError(f"moto did not start (log: {log_path})")
