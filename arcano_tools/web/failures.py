"""How a page tells a person that a job did not finish: plain Portuguese, never RunningHub's.

The job keeps RunningHub's own text in ``error_message`` (the plan's contract: the API returns
it, the operator page shows it); the tool pages and "Meus trabalhos" show what it *means* —
what happened, what to try, and that the credits came back. Pure functions, unit-tested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from arcano_tools.domain.status import JobStatus
from arcano_tools.services.queue_manager import MSG_INPUT_MISSING, MSG_REJECTED, MSG_UNAVAILABLE
from arcano_tools.services.sync import MSG_UNTRUSTED_OUTPUT

#: The plan's timeout message starts so (``constants.TIMEOUT_MESSAGE_TEMPLATE``): shown as is.
_TIMEOUT_PREFIX = "Timeout:"

_OUT_OF_MEMORY = re.compile(
    r"out of memory|OutOfMemory|\bOOM\b|CUDA error|allocat(e|ion) .*GiB", re.IGNORECASE
)
_UNREADABLE = re.compile(
    r"cannot identify image|UnidentifiedImageError|truncated|LoadImage|LoadVideo|"
    r"invalid data found|could not (open|read|decode)|moov atom not found",
    re.IGNORECASE,
)
_CANCELLED_UPSTREAM = re.compile(r"\bcancel", re.IGNORECASE)

#: Our own messages (already Portuguese) say what happened; the refund is said once, apart.
_OWN_MESSAGES: dict[str, str] = {
    MSG_REJECTED: "O serviço de IA recusou este pedido.",
    MSG_UNAVAILABLE: "O serviço de IA está indisponível no momento. Tente de novo em alguns minutos.",
    MSG_INPUT_MISSING: "O arquivo enviado não estava mais disponível no servidor. Envie o arquivo de novo.",
    MSG_UNTRUSTED_OUTPUT: (
        "O serviço de IA devolveu o resultado de um endereço desconhecido e, por segurança, ele "
        "não foi usado."
    ),
}


@dataclass(frozen=True)
class Noun:
    """The thing a tool works on, with its gender: "a imagem" / "o vídeo"."""

    word: str  # "imagem", "vídeo"
    article: str  # "a", "o"

    @property
    def the(self) -> str:
        return f"{self.article} {self.word}"


IMAGE = Noun("imagem", "a")
VIDEO = Noun("vídeo", "o")


def noun_of(kind: str) -> Noun:
    return VIDEO if kind == "video" else IMAGE


def failure_reason(
    error_message: str | None, kind: str = "image", *, scalable: bool = False
) -> str:
    """What happened, in words a person reads: RunningHub's text → a Portuguese sentence.

    ``kind`` is the tool's main input (``image``/``video``); ``scalable`` whether it has a
    scale to lower.
    """
    text = (error_message or "").strip()
    noun = noun_of(kind)
    if text.startswith(_TIMEOUT_PREFIX):
        return text
    if text in _OWN_MESSAGES:
        return _OWN_MESSAGES[text]
    if _OUT_OF_MEMORY.search(text):
        smaller = f"{'uma' if noun is IMAGE else 'um'} {noun.word} menor"
        if noun is VIDEO:
            smaller += " ou mais curto"
        if scalable:
            smaller += " ou a escala 2×"
        return (
            f"{noun.the.capitalize()} era grande demais para a GPU do serviço de IA "
            f"(faltou memória). Tente {smaller}."
        )
    if _UNREADABLE.search(text):
        return (
            f"O serviço de IA não conseguiu abrir {noun.the} enviad{noun.article}. "
            "Tente outro arquivo."
        )
    if _CANCELLED_UPSTREAM.search(text):
        return "O processamento foi interrompido no serviço de IA. Tente de novo."
    return (
        f"O serviço de IA não conseguiu processar {noun.the}. Isso costuma ser passageiro: "
        "tente de novo."
    )


def refund_text(cost: int) -> str:
    """The credits came back (every failed or cancelled job is refunded once)."""
    return f"Seus {cost} créditos foram devolvidos." if cost != 1 else "Seu crédito foi devolvido."


def ended_step(status: str, *, started: bool, has_task: bool) -> int:
    """The timeline step a failed or cancelled job had reached when it ended.

    1 never started (in the queue), 2 started but RunningHub had no task yet, 3 processing.
    A job that did not end badly has no such step (0).
    """
    if status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
        return 0
    if not started:
        return 1
    return 3 if has_task else 2


#: How a timeline step is drawn.
DONE, CURRENT, TODO, FAILED, CANCELLED, HIDDEN = (
    "done",
    "current",
    "todo",
    "failed",
    "cancelled",
    "hidden",
)


def timeline_marks(status: str, step: int, end_step: int, steps: int = 4) -> list[str]:
    """One mark per step of the timeline (``step`` is ``progress.timeline_step``).

    Active: the steps before the current one are done, the current one is in progress. Completed:
    all done. Failed or cancelled: done up to the step where the job ended, that one marked
    failed (✕) or cancelled, the rest not shown — a failed job never shows "Concluído".
    """
    if status == JobStatus.COMPLETED.value:
        return [DONE] * steps
    if end_step:
        end = FAILED if status == JobStatus.FAILED.value else CANCELLED
        return [
            DONE if i < end_step else end if i == end_step else HIDDEN for i in range(1, steps + 1)
        ]
    if not status:
        return [TODO] * steps
    return [DONE if i < step else CURRENT if i == step else TODO for i in range(1, steps + 1)]
