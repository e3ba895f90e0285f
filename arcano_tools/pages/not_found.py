"""The page for an address that does not exist: in Portuguese, inside the shell."""

from __future__ import annotations

import reflex as rx

from arcano_tools.domain.tools import DEFAULT_TOOLS


def not_found_page() -> rx.Component:
    return rx.vstack(
        rx.heading("Página não encontrada", size="8"),
        rx.text(
            "O endereço que você abriu não existe (ou mudou de lugar). Escolha uma ferramenta "
            "abaixo ou volte ao início.",
            size="4",
            color_scheme="gray",
        ),
        rx.hstack(
            *[rx.link(rx.button(t.title, variant="soft"), href=t.route) for t in DEFAULT_TOOLS],
            wrap="wrap",
            spacing="3",
        ),
        rx.link(rx.button(rx.icon("house"), "Voltar ao início"), href="/"),
        spacing="5",
        width="100%",
        align="start",
        data_testid="not-found",
    )
