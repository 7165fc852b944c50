"""Log configuration for ``serve``: plain text or one JSON object per line.

Nothing here runs at import time. Log calls that carry structured fields pass them as
``extra={"fields": {...}}``; the JSON formatter emits them as top-level keys, the text formatter
relies on the message, which already names them.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, as ``logging.Formatter(TEXT_FORMAT)`` writes it, with the time's text made
    once per second (``time.strftime`` of the local time is most of a line's cost) and the line
    put together without ``%`` formatting from the record's dict."""

    _second: tuple[int, str] = (-1, "")
    """The last whole second formatted, and its text (local time, as ``formatTime``)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        msec_format = self.default_msec_format
        return msec_format % (cached[1], record.msecs) if msec_format else cached[1]

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter.format, without asking the format each time whether it shows the time.
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            if text[-1:] != "\n":
                text += "\n"
            text += record.exc_text
        if record.stack_info:
            if text[-1:] != "\n":
                text += "\n"
            text += self.formatStack(record.stack_info)
        return text

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.asctime} {record.levelname} {record.name}: {record.message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the record's ``fields``."""

    _second: tuple[int, str] = (-1, "")
    """The last whole second formatted, and its text: a busy webhook logs many lines per second."""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        entry: dict[str, Any] = {
            "time": f"{cached[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError):  # a key that is not a string, a huge integer
            return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str, level: str) -> None:
    """Apply ``logging_config``, and skip the work a log record does for fields no format here
    shows: the caller's file and line (a walk up the stack), thread, process and process name."""
    logging.config.dictConfig(logging_config(log_format, level))
    logging._srcfile = None  # the documented switch: "Optimization" in the logging HOWTO
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root logger and gunicorn's own loggers."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"()": f"{__name__}.TextFormatter"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"podpreset": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "podpreset",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }
