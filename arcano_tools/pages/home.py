"""Home: a before/after to play with, then the tools, each with a one-line promise."""

from __future__ import annotations

import reflex as rx

from arcano_tools.components.compare import compare_view
from arcano_tools.domain.tools import DEFAULT_TOOLS, Tool
from arcano_tools.web.samples import HOME_AFTER, HOME_BEFORE

ICONS = {
    "upscaler": "scan-search",
    "pose_changer": "person-standing",
    "veste_ai": "shirt",
    "video_upscaler": "clapperboard",
}


def _card(tool: Tool) -> rx.Component:
    return rx.link(
        rx.card(
            rx.vstack(
                rx.icon(ICONS.get(tool.name, "sparkles"), size=28, color=rx.color("accent", 9)),
                rx.heading(tool.title, size="5"),
                rx.text(tool.promise, color_scheme="gray"),
                rx.badge(f"{tool.cost} créditos", variant="soft"),
                spacing="2",
            ),
            width="100%",
            height="100%",
        ),
        href=tool.route,
        underline="none",
        color_scheme="gray",
        high_contrast=True,
    )


def showcase() -> rx.Component:
    """The landscape sample small and drawn again at 4×: what the Upscaler aims at."""
    return rx.card(
        rx.grid(
            compare_view(HOME_BEFORE, HOME_AFTER, test_id="home-compare"),
            rx.vstack(
                rx.heading("Veja antes de enviar", size="5"),
                rx.text(
                    "Arraste a barra para comparar o antes e o depois, e use o zoom para ver os "
                    "detalhes. Em cada ferramenta, “Experimente com um exemplo” processa uma "
                    "imagem nossa em um clique."
                ),
                rx.text(
                    "Ilustração feita pelo projeto: a mesma paisagem em 240×160 px e em 4×.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.link(
                    rx.button(rx.icon("scan-search"), "Experimentar o Upscaler", size="3"),
                    href="/upscaler",
                ),
                spacing="3",
            ),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="5",
            align="center",
        ),
        width="100%",
        data_testid="showcase",
    )


def home() -> rx.Component:
    return rx.vstack(
        rx.heading("Arcano Tools", size="8"),
        rx.text(
            "Ferramentas de IA para suas fotos e vídeos. Envie, acompanhe ao vivo e baixe o "
            "resultado — e se algo falhar, seus créditos voltam.",
            size="4",
            color_scheme="gray",
        ),
        showcase(),
        rx.grid(
            *[_card(t) for t in DEFAULT_TOOLS],
            columns=rx.breakpoints(initial="1", sm="2"),
            spacing="4",
            width="100%",
        ),
        spacing="5",
        width="100%",
    )
