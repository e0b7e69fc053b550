"""What the server writes to its logs: events, escaped and bounded, never a client's own text.

A request path is the client's text: `%0a` in it wrote a forged access-log line, `%00` wrote NUL bytes.
The MCP SDK logs what clients send (a refused 8,000-character Host, failed tool input, a traceback for an
unknown prompt). Every line is escaped here, every record is bounded in length, and records from the SDK
are reduced to where they happened: the event, not the client's words.
"""

from __future__ import annotations

import logging
import sys

from gunicorn.glogging import Logger

MAX_FIELD = 300  # characters of one access-log field (a path can be 4 KiB)
MAX_RECORD = 2000  # characters of one error-log record, traceback included
_PLAIN = {c: None for c in range(0x20, 0x7F) if c != 0x5C}  # printable ASCII but the backslash


def escape(text: str, limit: int) -> str:
    """Return text with every control or non-printable character escaped (\\n, \\x00, \\u2028), cut at limit."""
    if text.translate(_PLAIN):
        text = "".join(c if c.isprintable() and c != "\\" else _escaped(c) for c in text)
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more]"


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


class ClientTextFilter(logging.Filter):
    """Reduce the MCP SDK's records to the event: its logger, level and place, no message or traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "mcp" or record.name.startswith("mcp."):
            failure = f" ({record.exc_info[0].__name__})" if record.exc_info and record.exc_info[0] else ""
            record.msg = f"MCP SDK {record.levelname.lower()} at {record.module}.{record.funcName}{failure}"
            record.args = None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


class BoundedFormatter(logging.Formatter):
    """Format a record on one line: escaped (a traceback's newlines too) and bounded in length."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record), MAX_RECORD)


class SafeLogger(Logger):
    """gunicorn's logger with escaped access-log fields and bounded, one-line error records.

    The app's own records (blog.*, the SDK) go to the same stream in the same form, through the root logger.
    """

    def setup(self, cfg) -> None:  # type: ignore[no-untyped-def]
        super().setup(cfg)
        quiet = ClientTextFilter()
        for handler in self.error_log.handlers:
            handler.setFormatter(BoundedFormatter(self.error_fmt, self.datefmt))
            handler.addFilter(quiet)
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "_blog", False):
                root.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        handler._blog = True  # type: ignore[attr-defined]
        handler.setFormatter(BoundedFormatter(self.error_fmt, self.datefmt))
        handler.addFilter(quiet)
        root.addHandler(handler)
        # The app's own events at the server's level (a reload, a rebuilt index, the MCP transport started);
        # the SDK's INFO lines are one per request, which the access log already has.
        root.setLevel(self.loglevel)
        logging.getLogger("mcp").setLevel(max(self.loglevel, logging.WARNING))

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: escape(value, MAX_FIELD) if isinstance(value, str) else value for key, value in atoms.items()}
