"""A before/after comparison: one picture over the other, a divider moved by a slider, zoom
buttons and panning (drag or scroll) — all in the browser (``assets/arcano.js`` and
``assets/pages.css``), so moving the divider costs no round trip to the server.

Keyboard: the divider is a native range input (arrow keys, Home/End); the zoom buttons are
toggle buttons (``aria-pressed``). Screen readers get both pictures' descriptions.
"""

from __future__ import annotations

from typing import Any

import reflex as rx

#: The zoom levels offered (1 = the picture fits the width).
ZOOMS = (1, 2, 4)


def _zoom_button(zoom: int) -> rx.Component:
    return rx.button(
        f"{zoom}×",
        size="1",
        variant="soft",
        color_scheme="gray",
        aria_pressed="true" if zoom == 1 else "false",
        aria_label=f"Zoom {zoom}×",
        data_compare_zoom=str(zoom),
        type="button",
    )


def compare_view(
    before: Any, after: Any, *, test_id: str = "compare", **after_props: Any
) -> rx.Component:
    """``before`` and ``after``: image URLs (vars or strings). ``after_props`` go to the
    "after" image (a ``data_testid``)."""
    return rx.el.div(
        rx.el.div(
            rx.el.div(
                rx.el.img(
                    src=before, alt="Antes", draggable=False, data_testid=f"{test_id}-before"
                ),
                rx.el.div(
                    rx.el.img(src=after, alt="Depois", draggable=False, **after_props),
                    data_compare_after="",
                ),
                rx.el.div(data_compare_line=""),
                rx.el.span("Antes", data_compare_tag="", style={"left": "8px"}, aria_hidden="true"),
                rx.el.span(
                    "Depois", data_compare_tag="", style={"right": "8px"}, aria_hidden="true"
                ),
                data_compare_stage="",
            ),
            data_compare_view="",
            data_testid=f"{test_id}-view",
            # focusable: with zoom the arrow keys pan (a scrollable region needs the keyboard)
            tab_index=0,
            role="region",
            aria_label="Antes e depois (com zoom, arraste ou use as setas para mover)",
        ),
        rx.hstack(
            rx.el.input(
                type="range",
                min="0",
                max="100",
                default_value="50",
                aria_label="Comparar: arraste para ver mais do antes ou do depois",
                data_compare_range="",
                data_testid=f"{test_id}-range",
            ),
            rx.hstack(
                *[_zoom_button(z) for z in ZOOMS], spacing="1", role="group", aria_label="Zoom"
            ),
            align="center",
            spacing="3",
            width="100%",
            padding_top="0.5em",
        ),
        data_compare="",
        data_testid=test_id,
        style={"width": "100%"},
    )
