"""What the pages say to people."""

from __future__ import annotations

from arcano_tools.web.texts import duration_text, rejected_message, size_text


def test_durations_read_naturally() -> None:
    assert duration_text(40) == "40 s"
    assert duration_text(75) == "1 min 15 s"
    assert duration_text(120) == "2 min"
    assert duration_text(-3) == "0 s"


def test_sizes_use_the_brazilian_decimal_comma() -> None:
    assert size_text(1536 * 1024) == "1,5 MB"
    assert size_text(300) == "1 KB"


def test_browser_rejections_become_sentences() -> None:
    assert "grande demais" in rejected_message([[{"code": "file-too-large"}]])
    assert "não suportado" in rejected_message([[{"code": "file-invalid-type"}]])
    assert "um arquivo por vez" in rejected_message([[{"code": "too-many-files"}]])
    assert rejected_message([["garbage"], {"x": 1}]) == "Este arquivo não pode ser usado."
