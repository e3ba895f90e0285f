"""An output URL ends up in the user's page: only absolute http(s) URLs are accepted."""

from __future__ import annotations

import pytest

from arcano_tools.runninghub.client import parse_outputs_envelope


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "/relative.png", "ftp://h/x", "https://"]
)
def test_output_urls_that_are_not_absolute_http_are_dropped(url: str) -> None:
    out = parse_outputs_envelope({"code": 0, "data": [{"fileUrl": url}]})
    assert out.output_url is None
    assert out.state == "running"  # nothing usable yet: never "completed" with a bad URL


def test_an_https_url_is_kept_as_is() -> None:
    url = "https://rh-images.example.com/output/ComfyUI_00033_.png?x=1"
    assert parse_outputs_envelope({"code": 0, "data": [{"fileUrl": url}]}).output_url == url
