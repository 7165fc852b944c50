"""Log lines formatted and written off the request path, one writer thread per worker.

Each admission logs one decision line. Formatting it and writing it to stderr under the handler's
lock, on the request thread, made a worker's request threads queue for that lock and hand the GIL
around on every write. In a worker, ``start_worker_logging()`` (called right after the fork)
replaces the root logger's handlers with a ``QueueHandler`` that only puts the record on an
in-memory queue; a ``LogWriter`` thread takes the records off, formats them with the original
handlers' formatters and writes everything that has queued up with one write and one flush.

``stop_worker_logging()`` (the worker's exit hook; also registered with ``atexit``) puts an end
marker on the queue, waits for the writer to write everything before it, and gives the root
logger its original handlers back, so nothing logged is lost on a graceful stop (SIGTERM). A
worker killed outright (SIGKILL, the OOM killer) loses what was still queued, at most what its
threads logged since the writer last ran.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import threading
from typing import Any

_SIMPLE = (str, int, float, bool, type(None))
_STOP = object()
MAX_BATCH = 512
"""Records written with one write at most (bounds the writer's memory and latency)."""


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Puts the record itself on the queue; formatting happens on the writer thread.

    The standard ``QueueHandler`` formats the message before queueing it (so that a record can
    cross a process boundary). Here the queue stays in the process, so the record is queued as it
    is, unless its arguments are mutable objects that might change before the writer formats
    them: then the message is merged now.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if args and not (isinstance(args, tuple) and all(isinstance(a, _SIMPLE) for a in args)):
            record.msg = record.getMessage()
            record.args = None
        return record

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: putting on the queue is thread-safe on its own.
        if not self.filter(record):
            return False
        self.emit(record)
        return True


class LogWriter:
    """Takes records off ``records`` and writes them with ``handlers``, batching stream writes."""

    def __init__(self, records: queue.SimpleQueue[Any], handlers: list[logging.Handler]) -> None:
        self.records = records
        self.handlers = handlers
        self._thread = threading.Thread(target=self._run, name="podpreset-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write everything queued so far, then end the thread."""
        if self._thread.is_alive():
            self.records.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = [self.records.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            done = any(record is _STOP for record in batch)
            self.write([record for record in batch if record is not _STOP])
            if done:
                return

    def write(self, records: list[logging.LogRecord]) -> None:
        for handler in self.handlers:
            try:
                if isinstance(handler, logging.StreamHandler):
                    _write_stream(handler, records)
                else:
                    for record in records:
                        if record.levelno >= handler.level:
                            handler.handle(record)
            except Exception:  # a broken handler must not end the writer
                continue


def _write_stream(handler: logging.StreamHandler[Any], records: list[logging.LogRecord]) -> None:
    lines = []
    for record in records:
        if record.levelno < handler.level or not handler.filter(record):
            continue
        try:
            lines.append(handler.format(record) + handler.terminator)
        except Exception:
            handler.handleError(record)
    if not lines:
        return
    with handler.lock or threading.RLock():
        handler.stream.write("".join(lines))
        handler.flush()


_state: dict[str, Any] = {}
_state_lock = threading.Lock()


def start_worker_logging() -> None:
    """Route the root logger through a queue and a writer thread (call once, after the fork)."""
    with _state_lock:
        if _state:
            return
        root = logging.getLogger()
        handlers = list(root.handlers)
        records: queue.SimpleQueue[Any] = queue.SimpleQueue()
        writer = LogWriter(records, handlers)
        writer.start()
        queued = DeferredQueueHandler(records)
        for handler in handlers:
            root.removeHandler(handler)
        root.addHandler(queued)
        _state.update(writer=writer, handlers=handlers, queued=queued)
        atexit.register(stop_worker_logging)


def stop_worker_logging() -> None:
    """Write every queued line, stop the writer, and give the root logger its handlers back."""
    with _state_lock:
        if not _state:
            return
        root = logging.getLogger()
        root.removeHandler(_state["queued"])
        for handler in _state["handlers"]:
            root.addHandler(handler)
        writer = _state["writer"]
        writer.stop()
        # A thread that was already past the handler swap may have queued after the end marker.
        late = []
        while True:
            try:
                late.append(writer.records.get_nowait())
            except queue.Empty:
                break
        writer.write([record for record in late if record is not _STOP])
        _state.clear()
