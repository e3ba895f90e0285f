"""What the pages say when a job did not finish, and how its timeline is drawn."""

from __future__ import annotations

import pytest

from arcano_tools import constants as c
from arcano_tools.services.queue_manager import MSG_UNAVAILABLE
from arcano_tools.web.failures import (
    CANCELLED,
    CURRENT,
    DONE,
    FAILED,
    HIDDEN,
    TODO,
    ended_step,
    failure_reason,
    refund_text,
    timeline_marks,
)

OOM = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
    "23.65 GiB of which 1.12 GiB is free."
)


@pytest.mark.parametrize(
    "raw",
    [OOM, "torch.cuda.OutOfMemoryError", "RuntimeError: CUDA error: out of memory", "OOM killed"],
)
def test_out_of_memory_says_the_picture_was_too_big_for_the_gpu(raw: str) -> None:
    said = failure_reason(raw, "image", scalable=True)
    assert said.startswith("A imagem era grande demais para a GPU")
    assert "escala 2×" in said
    assert "CUDA" not in said
    assert "GiB" not in said


def test_out_of_memory_on_a_video_or_a_tool_without_scale() -> None:
    assert failure_reason(OOM, "video", scalable=True).startswith("O vídeo era grande demais")
    assert "mais curto" in failure_reason(OOM, "video", scalable=True)
    assert "escala" not in failure_reason(OOM, "image", scalable=False)


def test_the_plans_timeout_message_is_shown_as_it_is() -> None:
    timeout = c.TIMEOUT_MESSAGE_TEMPLATE.format(limit="12 minutos")
    assert failure_reason(timeout) == timeout


def test_an_unreadable_input_and_an_upstream_cancel() -> None:
    assert "não conseguiu abrir a imagem" in failure_reason(
        "cannot identify image file <_io.BytesIO object at 0x7f>"
    )
    assert "não conseguiu abrir o vídeo" in failure_reason("moov atom not found", "video")
    assert "interrompido" in failure_reason("Task cancelled")


def test_anything_else_is_a_generic_sentence_never_the_raw_text() -> None:
    for raw in ("KeyError: 'samples'", "", None, "APIKEY_TASK_STATUS_ERROR"):
        said = failure_reason(raw)
        assert said.startswith("O serviço de IA não conseguiu processar a imagem")
        assert "KeyError" not in said


def test_our_own_messages_keep_their_meaning_without_repeating_the_refund() -> None:
    said = failure_reason(MSG_UNAVAILABLE)
    assert "indisponível" in said
    assert "devolvidos" not in said  # the page says the refund once, with the number


def test_refund_names_the_credits() -> None:
    assert refund_text(5) == "Seus 5 créditos foram devolvidos."
    assert refund_text(1) == "Seu crédito foi devolvido."


@pytest.mark.parametrize(
    ("status", "started", "has_task", "step"),
    [
        ("failed", False, False, 1),
        ("cancelled", False, False, 1),
        ("failed", True, False, 2),
        ("cancelled", True, True, 3),
        ("completed", True, True, 0),
        ("running", True, True, 0),
    ],
)
def test_the_step_a_job_ended_at(status: str, started: bool, has_task: bool, step: int) -> None:
    assert ended_step(status, started=started, has_task=has_task) == step


def test_timeline_marks() -> None:
    assert timeline_marks("", 4, 0) == [TODO] * 4
    assert timeline_marks("queued", 1, 0) == [CURRENT, TODO, TODO, TODO]
    assert timeline_marks("running", 3, 0) == [DONE, DONE, CURRENT, TODO]
    assert timeline_marks("completed", 4, 0) == [DONE] * 4
    # a failure while processing: "Concluído" is never ticked
    assert timeline_marks("failed", 4, 3) == [DONE, DONE, FAILED, HIDDEN]
    assert timeline_marks("cancelled", 4, 1) == [CANCELLED, HIDDEN, HIDDEN, HIDDEN]
