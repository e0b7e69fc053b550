"""Builds: the whole site at one moment, rendered, stored on disk, switched in atomically.

`make` holds the `Build` and makes one from the content, `stores` keeps its values in files of their own read
on demand, `disk` saves and loads builds and switches the `current` pointer, `repair` is how a request
worker asks the builder to rebuild an unusable index.
"""

from blog.builds.disk import POINTER, SNAPSHOT, current_pointer, load, load_current, pointer_mtime, save, switch
from blog.builds.make import BUILD_FORMAT, Build, content_fingerprint, make_build
from blog.builds.repair import BUILDER_PID, REPAIR_SIGNAL, ask_for_repair
from blog.builds.stores import BuildError, FileStore, LogStore, RenderedStore, RevisionStore, Stored, TextStore

__all__ = [
    "BUILDER_PID",
    "BUILD_FORMAT",
    "POINTER",
    "REPAIR_SIGNAL",
    "SNAPSHOT",
    "Build",
    "BuildError",
    "FileStore",
    "LogStore",
    "RenderedStore",
    "RevisionStore",
    "Stored",
    "TextStore",
    "ask_for_repair",
    "content_fingerprint",
    "current_pointer",
    "load",
    "load_current",
    "make_build",
    "pointer_mtime",
    "save",
    "switch",
]
