"""What the pages say to people (Brazilian Portuguese), in one place."""

from __future__ import annotations

from typing import Any

from arcano_tools import constants as c
from arcano_tools.domain.status import JobStatus
from arcano_tools.services.uploads import CheckedFile

MSG_GENERIC = "Algo deu errado do nosso lado. Tente novamente em instantes."
MSG_MISSING_FILE = "Envie antes: {}."
MSG_SIGN_IN = "Entre com sua conta para usar as ferramentas."
DEMO_BANNER = (
    "Modo demonstração: os trabalhos rodam num simulador do RunningHub, "
    "não na IA de verdade, e os créditos são de teste."
)

#: A job's status as the pages name it (keyed by the enum's value: page vars hold strings).
STATUS_LABELS: dict[str, str] = {
    JobStatus.PENDING.value: "Na fila",
    JobStatus.QUEUED.value: "Na fila",
    JobStatus.STARTING.value: "Iniciando",
    JobStatus.RUNNING.value: "Processando",
    JobStatus.COMPLETED.value: "Concluído",
    JobStatus.FAILED.value: "Falhou",
    JobStatus.CANCELLED.value: "Cancelado",
}


#: Shown instead of "Processando" once RunningHub has finished and the result is being copied
#: into our storage (the job is still running until the copy is kept).
SAVING_LABEL = "Salvando resultado"

#: The estimate under the bar, put together in the browser (``assets/job_clock.jsx``) as the
#: time left counts down: ``{}`` in the sentence is "menos de 5 s" or "cerca de 1 min 05 s".
ESTIMATE_UNKNOWN = "Sem estimativa ainda: é um dos primeiros trabalhos desta ferramenta."
ESTIMATE_SENTENCE = "Faltam {} (estimativa pelos últimos trabalhos, fila incluída)."
ESTIMATE_SOON = "menos de 5 s"
ESTIMATE_ABOUT = "cerca de {}"

CREDITS_ROUTE = "/creditos"
SIGN_IN_ROUTE = "/entrar"
SIGN_UP_ROUTE = "/criar-conta"
RESET_ROUTE = "/recuperar-senha"
NEW_PASSWORD_ROUTE = "/nova-senha"


def not_enough_credits(have: int, cost: int) -> str:
    """Why "Processar" is disabled when the balance is below the tool's price."""
    have_text = f"{max(0, have)} crédito{'' if have == 1 else 's'}"
    return f"Você tem {have_text} e este processamento custa {cost}."


def duration_text(seconds: int) -> str:
    """``75`` → ``1 min 15 s``; ``40`` → ``40 s``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"


def size_text(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".", ",")
    return f"{max(1, round(n / 1024))} KB"


def file_summary(f: CheckedFile) -> str:
    """``1024×768 px · 320 KB`` for images; ``clip.mov · 1,5 MB`` for videos."""
    size = size_text(len(f.content))
    if f.width and f.height:
        return f"{f.width}×{f.height} px · {size}"
    return f"{short_name(f.filename)} · {size}"


def stored_summary(stored: dict[str, Any]) -> str:
    """:func:`file_summary` of a job's stored input (its row keeps name, size and pixels)."""
    size = stored.get("size")
    size_part = size_text(size) if isinstance(size, int) and size > 0 else ""
    width, height = stored.get("width"), stored.get("height")
    if isinstance(width, int) and isinstance(height, int) and width and height:
        first = f"{width}×{height} px"
    else:
        first = short_name(str(stored.get("name") or "arquivo"))
    return f"{first} · {size_part}" if size_part else first


def short_name(name: str, limit: int = 40) -> str:
    """A file name that fits one line: ``um-nome-muito-…-final.mov``."""
    if len(name) <= limit:
        return name
    tail = 12
    return name[: limit - tail - 1] + "…" + name[-tail:]


def _limit_mb(kind: str) -> int:
    return (c.MAX_UPLOAD_BYTES if kind == "video" else c.MAX_IMAGE_BYTES) // (1024 * 1024)


def formats_text(kind: str) -> str:
    """The formats a file input takes, as the page lists them (what ``check_file`` accepts)."""
    return "MP4, MOV ou WEBM" if kind == "video" else "PNG, JPEG ou WEBP"


def accept_hint(kind: str) -> str:
    """Under a drop zone: ``PNG, JPEG ou WEBP até 20 MB`` / ``MP4, MOV ou WEBM até 30 MB``."""
    return f"{formats_text(kind)} até {_limit_mb(kind)} MB"


def success_toast(kind: str) -> str:
    """The plan's success toast for images; the same sentence for a video."""
    return c.TOAST_SUCCESS if kind != "video" else "Vídeo processado com sucesso!"


def again_label(kind: str) -> str:
    """The button that forgets a finished job and keeps the inputs."""
    return "Processar outro vídeo" if kind == "video" else "Processar outra imagem"


def rejected_message(rejected: list[Any], kind: str = "image") -> str:
    """The browser's dropzone refused a file: say why, in words.

    ``rejected`` holds, per file, its list of react-dropzone errors (``{code, message}``);
    ``kind`` is the input's (``image`` or ``video``): limits and formats are its own.
    """
    codes = {
        str(err.get("code", ""))
        for errors in rejected
        if isinstance(errors, list)
        for err in errors
        if isinstance(err, dict)
    }
    noun = "vídeos" if kind == "video" else "imagens"
    if "file-too-large" in codes:
        return f"Arquivo grande demais: o limite é {_limit_mb(kind)} MB para {noun}."
    if "file-invalid-type" in codes:
        return f"Tipo de arquivo não suportado. Envie {formats_text(kind)}."
    if "too-many-files" in codes:
        return "Envie um arquivo por vez."
    return "Este arquivo não pode ser usado."
