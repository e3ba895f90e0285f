"""Where files live: one small seam (:class:`ObjectStorage`) and its two adapters.

Inputs (uploads) and results go through it, so several backend processes or machines need no
shared disk when the Supabase adapter is configured; the local folder is the embedded default.
"""

from arcano_tools.storage.base import ObjectNotFound, ObjectStorage, StorageError, check_key

__all__ = ["ObjectNotFound", "ObjectStorage", "StorageError", "check_key"]
