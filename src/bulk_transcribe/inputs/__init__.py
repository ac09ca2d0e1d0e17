"""Everything the user gives as input becomes videos here: URLs (stream.py, resolve.py), local files and folders
(local.py), input lists (lists.py) and the download archive (archive.py)."""

from .stream import InputStream, ResolvedInputs, resolve_inputs

__all__ = ["InputStream", "ResolvedInputs", "resolve_inputs"]
