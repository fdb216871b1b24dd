"""A loopback TCP proxy whose peer can go silent: ``stall()`` stops forwarding in both
directions but keeps every socket open, as a hung server, a dead NAT entry or a
half-broken network does; ``resume()`` forwards what was held back and carries on.

Unlike ``tests/proxy.py`` (which drops one reply), nothing is ever closed by the proxy
while it stalls: the client sees neither an error nor an EOF, only silence, so the only
thing that can end its wait is its own timeout. New connections made during a stall are
accepted and held too (the TCP handshake completes, the PostgreSQL startup does not).

Data held during a stall is delivered on ``resume()``, as a network that recovers would
deliver packets in flight: a statement sent into the stall may still reach the server
after its client gave up. Tests must (and do) account for that.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class StallingProxy:
    """Forward 127.0.0.1:``port`` to ``target``; ``stall()`` / ``resume()`` the flow."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
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
        accept = threading.Thread(target=self._accept, name="stall-proxy-accept", daemon=True)
        self._threads.append(accept)
        accept.start()

    # -- control -----------------------------------------------------------------------

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

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- machinery ---------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
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
            with self._guard:
                self._sockets.append(server)
                for source, sink, name in ((client, server, "up"), (server, client, "down")):
                    pump = threading.Thread(
                        target=self._pump, args=(source, sink), name=f"stall-proxy-{name}"
                    )
                    pump.daemon = True
                    self._threads.append(pump)
                    pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while chunk := _recv(source):
            if not self._flowing.is_set():
                with self._guard:
                    self.chunks_held += 1
                self._flowing.wait()  # hold the chunk, keep both sockets open
            if self._closed:
                break
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
