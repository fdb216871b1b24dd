"""The suite's one TCP fault proxy: forward a loopback port to a server, and break the
connection on demand in one of two ways.

``drop_reply_after(marker)``: the next client message containing ``marker`` reaches the
server, but the server's reply is thrown away and both sockets are closed, so the client
cannot know whether its statement committed.

``stall()`` / ``resume()``: stop forwarding in both directions on every connection (old
and new) but keep every socket open, as a hung server, a dead NAT entry or a half-broken
network does. The client sees neither an error nor an EOF, only silence, so only its own
timeout can end its wait. Connections made during a stall are accepted and held too (the
TCP handshake completes, the PostgreSQL startup does not). What was held back is
delivered on ``resume()``, as a network that recovers delivers packets in flight: a
statement sent into the stall may still reach the server after its client gave up.

Everything else is forwarded untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class FaultProxy:
    """Forward 127.0.0.1:``port`` to ``target``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._guard = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.connections = 0
        self.connections_during_stall = 0
        self.chunks_held = 0
        self.upstream_failures = 0
        self.replies_dropped = 0
        accept = threading.Thread(target=self._accept, name="fault-proxy-accept", daemon=True)
        self._threads.append(accept)
        accept.start()

    # -- control -----------------------------------------------------------------------

    def drop_reply_after(self, marker: bytes) -> None:
        """Cut the connection that next sends ``marker`` as soon as the server answers."""
        with self._guard:
            self._marker = marker

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def stall(self) -> None:
        """Stop forwarding, in both directions, on every connection (old and new)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, starting with what was held back."""
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()  # release the pumps, which then see _closed
        _close(self._listener)
        with self._guard:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def refusing(self) -> bool:
        """Whether a new connection is closed at once, as by a server that is down.
        Subclasses decide when."""
        return False

    # -- machinery ---------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing():
                _close(client)
                continue
            with self._guard:
                self.connections += 1
                if self.stalled:
                    self.connections_during_stall += 1
                self._sockets.append(client)
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:  # the server is down: the client sees the connection close
                with self._guard:
                    self.upstream_failures += 1
                _close(client)
                continue
            doomed = threading.Event()  # set when this connection's next reply is dropped
            with self._guard:
                self._sockets.append(server)
                for source, sink, upstream in ((client, server, True), (server, client, False)):
                    pump = threading.Thread(
                        target=self._pump,
                        args=(source, sink, doomed, upstream),
                        name=f"fault-proxy-{'up' if upstream else 'down'}",
                        daemon=True,
                    )
                    self._threads.append(pump)
                    pump.start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, doomed: threading.Event, upstream: bool
    ) -> None:
        while chunk := _recv(source):
            if not self._flowing.is_set():
                with self._guard:
                    self.chunks_held += 1
                self._flowing.wait()  # hold the chunk, keep both sockets open
            if self._closed:
                break
            if upstream:
                with self._guard:
                    if self._marker is not None and self._marker in chunk:
                        self._marker = None
                        doomed.set()
            elif doomed.is_set():
                with self._guard:
                    self.replies_dropped += 1
                break  # the reply is lost: close both sides below
            try:
                sink.sendall(chunk)
            except OSError:
                break
        # the source ended (or the sink failed): pass the end on, as TCP would
        if not self._flowing.is_set():
            self._flowing.wait()
        _close(sink)
        _close(source)


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
