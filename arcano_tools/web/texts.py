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
    """``1024×768 px · 320 KB`` for images, the size alone for videos."""
    size = size_text(len(f.content))
    if f.width and f.height:
        return f"{f.width}×{f.height} px · {size}"
    return size


def rejected_message(rejected: list[Any]) -> str:
    """The browser's dropzone refused a file: say why, in words.

    ``rejected`` holds, per file, its list of react-dropzone errors (``{code, message}``).
    """
    codes = {
        str(err.get("code", ""))
        for errors in rejected
        if isinstance(errors, list)
        for err in errors
        if isinstance(err, dict)
    }
    if "file-too-large" in codes:
        return f"Arquivo grande demais: o limite é {c.MAX_IMAGE_BYTES // (1024 * 1024)} MB para imagens."
    if "file-invalid-type" in codes:
        return "Tipo de arquivo não suportado. Envie PNG, JPEG ou WEBP (ou MP4/WEBM para vídeo)."
    if "too-many-files" in codes:
        return "Envie um arquivo por vez."
    return "Este arquivo não pode ser usado."
