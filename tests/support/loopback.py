"""A plain ``http.server`` on a free loopback port, served from a thread for the length of a
``with`` block: the far side of a client under test (a file host, a webhook receiver, a key
server) when a whole process would be more than the test needs."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[str]:
    """Serve ``server`` (bound to ``("127.0.0.1", 0)``) until the block ends; yields its base
    URL (``http://127.0.0.1:<port>``). Stopped and closed on the way out, whatever happened."""
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="loopback-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
