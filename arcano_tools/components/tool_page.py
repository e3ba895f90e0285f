"""The tool page, built once for every tool from its description and its state class.

Two columns on a wide screen, stacked on a phone: inputs on the left (drop zones with preview,
the tool's parameters, the cost and the submit button); the job on the right (an explanation
before, then the live status timeline, then the result with before/after and download).
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ArrayVar, ObjectVar

from arcano_tools import constants as c
from arcano_tools.domain.status import JobStatus
from arcano_tools.domain.tools import FileInput, Tool
from arcano_tools.web.state import ToolPageState

IMAGE_ACCEPT = {"image/png": [".png"], "image/jpeg": [".jpg", ".jpeg"], "image/webp": [".webp"]}
VIDEO_ACCEPT = {"video/mp4": [".mp4", ".mov"], "video/webm": [".webm"], "video/quicktime": [".mov"]}
TIMELINE = ("Na fila", "Iniciando", "Processando", "Concluído")


def _upload_id(tool: Tool, spec: FileInput) -> str:
    return f"upload_{tool.name}_{spec.name}"


def drop_zone(tool: Tool, state: type[ToolPageState], index: int) -> rx.Component:
    spec = tool.files[index]
    upload_id = _upload_id(tool, spec)
    handler = state.upload_main if index == 0 else state.upload_second
    reject = state.reject_main if index == 0 else state.reject_second
    is_image = spec.kind == "image"
    preview = rx.cond(
        state.previews.contains(spec.name),
        rx.cond(
            is_image,
            rx.image(
                src=rx.get_upload_url(state.previews[spec.name]),
                alt=spec.label,
                max_height="260px",
                border_radius="8px",
                object_fit="contain",
            ),
            rx.hstack(rx.icon("film", size=32), rx.text("Vídeo pronto para enviar")),
        ),
        rx.vstack(
            rx.icon("image-up" if is_image else "film", size=36, color=rx.color("accent", 9)),
            rx.text("Arraste o arquivo aqui ou clique para escolher", weight="medium"),
            rx.text(
                "PNG, JPEG ou WEBP até 20 MB" if is_image else "MP4, MOV ou WEBM até 30 MB",
                size="1",
                color_scheme="gray",
            ),
            align="center",
            spacing="2",
        ),
    )
    return rx.vstack(
        rx.text(spec.label, weight="bold", size="2"),
        rx.upload(
            rx.center(preview, width="100%", min_height="180px", padding="1em"),
            id=upload_id,
            accept=IMAGE_ACCEPT if is_image else VIDEO_ACCEPT,
            max_size=c.MAX_IMAGE_BYTES if is_image else c.MAX_UPLOAD_BYTES,
            max_files=1,
            multiple=False,
            disabled=state.is_active,
            on_drop=handler(rx.upload_files(upload_id=upload_id)),
            # Only the error codes go to the server: the rejected File objects would travel
            # as socket.io binary attachments (a 25 MB file would break the connection).
            on_drop_rejected=lambda rejected: reject(
                rejected.to(ArrayVar, list[dict[str, Any]]).foreach(
                    lambda item: item.to(ObjectVar, dict[str, Any])["errors"]
                )
            ),
            border=f"2px dashed {rx.color('accent', 7)}",
            border_radius="12px",
            width="100%",
            cursor="pointer",
            drag_active_style={"background": rx.color("accent", 3)},
            aria_label=f"Enviar {spec.label}",
            data_testid=f"drop-{spec.name}",
        ),
        rx.cond(
            state.infos.contains(spec.name) & state.previews.contains(spec.name),
            rx.text(state.infos[spec.name], size="1", color_scheme="gray"),
        ),
        rx.cond(
            state.errors.contains(spec.name),
            rx.callout(
                state.errors[spec.name],
                icon="triangle-alert",
                color_scheme="red",
                size="1",
                role="alert",
                data_testid=f"error-{spec.name}",
            ),
        ),
        width="100%",
        spacing="2",
    )


def inputs_column(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    parts: list[rx.Component] = [drop_zone(tool, state, i) for i in range(len(tool.files))]
    if tool.scales:
        parts.append(
            rx.vstack(
                rx.text("Escala", weight="bold", size="2"),
                rx.segmented_control.root(
                    *[rx.segmented_control.item(f"{s}×", value=str(s)) for s in tool.scales],
                    value=state.scale,
                    on_change=state.set_scale,
                    data_testid="scale",
                ),
                spacing="2",
            )
        )
    parts.append(
        rx.cond(
            state.form_error != "",
            rx.callout(state.form_error, icon="circle-alert", color_scheme="red", role="alert"),
        )
    )
    parts.append(
        rx.button(
            rx.icon("wand-sparkles"),
            f"Processar · {tool.cost} créditos",
            size="3",
            width="100%",
            on_click=state.submit,
            loading=state.submitting,
            disabled=~state.ready | state.submitting | state.is_active,
            data_testid="submit",
        )
    )
    return rx.card(rx.vstack(*parts, spacing="4", width="100%"), width="100%")


def timeline(state: type[ToolPageState]) -> rx.Component:
    def step(index: int, label: str) -> rx.Component:
        reached = state.step >= index + 1
        return rx.hstack(
            rx.cond(
                reached,
                rx.icon("circle-check", size=16, color=rx.color("accent", 9)),
                rx.icon("circle", size=16, color=rx.color("gray", 7)),
            ),
            rx.text(label, size="2", color_scheme=rx.cond(reached, "accent", "gray")),
            spacing="1",
            align="center",
        )

    return rx.hstack(
        *[step(i, label) for i, label in enumerate(TIMELINE)], wrap="wrap", spacing="4"
    )


def status_panel(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.cond(state.is_active, rx.spinner(size="3")),
            rx.heading(state.status_label, size="6", data_testid="status-label"),
            rx.spacer(),
            rx.text(state.elapsed_text, size="2", color_scheme="gray", data_testid="elapsed"),
            align="center",
            width="100%",
        ),
        timeline(state),
        rx.cond(
            state.is_active,
            rx.vstack(
                rx.progress(value=state.progress, width="100%"),
                rx.cond(
                    state.typical_text != "",
                    rx.text(state.typical_text, size="1", color_scheme="gray"),
                ),
                rx.button(
                    rx.icon("x"),
                    "Cancelar",
                    variant="soft",
                    color_scheme="gray",
                    on_click=state.cancel,
                    data_testid="cancel",
                ),
                width="100%",
                spacing="3",
            ),
        ),
        rx.cond(
            state.status == JobStatus.FAILED.value,
            rx.callout(
                state.error_message,
                icon="circle-x",
                color_scheme="red",
                title="Não foi possível processar",
                width="100%",
                data_testid="job-error",
            ),
        ),
        rx.cond(state.is_done, result_view(tool, state)),
        rx.cond(
            state.has_job & ~state.is_active,
            rx.button(
                rx.icon("rotate-ccw"),
                "Processar outra",
                variant="outline",
                on_click=state.start_over,
            ),
        ),
        width="100%",
        spacing="4",
    )


def result_view(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    main = tool.files[0]
    if main.kind == "video":
        shown: rx.Component = rx.el.video(
            src=state.output_url, controls=True, width="100%", data_testid="result"
        )
    else:
        shown = rx.grid(
            rx.vstack(
                rx.text("Antes", size="1", color_scheme="gray"),
                rx.image(
                    src=rx.get_upload_url(state.previews[main.name]),
                    alt="Antes",
                    width="100%",
                    border_radius="8px",
                ),
            ),
            rx.vstack(
                rx.text("Depois", size="1", color_scheme="gray"),
                rx.image(
                    src=state.output_url,
                    alt="Resultado",
                    width="100%",
                    border_radius="8px",
                    data_testid="result",
                ),
            ),
            columns="2",
            spacing="3",
            width="100%",
        )
    return rx.vstack(
        shown,
        rx.link(
            rx.button(rx.icon("download"), "Baixar resultado", size="3"),
            href=state.output_url,
            is_external=True,
            download=True,
        ),
        width="100%",
        spacing="3",
    )


def intro_panel(tool: Tool) -> rx.Component:
    return rx.vstack(
        rx.heading("Como funciona", size="4"),
        rx.text(tool.promise),
        rx.unordered_list(
            rx.list_item("Envie o arquivo à esquerda (arraste ou clique)."),
            rx.list_item(f"Cada processamento custa {tool.cost} créditos; se falhar, eles voltam."),
            rx.list_item("Acompanhe aqui o andamento; pode recarregar a página sem perder nada."),
        ),
        spacing="3",
    )


def tool_page(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    return rx.vstack(
        rx.vstack(rx.heading(tool.title, size="8"), rx.text(tool.promise, color_scheme="gray")),
        rx.grid(
            inputs_column(tool, state),
            rx.card(
                rx.cond(state.has_job, status_panel(tool, state), intro_panel(tool)),
                width="100%",
            ),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="5",
            width="100%",
        ),
        width="100%",
        spacing="5",
    )
