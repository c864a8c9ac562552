"""The listening half the tests' lying holders share (evilpeer.py, evilzip.py): a socket on
127.0.0.1 and a free port, one thread per connection, stopped by close(). A subclass sets its own
fields, then calls start(), and answers each connection in _conn()."""

from __future__ import annotations

import socket
import threading


def fields(line: str) -> dict[str, str]:
    """The key=value tokens of one FLOOD/1 header line (values still percent-encoded)."""
    out = {}
    for tok in line.split(" ")[2:]:
        k, _, v = tok.partition("=")
        out[k] = v
    return out


class FakeHolder:
    def __init__(self):
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False

    def start(self):
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self):
        self._stop = True
        self.sock.close()

    def _serve(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c: socket.socket):
        raise NotImplementedError
