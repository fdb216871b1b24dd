"""A loopback TCP proxy that can cut a connection at the worst moment.

``drop_reply_after(marker)``: the next client message containing ``marker`` reaches the
server, but the server's reply is thrown away and both sockets are closed, so the client
cannot know whether its statement committed. Everything else is forwarded untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._guard = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.replies_dropped = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def drop_reply_after(self, marker: bytes) -> None:
        with self._guard:
            self._marker = marker

    def refusing(self) -> bool:
        """Whether a new connection is closed at once, as by a server that is down."""
        return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing():
                _close(client)
                continue
            server = socket.create_connection(self.target)
            with self._guard:
                self._sockets += [client, server]
            doomed = threading.Event()
            threading.Thread(
                target=self._pump_up, args=(client, server, doomed), daemon=True
            ).start()
            threading.Thread(
                target=self._pump_down, args=(server, client, doomed), daemon=True
            ).start()

    def _pump_up(
        self, client: socket.socket, server: socket.socket, doomed: threading.Event
    ) -> None:
        while chunk := _recv(client):
            with self._guard:
                if self._marker is not None and self._marker in chunk:
                    self._marker = None
                    doomed.set()
            try:
                server.sendall(chunk)
            except OSError:
                break
        _close(server)

    def _pump_down(
        self, server: socket.socket, client: socket.socket, doomed: threading.Event
    ) -> None:
        while chunk := _recv(server):
            if doomed.is_set():
                self.replies_dropped += 1
                _close(client)
                _close(server)
                return
            try:
                client.sendall(chunk)
            except OSError:
                break
        _close(client)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        with self._guard:
            for s in self._sockets:
                _close(s)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
