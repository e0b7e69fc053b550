"""Pictures and files beside an entry: found from the pages' links, checked, cleaned of metadata, served by hash.

`links` finds the links that name files and where the Markdown names them, `formats` takes an image apart,
`clean` and `svg` make a file fit to serve (an image without its metadata), `cleaning_process` runs them in a process
of its own with bounds on memory and time, `remote` refuses what a page would fetch from another site,
`collect` does it all for a whole site (a build, `blog check`), `place` points the pages' links at the
served URLs, `fileset` holds what a build keeps. See docs/files.md.
"""

from blog.files.collect import check_files, collect, documents
from blog.files.fileset import FILES_DIR, MAX_BYTES, MAX_PIXELS, TYPES, Asset, FileSet, kind_of
from blog.files.place import absolute, mirror, place

__all__ = [
    "FILES_DIR",
    "MAX_BYTES",
    "MAX_PIXELS",
    "TYPES",
    "Asset",
    "FileSet",
    "absolute",
    "check_files",
    "collect",
    "documents",
    "kind_of",
    "mirror",
    "place",
]
