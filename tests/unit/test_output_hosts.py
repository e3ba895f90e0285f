"""Output URLs are trusted only from RunningHub's file hosts and the configured API host."""

from __future__ import annotations

import pytest

from arcano_tools.config import load_settings
from arcano_tools.domain.urls import RUNNINGHUB_FILE_HOSTS, OutputHosts

HOSTS = OutputHosts.of(RUNNINGHUB_FILE_HOSTS, also=["127.0.0.1"])


@pytest.mark.parametrize(
    "url",
    [
        "https://rh-images.xiaoyaoyou.com/abc/2026-11-29/out.png",
        "https://rh-images-1252422369.cos.ap-beijing.myqcloud.com/output/x.png",
        "https://rh-images-switch-1252422369.cos.ap-guangzhou.myqcloud.com/input/x.jpg",
        "https://www.runninghub.ai/view?file=x.png",
        "https://RunningHub.cn/x.png",
        "http://127.0.0.1:8100/files/x.png",
    ],
)
def test_runninghubs_file_hosts_and_the_api_host_are_allowed(url: str) -> None:
    assert HOSTS.allows(url)


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https://evil.example/out.png",
        "https://runninghub.ai.evil.example/out.png",
        "https://evilrunninghub.ai/out.png",
        "https://other-9999.cos.ap-beijing.myqcloud.com/x.png",
        "https://user:pw@rh-images.xiaoyaoyou.com/x.png",
        "ftp://rh-images.xiaoyaoyou.com/x.png",
        "https://rh-images.xiaoyaoyou.com:notaport/x.png",
    ],
)
def test_anything_else_is_refused(url: str | None) -> None:
    assert not HOSTS.allows(url)


def test_operators_replace_runninghubs_list_but_keep_the_api_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNNINGHUB_API_URL", "https://www.runninghub.ai")
    monkeypatch.setenv("RUNNINGHUB_OUTPUT_HOSTS", "cdn.example.com, *.files.example.org")
    hosts = load_settings().output_hosts
    assert hosts.allows("https://cdn.example.com/x.png")
    assert hosts.allows("https://a.files.example.org/x.png")
    assert hosts.allows("https://www.runninghub.ai/x.png")
    assert not hosts.allows("https://rh-images.xiaoyaoyou.com/x.png")
