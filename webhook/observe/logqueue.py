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

The decision line of every admission takes a shorter way (``log_values``): where nothing but the
buffer can see its record (no filter on the logger, its ancestors or the stream handlers, no
other handler on the way, ``logging``'s caller, thread and process lookups off, the stock record
and logger classes), the request thread queues the line's values and the time, and the writer
makes the record and formats it with the same formatter. The line's bytes are the same; the
request thread no longer pays for the record, the handler chain and the formatting. Anything
else, and the same line in any other setup (tests' ``caplog``, a handler added by a user), goes
through ``logger.log`` as before.

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
import sys
import threading
import time
from typing import Any, NamedTuple

GATHER_SECONDS = 0.02
"""After a write, how long the writer lets lines gather before the next one."""

_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
"""The longest write a pipe keeps whole (POSIX guarantees 512; Linux has 4096)."""

_STAMPS_AS_311 = sys.version_info < (3, 13)
"""``logging.LogRecord`` stamps its time as ``_stamp`` does (3.13 takes ``time.time_ns``)."""


class Values(NamedTuple):
    """A record's makings, queued by ``log_values`` for the writer to make the record from."""

    name: str
    level: int
    created: float
    msg: str
    args: tuple[object, ...]
    fields: dict[str, Any]

    def record(self) -> logging.LogRecord:
        """The record ``logger.log(level, msg, *args, extra={"fields": fields})`` makes, with
        ``logging._srcfile`` None (no caller lookup), at the time ``created``."""
        record = logging.LogRecord(
            self.name, self.level, "(unknown file)", 0, self.msg, self.args, None, "(unknown function)", None
        )
        _stamp(record, self.created)
        record.__dict__["fields"] = self.fields  # as ``extra`` sets it
        return record


def _stamp(record: logging.LogRecord, created: float) -> None:
    """Give ``record`` the time ``created`` exactly as ``LogRecord.__init__`` derives its fields
    from ``time.time()`` (Python 3.11 and 3.12)."""
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]


Pending = collections.deque[tuple[logging.StreamHandler[Any], str | Values]]
"""Lines waiting for the writer, each with the stream handler that writes it: formatted, or the
values of a record the writer makes and formats (``log_values``)."""


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

    def take_values(self, values: Values) -> bool:
        """Queue ``values`` for each stream handler whose level takes them; False (nothing queued)
        when a handler could see the record before the writer makes it (a filter, another
        handler, a filter or level of this one in the way)."""
        if self.others or self.filters or values.level < self.level:
            return False
        streams = self.streams
        for stream in streams:
            if stream.filters:
                return False
        for stream in streams:
            if values.level >= stream.level:
                self.writer.add(stream, values)
        return True


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

    def add(self, stream: logging.StreamHandler[Any], line: str | Values) -> None:
        """Queue a formatted line, or a record's values, for ``stream`` (any thread; no lock: a
        deque append is atomic)."""
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
            if not isinstance(line, str):
                text = _format_values(handler, line)
                if text is None:
                    continue
                line = text
            by_stream.setdefault(handler, []).append(line)
        for handler, lines in by_stream.items():
            try:
                with handler.lock or threading.RLock():
                    _write_lines(handler, lines)
            except Exception:  # a broken stream must not end the writer
                continue


def _format_values(handler: logging.StreamHandler[Any], values: Values) -> str | None:
    """The line ``handler`` writes for the record of ``values``; None when formatting failed
    (reported by ``handleError``, as ``BufferingHandler.handle`` does). Nothing here may raise:
    the writer would end, and every later line of the worker with it."""
    try:
        record = values.record()
    except Exception:  # unreachable for the decision line's strings and numbers; never the writer's end
        return None
    try:
        return handler.format(record) + handler.terminator
    except Exception:
        handler.handleError(record)
        return None


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


def log_values(
    logger: logging.Logger, level: int, msg: str, args: tuple[object, ...], fields: dict[str, Any]
) -> None:
    """``logger.log(level, msg, *args, extra={"fields": fields})``, the same line; in a worker where
    nothing but the buffer sees the record, the record is made and formatted by the writer.

    ``args`` and ``fields`` must not change after the call (the writer formats them later)."""
    if not logger.isEnabledFor(level):
        return
    buffering = _state.get("buffering")
    if buffering is None or not _values_reach_only(logger, buffering):
        logger.log(level, msg, *args, extra={"fields": fields}, stacklevel=2)
        return
    if not buffering.take_values(Values(logger.name, level, time.time(), msg, args, fields)):
        logger.log(level, msg, *args, extra={"fields": fields}, stacklevel=2)


def _values_reach_only(logger: logging.Logger, buffering: BufferingHandler) -> bool:
    """Whether a record of ``logger`` made later, on the writer, would be the same record and
    reach the same handlers: no caller, thread or process lookups, the stock record and logger,
    no filter and no handler on the way but ``buffering``."""
    if (
        not _STAMPS_AS_311
        or logging._srcfile is not None
        or logging.logThreads
        or logging.logProcesses
        or logging.logMultiprocessing
        or logging.getLogRecordFactory() is not logging.LogRecord
        or type(logger) is not logging.Logger
    ):
        return False
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters or node.disabled:
            return False
        handlers = node.handlers
        if handlers:
            return len(handlers) == 1 and handlers[0] is buffering
        if not node.propagate:
            return False
        node = node.parent
    return False


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
