"""A TCP proxy on 127.0.0.1 whose connections a test can cut, as a load balancer or a network
failure would: the webhook's watch then sees its connection end without the API server stopping."""

from __future__ import annotations

import contextlib
import socket
import threading

_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"
"""SO_LINGER on with a zero timeout: close() sends a reset."""


class TcpProxy:
    """Forwards every connection to ``upstream``; ``drop()`` resets the connections open now."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0
        self.paused = False
        """While paused, new connections are reset at once: the API server is unreachable."""
        threading.Thread(target=self._accept, name="tcpproxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.paused:
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for sock in (source, target):
                    if sock in self._open:
                        self._open.discard(sock)
                        sock.close()

    def drop(self) -> int:
        """Reset every open connection (both sides); returns how many pairs were cut."""
        with self._lock:
            cut = list(self._open)
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.shutdown(socket.SHUT_RDWR)
        return len(cut) // 2

    def close(self) -> None:
        self._listener.close()
        self.drop()
