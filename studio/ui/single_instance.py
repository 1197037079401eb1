"""One window per user: a second `studio-gui IMAGE…` hands its files to the running app and exits.

The first instance listens on a QLocalServer named per user; a later one connects, sends the
absolute paths (one per line, UTF-8) and waits for the "ok" that says they were taken.
"""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

TIMEOUT_MS = 2_000
MAX_MESSAGE = 1 << 20  # a megabyte of paths is far more than anyone drops


def server_name(suffix: str = "") -> str:
    """Per user (and per settings folder, when one is given): two users never share a window."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = str(Path.home())
    digest = hashlib.sha1(f"{user}\0{suffix}".encode()).hexdigest()[:12]
    return f"diffusion-studio-{digest}"


def send_to_running(name: str, files: list[Path], timeout_ms: int = TIMEOUT_MS) -> bool:
    """True if a running instance took the files (an empty list just raises its window)."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    payload = "\n".join(str(Path(f).absolute()) for f in files) + "\n\0"
    socket.write(payload.encode("utf-8"))
    if not socket.waitForBytesWritten(timeout_ms):
        return False
    ok = socket.waitForReadyRead(timeout_ms) and bytes(socket.readAll().data()) == b"ok"
    socket.disconnectFromServer()
    return ok


class InstanceServer(QObject):
    """Listens for later launches; `files_received` carries their paths (maybe none)."""

    files_received = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.name = name
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        if self.server.listen(self.name):
            return True
        # a crashed instance leaves its socket file behind on Unix: nobody answers it
        if not _answers(self.name):
            QLocalServer.removeServer(self.name)
            return self.server.listen(self.name)
        return False

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while (socket := self.server.nextPendingConnection()) is not None:
            buffer = bytearray()
            socket.readyRead.connect(lambda s=socket, b=buffer: self._read(s, b))
            socket.disconnected.connect(socket.deleteLater)
            self._read(socket, buffer)

    def _read(self, socket: QLocalSocket, buffer: bytearray) -> None:
        buffer += bytes(socket.readAll().data())
        if len(buffer) > MAX_MESSAGE:
            socket.abort()
            return
        if not buffer.endswith(b"\0"):
            return  # more to come
        text = bytes(buffer[:-1]).decode("utf-8", errors="replace")
        files = [Path(line) for line in text.splitlines() if line.strip()]
        socket.write(b"ok")
        socket.flush()
        self.files_received.emit(files)


def _answers(name: str) -> bool:
    probe = QLocalSocket()
    probe.connectToServer(name)
    ok = probe.waitForConnected(300)
    probe.abort()
    return ok


def claim_or_forward(name: str, files: list[Path]) -> InstanceServer | None:
    """The first instance gets a listening server; a later one forwards and gets None.

    If no server can be made at all (a read-only runtime folder), the app still runs alone.
    """
    if send_to_running(name, files):
        return None
    server = InstanceServer(name)
    server.listen()
    return server
