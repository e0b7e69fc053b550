"""Waiting for saved files: inotify through watchfiles, a burst of saves handed on as one, editors' files ignored.

watchfiles (Rust's notify underneath, inotify on Linux) was chosen over a poller, which would reread the whole
content tree a few times a second to see a change as soon, and over inotify_simple and watchdog, which leave
watching new sub-folders (inotify_simple) and grouping a burst of events (both) to us: watchfiles gives both,
and a stop flag its wait looks at every step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from watchfiles import DefaultFilter, watch

log = logging.getLogger(__name__)

QUIET_MS = 50  # a burst of saves ends after this long without another event
BURST_MS = 500  # the longest a burst is grouped before what came so far is handed on
WAKE_MS = 1000  # the longest one wait lasts before the watcher looks at its stop flag again
STOP_WITHIN = 5.0  # seconds stop() waits for the watcher (and a build it may be running)


class SavedFiles(DefaultFilter):
    """What the writer saves, not what editors write beside it: swap, backup, lock and temporary files."""

    ignore_entity_patterns = (
        *DefaultFilter.ignore_entity_patterns,  # .swp and the like, name~, .#name (Emacs' lock), .DS_Store
        r"^\.",  # hidden files and folders: gedit's .goutputstream-*, Kate's .name.kate-swp, .git
        r"^#.*#$",  # Emacs' autosave
        r"^4913$",  # Vim's check that it may write in the folder
        r"\.(tmp|bak|orig|part)$",
    )


class Watcher:
    """Call on_change with the changed paths after each burst of saves under a folder, in a thread of its own."""

    def __init__(self, folder: Path, on_change: Callable[[list[Path]], None],
                 on_ready: Callable[[], None] = lambda: None, ignore: Iterable[Path] = ()) -> None:
        self.folder, self.on_change, self.on_ready = folder, on_change, on_ready
        self.filter = SavedFiles(ignore_paths=[str(p) for p in ignore])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start watching; on_ready runs once, after the first quiet wait (to catch a save before the watch began)."""
        self._thread.start()

    def stop(self, within: float = STOP_WITHIN) -> bool:
        """Stop watching; return whether the watcher ended within the deadline (it is a daemon thread anyway)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(within)
        return not self._thread.is_alive()

    def _run(self) -> None:
        ready = False
        try:
            for changes in watch(self.folder, watch_filter=self.filter, debounce=BURST_MS, step=QUIET_MS,
                                 stop_event=self._stop, rust_timeout=WAKE_MS, yield_on_timeout=True,
                                 raise_interrupt=False):
                if self._stop.is_set():
                    break
                if changes:
                    self.on_change(sorted({Path(path) for _, path in changes}))
                elif not ready:
                    ready = True
                    self.on_ready()
        except (OSError, RuntimeError) as exc:  # the folder went away, or inotify ran out of watches
            self.error = exc
            log.error("stopped watching %s: %s", self.folder, exc)
