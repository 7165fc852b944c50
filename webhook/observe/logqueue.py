"""Log lines written off the request path, by one writer thread per worker, a batch at a time.

Each admission logs one decision line. Writing it to stderr on the request thread hands the GIL
around on every write (the write releases it); handing each record to a writer thread that
wakes per record does the same, since the writer must win the GIL back from the request threads
for every line: in ``make bench`` that thread was the worst of the p99 tail. So here, in a
worker, ``start_worker_logging()`` (called right after the fork) replaces the root logger's
handlers with a ``BufferingHandler`` that formats the line on the request thread, with the
original handler's formatter and without taking its lock, and appends it to an in-memory
deque. The ``LogWriter`` thread writes what has gathered with one write and one flush per
stream, then sleeps ``GATHER_SECONDS`` before it looks again: an idle worker's line is written at
once (the first line after a write wakes the writer), a busy worker's once per interval.

``stop_worker_logging()`` (the worker's exit hook; also registered with ``atexit``) stops the
writer, which writes what is left, and gives the root logger its original handlers back, so
nothing logged is lost on a graceful stop (SIGTERM). A worker killed outright (SIGKILL, the OOM
killer) loses what it logged since the writer last ran, at most ``GATHER_SECONDS`` of lines.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import select
import threading
import time
from typing import Any

GATHER_SECONDS = 0.02
"""After a write, how long the writer lets lines gather before the next one."""

_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
"""The longest write a pipe keeps whole (POSIX guarantees 512; Linux has 4096)."""

Pending = collections.deque[tuple[logging.StreamHandler[Any], str]]
"""Formatted lines waiting for the writer, each with the stream handler that writes it."""


class BufferingHandler(logging.Handler):
    """Formats each record now, with each stream handler's formatter, and queues the line.

    A handler that is not a ``StreamHandler`` handles the record at once, as it would have.
    """

    def __init__(self, handlers: list[logging.Handler], writer: LogWriter) -> None:
        super().__init__()
        self.streams = [h for h in handlers if isinstance(h, logging.StreamHandler)]
        self.others = [h for h in handlers if not isinstance(h, logging.StreamHandler)]
        self.writer = writer

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the writer's queue is thread-safe on its own.
        for stream in self.streams:
            if record.levelno < stream.level or not stream.filter(record):
                continue
            try:
                line = stream.format(record) + stream.terminator
            except Exception:
                stream.handleError(record)
                continue
            self.writer.add(stream, line)
        for other in self.others:
            if record.levelno >= other.level:
                other.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does it all
        self.handle(record)


class LogWriter:
    """Writes the lines ``add``ed to it, woken by the first since its last write and at most
    once per ``interval`` seconds, one write per stream."""

    def __init__(self, interval: float = GATHER_SECONDS) -> None:
        self.pending: Pending = collections.deque()
        self.wake = threading.Event()
        """Set by the first line since the writer last looked (cleared by the writer)."""
        self.interval = interval
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="podpreset-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, stream: logging.StreamHandler[Any], line: str) -> None:
        """Queue a formatted line for ``stream`` (any thread; no lock: a deque append is atomic)."""
        self.pending.append((stream, line))
        if not self.wake.is_set():
            self.wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Write everything gathered so far, then end the thread."""
        self._stopping = True
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.write()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()  # before writing: a line appended from here on sets it again
            self.write()
            if self._stopping:
                return
            time.sleep(self.interval)

    def write(self) -> None:
        """Write the lines gathered so far (each in the order it was logged)."""
        count = len(self.pending)
        if not count:
            return
        by_stream: dict[logging.StreamHandler[Any], list[str]] = {}
        for _ in range(count):
            handler, line = self.pending.popleft()
            by_stream.setdefault(handler, []).append(line)
        for handler, lines in by_stream.items():
            try:
                with handler.lock or threading.RLock():
                    _write_lines(handler, lines)
            except Exception:  # a broken stream must not end the writer
                continue


def _write_lines(handler: logging.StreamHandler[Any], lines: list[str]) -> None:
    """Write whole lines, at most ``PIPE_BUF`` bytes per write when the stream is a file: every
    worker writes to the same stderr, and a pipe keeps only writes of up to ``PIPE_BUF`` bytes
    whole, so a longer one could be cut by another worker's line."""
    stream = handler.stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a StringIO in tests)
        stream.write("".join(lines))
        handler.flush()
        return
    stream.flush()  # what was written to the stream itself comes first
    encoding = getattr(stream, "encoding", None) or "utf-8"
    errors = getattr(stream, "errors", None) or "backslashreplace"
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode(encoding, errors)
        if chunk and size + len(data) > _PIPE_BUF:
            _write_all(fd, b"".join(chunk))
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        _write_all(fd, b"".join(chunk))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_state: dict[str, Any] = {}
_state_lock = threading.Lock()


def start_worker_logging() -> None:
    """Route the root logger through the buffer and a writer thread (call once, after the fork)."""
    with _state_lock:
        if _state:
            return
        root = logging.getLogger()
        handlers = list(root.handlers)
        writer = LogWriter()
        writer.start()
        buffering = BufferingHandler(handlers, writer)
        for handler in handlers:
            root.removeHandler(handler)
        root.addHandler(buffering)
        _state.update(writer=writer, handlers=handlers, buffering=buffering)
        atexit.register(stop_worker_logging)


def stop_worker_logging() -> None:
    """Write every gathered line, stop the writer, and give the root logger its handlers back."""
    with _state_lock:
        if not _state:
            return
        root = logging.getLogger()
        root.removeHandler(_state["buffering"])
        for handler in _state["handlers"]:
            root.addHandler(handler)
        # A thread that was already past the handler swap may still append: stop() writes last.
        _state["writer"].stop()
        _state.clear()
