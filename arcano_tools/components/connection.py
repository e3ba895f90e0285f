"""The connection banner, in Portuguese, on every page (Reflex's overlay slot).

Shown while the server does not answer — a frozen backend keeps its socket open, so the page
itself notices the silence (``assets/arcano.js`` marks ``<html data-offline>``) — and while
Reflex reports connection errors (the socket is down). It replaces Reflex's English toast.
Clicks meanwhile are not lost: Reflex keeps the events and sends them when the server answers,
and a followed job catches up at once (its times come from the database).
"""

from __future__ import annotations

import reflex as rx
from reflex_components_core.core.banner import has_connection_errors

OFFLINE_TEXT = (
    "Sem conexão com o servidor — tentando reconectar. O que você pedir agora fica na fila "
    "e é enviado assim que a conexão voltar; seu trabalho continua no servidor."
)


def connection_banner() -> rx.Component:
    return rx.el.div(
        rx.callout(
            OFFLINE_TEXT,
            icon="wifi-off",
            color_scheme="amber",
            high_contrast=True,
            size="1",
            variant="surface",
        ),
        class_name="arcano-offline",
        data_errors=rx.cond(has_connection_errors, "true", "false"),
        role="status",
        data_testid="offline",
        style={
            "position": "fixed",
            "left": "50%",
            "transform": "translateX(-50%)",
            "bottom": "1em",
            "zIndex": 1000,
            "width": "min(36em, calc(100% - 2em))",
            # the callout's colours are translucent: a solid page colour under them
            "background": "var(--color-background)",
            "borderRadius": "var(--radius-4)",
            "boxShadow": "var(--shadow-4)",
        },
    )
