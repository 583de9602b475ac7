"""A TCP proxy on loopback that can be switched off and on: an S3 outage without losing
moto's in-memory state (the gateway tests, the fault suite).  Off: new connections are
closed at once and open ones are cut.  ``delay_s`` makes a slow link."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.enabled = True
        self.delay_s = 0.0  # added before each chunk is forwarded (a slow link)
        self.connections = 0
        self.put_seen = threading.Event()  # set when a PUT request passes towards the server
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.enabled:
                client.close()
                continue
            self.connections += 1
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        peers = {client: upstream, upstream: client}
        try:
            while self.enabled and not self._closed:
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and data.startswith(b"PUT "):
                        self.put_seen.set()
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._open.difference_update((client, upstream))

    def off(self) -> None:
        self.enabled = False
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def on(self) -> None:
        self.enabled = True

    def close(self) -> None:
        self._closed = True
        self.off()
        self.listener.close()
