"""Errors of the job core. Each carries its default message as docstring; messages are fit
to show to a person. The HTTP status of each is the API's business (``api/errors.py``)."""

from __future__ import annotations


class JobError(Exception):
    """Não foi possível processar o pedido."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(JobError):
    """Dados inválidos."""


class UnsupportedFile(JobError):
    """Tipo de arquivo não suportado."""


class FileTooLarge(JobError):
    """Arquivo grande demais."""


class InsufficientCredits(JobError):
    """Créditos insuficientes para esta ferramenta."""


class JobNotFound(JobError):
    """Job not found"""


class JobNotCancellable(JobError):
    """Este trabalho já terminou e não pode ser cancelado."""
