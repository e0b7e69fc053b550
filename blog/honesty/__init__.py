"""The honest log: recorded revisions of published entries, and upstream claims checked against forges."""

from __future__ import annotations


class HonestyError(Exception):
    """A lock or upstream cache file cannot be read or written; the message says how to fix it."""
