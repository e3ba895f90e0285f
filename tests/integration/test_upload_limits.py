"""Upload size limits hold against a client that lies about its body (audit finding: the
cap was bypassed with ``Content-Length: 1000`` plus ``Transfer-Encoding: chunked``)."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from arcano_tools.api.routes import MSG_AMBIGUOUS_LENGTH
from tests.support.servers import Backend

CHUNK = b"x" * (1024 * 1024)
#: Far more than the multipart limit: a server that reads it all grows by this much.
CHUNKS_OFFERED = 80
SOCKET_TIMEOUT_S = 30.0


def _post_raw(backend: Backend, user: str, headers: list[str], chunks: int) -> bytes:
    """POST /api/jobs over a raw socket, sending chunks until the server answers."""
    parts = urlsplit(backend.url)
    auth = backend.user_headers(user)["Authorization"]
    head = "\r\n".join(
        [
            "POST /api/jobs HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            f"Authorization: {auth}",
            "Content-Type: multipart/form-data; boundary=b",
            *headers,
            "",
            "",
        ]
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head)
        try:
            for _ in range(chunks):
                sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        except OSError:
            pass  # the server answered and closed: what we want
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


def test_content_length_with_a_chunked_body_is_refused_without_reading_it(
    backend: Backend, user: str
) -> None:
    answer = _post_raw(
        backend, user, ["Content-Length: 1000", "Transfer-Encoding: chunked"], CHUNKS_OFFERED
    )

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", status_line
    body = json.loads(rest[rest.index(b"{") :])
    assert body["error"] == MSG_AMBIGUOUS_LENGTH
