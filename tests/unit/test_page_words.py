"""Words that depend on what a tool works on (an image or a video)."""

from __future__ import annotations

from arcano_tools import constants as c
from arcano_tools.services.uploads import CheckedFile
from arcano_tools.web.texts import (
    accept_hint,
    again_label,
    file_summary,
    not_enough_credits,
    rejected_message,
    short_name,
    success_toast,
)


def test_limits_and_formats_follow_the_inputs_kind() -> None:
    assert accept_hint("image") == f"PNG, JPEG ou WEBP até {c.MAX_IMAGE_BYTES >> 20} MB"
    assert accept_hint("video") == f"MP4, MOV ou WEBM até {c.MAX_UPLOAD_BYTES >> 20} MB"
    too_big = [[{"code": "file-too-large"}]]
    assert rejected_message(too_big, "video") == (
        f"Arquivo grande demais: o limite é {c.MAX_UPLOAD_BYTES >> 20} MB para vídeos."
    )
    assert "imagens" in rejected_message(too_big, "image")
    wrong = [[{"code": "file-invalid-type"}]]
    assert "MP4, MOV ou WEBM" in rejected_message(wrong, "video")
    assert "PNG, JPEG ou WEBP" in rejected_message(wrong, "image")


def test_a_video_is_never_called_an_image() -> None:
    assert success_toast("image") == c.TOAST_SUCCESS
    assert success_toast("video") == "Vídeo processado com sucesso!"
    assert again_label("video") == "Processar outro vídeo"
    assert again_label("image") == "Processar outra imagem"


def test_a_videos_summary_names_the_file() -> None:
    video = CheckedFile("video", "praia.mov", b"x" * 2048, "mp4", "video/mp4")
    assert file_summary(video) == "praia.mov · 2 KB"
    image = CheckedFile("image", "f.png", b"x" * 2048, "png", "image/png", 320, 240)
    assert file_summary(image) == "320×240 px · 2 KB"
    long = "ferias-na-praia-com-a-familia-toda-reunida-2024.mov"
    assert len(short_name(long)) == 40
    assert short_name(long).endswith("2024.mov")


def test_not_enough_credits_says_both_numbers() -> None:
    assert not_enough_credits(3, 5) == "Você tem 3 créditos e este processamento custa 5."
    assert not_enough_credits(1, 5) == "Você tem 1 crédito e este processamento custa 5."
    assert not_enough_credits(0, 20) == "Você tem 0 créditos e este processamento custa 20."
