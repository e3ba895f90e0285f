"""Home: the tools, each with a one-line promise."""

from __future__ import annotations

import reflex as rx

from arcano_tools.domain.tools import DEFAULT_TOOLS, Tool

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


def home() -> rx.Component:
    return rx.vstack(
        rx.heading("Arcano Tools", size="8"),
        rx.text(
            "Ferramentas de IA para suas fotos e vídeos. Envie, acompanhe ao vivo e baixe o "
            "resultado — e se algo falhar, seus créditos voltam.",
            size="4",
            color_scheme="gray",
        ),
        rx.grid(
            *[_card(t) for t in DEFAULT_TOOLS],
            columns=rx.breakpoints(initial="1", sm="2"),
            spacing="4",
            width="100%",
        ),
        spacing="5",
        width="100%",
    )
