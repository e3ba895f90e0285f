"""Errors of the job core. Each carries its default message as docstring and an HTTP status,
so the API layer maps them without knowing each one; messages are fit to show to a person."""

from __future__ import annotations


class JobError(Exception):
    """Não foi possível processar o pedido."""

    http_status = 400

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(JobError):
    """Dados inválidos."""

    http_status = 422


class UnsupportedFile(JobError):
    """Tipo de arquivo não suportado."""

    http_status = 415


class FileTooLarge(JobError):
    """Arquivo grande demais."""

    http_status = 413


class InsufficientCredits(JobError):
    """Créditos insuficientes para esta ferramenta."""

    http_status = 402


class JobNotFound(JobError):
    """Job not found"""

    http_status = 404


class JobNotCancellable(JobError):
    """Este trabalho já terminou e não pode ser cancelado."""

    http_status = 409
