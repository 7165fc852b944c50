"""Decision log lines are written by a writer thread per worker, and none is lost on SIGTERM."""

from __future__ import annotations

import http.client
import io
import logging
import os
import re
import ssl
import subprocess
import threading
import time

import pytest
from serverkit import ROOT, GunicornServer, encode, make_review, send

from webhook.observe import logqueue
from webhook.observe.logqueue import BufferingHandler, LogWriter, log_values
from webhook.observe.logs import JsonFormatter, TextFormatter

pytestmark = pytest.mark.server
JSON = {"Content-Type": "application/json"}
_UID = re.compile(r"admission uid=(\S+) ")


def test_every_answered_admission_has_its_log_line_after_sigterm(own_server: GunicornServer) -> None:
    """The server's output is a pipe that this test stops reading during the load: the workers'
    writer threads block on the full pipe while the requests go on being answered, so at SIGTERM
    hundreds of decision lines are still queued. Each must be written before its worker exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODPRESET_", "PROMETHEUS_"))}
    process = subprocess.Popen(
        own_server.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    own_server.process = process
    output = bytearray()
    reading = threading.Event()
    reading.set()

    def read() -> None:
        assert process.stdout is not None
        while True:
            reading.wait()
            chunk = process.stdout.read1(65536)
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        own_server.wait_ready()
        reading.clear()  # from here the pipe fills up and the log writers block
        answered = _load_until_sigterm(own_server, count=1500)
        reading.set()
        assert process.wait(timeout=60) == 0
    finally:
        reading.set()
        if process.poll() is None:
            process.kill()
            process.wait()
        # Here too when the test failed: a pipe left to the GC fails a later test.
        reader.join(timeout=60)
        assert process.stdout is not None
        process.stdout.close()

    logged = _UID.findall(output.decode(errors="replace"))
    assert len(answered) >= 1500
    assert answered <= set(logged), f"{len(answered - set(logged))} answered admissions have no log line"
    assert len(logged) == len(set(logged)), "a decision was logged twice"


def _load_until_sigterm(server: GunicornServer, count: int) -> set[str]:
    """Clients send reviews with distinct uids; SIGTERM once ``count`` were answered."""
    answered: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(slot: int) -> None:
        conn: http.client.HTTPSConnection | None = None
        n = 0
        while not stop.is_set():
            uid = f"00000000-0000-4000-8000-{slot:04d}{n:08d}"
            n += 1
            try:
                conn = conn or server.connection(timeout=30)
                status, _, _ = send(conn, "POST", "/mutate", encode(make_review(uid=uid)), JSON)
            except (OSError, http.client.HTTPException, ssl.SSLError):
                if conn is not None:
                    conn.close()
                conn = None
                if server.process is not None and server.process.poll() is not None:
                    return
                time.sleep(0.01)
                continue
            if status == 200:
                with lock:
                    answered.add(uid)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 300  # a bound for a server that stopped answering, not a speed
    while len(answered) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    server.terminate()  # while the clients are still sending
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    return answered


def _buffered_logger(
    name: str, fmt: str, interval: float = 0.01
) -> tuple[io.StringIO, LogWriter, logging.Logger, BufferingHandler]:
    """A logger whose records go through a ``BufferingHandler`` to a (not started) writer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    writer = LogWriter(interval=interval)
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    buffering = BufferingHandler([handler], writer)
    logger.addHandler(buffering)
    return stream, writer, logger, buffering


def test_writer_writes_lines_in_order_with_their_formatter_and_flushes_on_stop() -> None:
    stream, writer, logger, buffering = _buffered_logger("test.logqueue.order", "%(levelname)s %(message)s")
    try:
        for n in range(1000):
            logger.info("line %d of %s", n, "batch")
        assert stream.getvalue() == ""  # nothing is written on the logging thread
        writer.start()
        logger.warning("last")
    finally:
        writer.stop()
        logger.removeHandler(buffering)
    lines = stream.getvalue().splitlines()
    assert lines == [f"INFO line {n} of batch" for n in range(1000)] + ["WARNING last"]


def test_the_writer_writes_each_line_while_it_runs_not_only_when_stopped() -> None:
    stream, writer, logger, buffering = _buffered_logger("test.logqueue.running", "%(message)s", 0.05)
    writer.start()
    try:
        for n in range(3):  # an idle writer is woken by a line; a line logged while it gathers waits
            logger.info("line %d", n)
            deadline = time.monotonic() + 60
            while f"line {n}\n" not in stream.getvalue() and time.monotonic() < deadline:
                time.sleep(0.005)
            assert stream.getvalue() == "".join(f"line {i}\n" for i in range(n + 1))
    finally:
        writer.stop()
        logger.removeHandler(buffering)


def test_a_mutable_argument_is_formatted_when_logged_not_when_written() -> None:
    stream, writer, logger, buffering = _buffered_logger("test.logqueue.mutable", "%(message)s")
    try:
        applied = ["a"]
        logger.info("applied %s", applied)
        applied.append("b")
    finally:
        logger.removeHandler(buffering)
    writer.write()
    assert stream.getvalue() == "applied ['a']\n"


_DECISION = "admission uid=%s namespace=%s pod=%s operation=%s action=%s applied=%s conflicts=%s dry_run=%s"
_ARGS = ("u-1", "default", "web-1", "CREATE", "patched", "db,cache", 0, False)
_FIELDS = {
    "uid": "u-1",
    "namespace": "default",
    "applied": ["db", "cache"],
    "conflicts": [],
    "dry_run": False,
}


def _log_both_ways(
    monkeypatch: pytest.MonkeyPatch, formatter: logging.Formatter, logger: logging.Logger
) -> tuple[list[str], int]:
    """The decision line logged by its values, then by ``logger.log``, through a worker's buffer
    and writer on the root logger (as ``serve`` sets them up); the lines written and how many
    lines the writer made from values."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])  # pytest's capture handlers out of the way
    for switch in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, switch, False)
    monkeypatch.setattr(logging, "_srcfile", None)
    monkeypatch.setattr(time, "time", lambda: 1765080000.987654)  # both records, the same time
    made: list[object] = []
    format_values = logqueue._format_values

    def counted(stream_handler: logging.StreamHandler[io.StringIO], values: logqueue.Values) -> str | None:
        made.append(values)
        return format_values(stream_handler, values)

    monkeypatch.setattr(logqueue, "_format_values", counted)
    level = root.level
    root.setLevel(logging.INFO)
    logqueue.start_worker_logging()
    try:
        log_values(logger, logging.INFO, _DECISION, _ARGS, _FIELDS)
        logger.log(logging.INFO, _DECISION, *_ARGS, extra={"fields": _FIELDS})
        log_values(logger, logging.DEBUG, "below the level: %s", ("not written",), {})
    finally:
        logqueue.stop_worker_logging()
        root.setLevel(level)
    return stream.getvalue().splitlines(), len(made)


@pytest.mark.parametrize(
    "formatter", [pytest.param(TextFormatter(), id="text"), pytest.param(JsonFormatter(), id="json")]
)
def test_a_line_logged_by_its_values_is_the_line_its_record_makes(
    monkeypatch: pytest.MonkeyPatch, formatter: logging.Formatter
) -> None:
    lines, made = _log_both_ways(monkeypatch, formatter, logging.getLogger("test.logqueue.values"))
    assert made == 1  # the first line's record was made by the writer
    assert len(lines) == 2
    assert lines[0] == lines[1]
    assert "admission uid=u-1 namespace=default pod=web-1" in lines[0]
    assert "987" in lines[0].split("admission")[0]  # the milliseconds of the time logged


def test_a_filter_on_the_way_sees_the_record_of_a_line_logged_by_its_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    logger = logging.getLogger("test.logqueue.filtered")

    def remember(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return True

    logger.addFilter(remember)
    try:
        lines, made = _log_both_ways(monkeypatch, TextFormatter(), logger)
    finally:
        logger.removeFilter(remember)
    assert made == 0  # a filter must see the record on the logging thread: no values queued
    assert len(seen) == 2
    assert len(lines) == 2
    assert lines[0] == lines[1]
