"""The tool page, built once for every tool from its description and its state class.

Two columns on a wide screen, stacked on a phone: inputs on the left (drop zones with preview,
the tool's parameters, the cost and the submit button); the job on the right (an explanation
before, then the live status timeline, then the result with before/after and download).
"""

from __future__ import annotations

import json
from typing import Any

import reflex as rx
from reflex.vars import ArrayVar, ObjectVar, Var

from arcano_tools import constants as c
from arcano_tools.components import job_clock
from arcano_tools.components.compare import compare_view
from arcano_tools.components.result_facts import ResultFacts
from arcano_tools.domain.status import JobStatus
from arcano_tools.domain.tools import FileInput, Tool
from arcano_tools.web import failures
from arcano_tools.web.samples import has_samples
from arcano_tools.web.state import NOTIFY_ASK_JS, STATUS_CARD_ID, SessionState, ToolPageState
from arcano_tools.web.texts import CREDITS_ROUTE, accept_hint, again_label

IMAGE_ACCEPT = {"image/png": [".png"], "image/jpeg": [".jpg", ".jpeg"], "image/webp": [".webp"]}
VIDEO_ACCEPT = {"video/mp4": [".mp4", ".mov"], "video/webm": [".webm"], "video/quicktime": [".mov"]}
TIMELINE = ("Na fila", "Iniciando", "Processando", "Concluído")


def _upload_id(tool: Tool, spec: FileInput) -> str:
    return f"upload_{tool.name}_{spec.name}"


def _with_props(special: Var, props: dict[str, str]) -> Var:
    """``getRootProps()`` → ``getRootProps({...})``: react-dropzone merges what it is given."""
    call = str(special)
    assert call.endswith("()"), call
    return Var(
        _js_expr=f"{call[:-2]}({json.dumps(props)})",
        _var_type=None,
        _var_data=special._get_all_var_data(),
    )


def _name_dropzone(upload: rx.Component, label: str) -> rx.Component:
    """Give ``rx.upload``'s parts names: its hidden file input has no label and its zone is
    ``role="presentation"`` although it is focusable and opens the file picker (a named group
    holding the input; a button may not contain one). Reflex 0.10 takes no props for them,
    so the dropzone's own prop getters are called with ours."""
    zone = upload.children[0]
    file_input = zone.children[0]
    assert getattr(file_input, "tag", "") == "input", file_input
    zone.special_props = [_with_props(zone.special_props[0], {"role": "group"})]
    file_input.special_props = [_with_props(file_input.special_props[0], {"aria-label": label})]
    return upload


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
            rx.vstack(
                rx.icon("film", size=36, color=rx.color("accent", 9)),
                rx.text(state.infos[spec.name], weight="medium", data_testid=f"file-{spec.name}"),
                rx.text(
                    "Pronto para enviar · clique ou arraste para trocar",
                    size="1",
                    color_scheme="gray",
                ),
                align="center",
                spacing="2",
            ),
        ),
        rx.vstack(
            rx.icon("image-up" if is_image else "film", size=36, color=rx.color("accent", 9)),
            rx.text("Arraste o arquivo aqui ou clique para escolher", weight="medium"),
            rx.text(accept_hint(spec.kind), size="1", color_scheme="gray"),
            align="center",
            spacing="2",
        ),
    )
    upload = rx.upload(
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
            rejected.to(ArrayVar, list[dict[str, Any]]).map(
                lambda item: item.to(ObjectVar, dict[str, Any])["errors"]
            )
        ),
        border=f"2px dashed {rx.color('accent', 7)}",
        border_radius="12px",
        padding="0.5em",
        width="100%",
        cursor="pointer",
        drag_active_style={"background": rx.color("accent", 3)},
        aria_label=f"{spec.label}: arraste o arquivo aqui ou clique para escolher",
        data_testid=f"drop-{spec.name}",
    )
    return rx.vstack(
        rx.text(spec.label, weight="bold", size="2"),
        _name_dropzone(upload, f"Escolher arquivo: {spec.label}"),
        rx.cond(
            state.infos.contains(spec.name) & state.previews.contains(spec.name) & is_image,
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
    zones = [drop_zone(tool, state, i) for i in range(len(tool.files))]
    # Two inputs sit side by side from a tablet's width up, so "Processar" stays in view on a
    # laptop (stacked, it fell below the fold while the right column stood empty).
    parts: list[rx.Component] = [
        rx.grid(
            *zones,
            columns=rx.breakpoints(initial="1", sm=str(len(zones))),
            spacing="3",
            width="100%",
            data_testid="inputs",
        )
    ]
    if has_samples(tool.name):
        parts.append(
            rx.button(
                rx.icon("sparkles"),
                "Experimente com um exemplo",
                variant="soft",
                size="2",
                on_click=state.try_sample,
                disabled=state.is_active,
                data_testid="try-sample",
                data_server_action="",
            )
        )
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
    short = SessionState.credits < tool.cost
    parts.append(
        rx.button(
            rx.icon("wand-sparkles"),
            f"Processar · {tool.cost} créditos",
            size="3",
            width="100%",
            on_click=state.submit,
            loading=state.submitting,
            disabled=~state.ready | state.submitting | state.is_active | short,
            aria_describedby=rx.cond(short, "credits-short", ""),
            data_testid="submit",
            data_server_action="",
        )
    )
    parts.append(
        rx.cond(
            short & (SessionState.user_id != ""),
            rx.callout(
                rx.text(
                    "Você tem ",
                    SessionState.credits,
                    f" créditos e este processamento custa {tool.cost}. ",
                    rx.link("O que são créditos?", href=CREDITS_ROUTE, underline="always"),
                ),
                icon="coins",
                color_scheme="amber",
                high_contrast=True,
                size="1",
                id="credits-short",
                data_testid="credits-short",
            ),
        )
    )
    return rx.card(rx.vstack(*parts, spacing="4", width="100%"), width="100%")


def timeline(state: type[ToolPageState]) -> rx.Component:
    """Na fila → Iniciando → Processando → Concluído; a job that failed or was cancelled stops
    at the step it had reached, marked ✕ (red) or cancelled (grey)."""

    def step(index: int, label: str) -> rx.Component:
        mark = state.timeline[index]
        icon = rx.match(
            mark,
            (failures.DONE, rx.icon("circle-check", size=16, color=rx.color("accent", 11))),
            (failures.CURRENT, rx.icon("circle-dot", size=16, color=rx.color("accent", 11))),
            (failures.FAILED, rx.icon("circle-x", size=16, color=rx.color("red", 11))),
            (failures.CANCELLED, rx.icon("circle-slash", size=16, color=rx.color("gray", 11))),
            rx.icon("circle", size=16, color=rx.color("gray", 9)),
        )
        color = rx.match(
            mark,
            (failures.DONE, "accent"),
            (failures.CURRENT, "accent"),
            (failures.FAILED, "red"),
            "gray",
        )
        said = rx.match(
            mark,
            (failures.DONE, "feito"),
            (failures.CURRENT, "em andamento"),
            (failures.FAILED, "falhou aqui"),
            (failures.CANCELLED, "cancelado aqui"),
            "a seguir",
        )
        return rx.cond(
            mark != failures.HIDDEN,
            rx.el.li(
                rx.hstack(
                    icon,
                    rx.text(label, size="2", color_scheme=color, weight="medium"),
                    rx.el.span(" (", said, ")", class_name="rx-sr-only", style=_SR_ONLY),
                    spacing="1",
                    align="center",
                ),
                data_testid=f"step-{index + 1}",
                data_mark=mark,
            ),
        )

    return rx.el.ol(
        *[step(i, label) for i, label in enumerate(TIMELINE)],
        aria_label="Andamento",
        data_testid="timeline",
        style={
            "display": "flex",
            "flexWrap": "wrap",
            "gap": "var(--space-4)",
            "listStyle": "none",
            "margin": 0,
            "padding": 0,
        },
    )


#: Read by screen readers, not shown.
_SR_ONLY = {
    "position": "absolute",
    "width": "1px",
    "height": "1px",
    "padding": 0,
    "margin": "-1px",
    "overflow": "hidden",
    "clip": "rect(0, 0, 0, 0)",
    "whiteSpace": "nowrap",
    "border": 0,
}


def status_panel(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.cond(state.is_active, rx.spinner(size="3")),
            rx.heading(state.status_label, size="6", data_testid="status-label"),
            rx.spacer(),
            rx.text(job_clock.elapsed(state), size="2", color_scheme="gray", data_testid="elapsed"),
            align="center",
            width="100%",
        ),
        timeline(state),
        rx.cond(
            state.is_active,
            rx.vstack(
                rx.cond(
                    state.left_s >= 0,
                    job_clock.progress_bar(
                        state,
                        width="100%",
                        aria_label="Progresso estimado",
                        data_testid="progress",
                    ),
                    # no history to estimate from: a bar that only says it is working
                    rx.progress(width="100%", aria_label="Processando", data_testid="progress"),
                ),
                rx.text(
                    job_clock.estimate(state), size="1", color_scheme="gray", data_testid="estimate"
                ),
                rx.hstack(
                    rx.button(
                        rx.icon("x"),
                        "Cancelar",
                        variant="soft",
                        color_scheme="gray",
                        on_click=state.cancel,
                        data_testid="cancel",
                        data_server_action="",
                    ),
                    notify_offer(state),
                    spacing="3",
                    wrap="wrap",
                    align="center",
                ),
                width="100%",
                spacing="3",
            ),
        ),
        rx.cond(
            state.status == JobStatus.FAILED.value,
            rx.callout.root(
                rx.callout.icon(rx.icon("circle-x")),
                rx.vstack(
                    rx.text(c.TOAST_FAILURE_DEFAULT, weight="bold", size="2"),
                    rx.text(state.failure_text, size="2", data_testid="failure-reason"),
                    rx.text(state.refund_note, size="2", weight="medium", data_testid="refund"),
                    spacing="1",
                ),
                color_scheme="red",
                role="alert",
                width="100%",
                data_testid="job-error",
            ),
        ),
        rx.cond(
            state.status == JobStatus.CANCELLED.value,
            rx.callout(
                rx.text("Você cancelou este trabalho. ", state.refund_note),
                icon="circle-slash",
                color_scheme="gray",
                width="100%",
                data_testid="job-cancelled",
            ),
        ),
        rx.cond(state.is_done, result_view(tool, state)),
        rx.cond(
            state.has_job & ~state.is_active,
            rx.hstack(
                rx.cond(
                    state.status != JobStatus.COMPLETED.value,
                    rx.button(
                        rx.icon("refresh-cw"),
                        "Tentar de novo",
                        on_click=state.retry,
                        disabled=SessionState.credits < tool.cost,
                        data_testid="retry",
                        data_server_action="",
                    ),
                ),
                rx.button(
                    rx.icon("rotate-ccw"),
                    again_label(tool.output_kind),
                    variant="outline",
                    on_click=state.start_over,
                    data_testid="start-over",
                    data_server_action="",
                ),
                spacing="3",
                wrap="wrap",
            ),
        ),
        width="100%",
        spacing="4",
    )


def notify_offer(state: type[ToolPageState]) -> rx.Component:
    """ "Avisar quando terminar": the only place the page asks for notifications (on a click,
    never on load); once answered it says what it will do."""
    return rx.match(
        state.notify,
        (
            "default",
            rx.button(
                rx.icon("bell"),
                "Avisar quando terminar",
                variant="ghost",
                size="2",
                on_click=rx.call_script(NOTIFY_ASK_JS, callback=state.set_notify),
                data_testid="notify",
            ),
        ),
        (
            "granted",
            rx.text("Você será avisado quando terminar.", size="1", color_scheme="gray"),
        ),
        rx.fragment(),
    )


def result_view(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    main = tool.files[0]
    if main.kind == "video":
        shown: rx.Component = rx.el.video(
            src=state.output_url, controls=True, width="100%", data_testid="result"
        )
    else:
        # the before/after only while this tab holds the input (its stored copy can be gone):
        # never an "Antes" that asks /_upload/undefined
        shown = rx.cond(
            state.previews.contains(main.name),
            compare_view(
                rx.get_upload_url(state.previews[main.name]),
                state.output_url,
                data_testid="result",
            ),
            rx.el.img(
                src=state.output_url,
                alt="Resultado",
                width="100%",
                border_radius="8px",
                data_testid="result",
            ),
        )
    return rx.vstack(
        shown,
        rx.text(
            ResultFacts.create(src=state.output_url, size=state.output_size),
            size="2",
            color_scheme="gray",
            data_testid="result-facts",
        ),
        rx.button(
            rx.el.a(
                rx.icon("download"),
                "Baixar resultado",
                href=state.download_url,
                download=state.download_file,
                data_testid="download",
                # Reflex renders <a> as React Router's Link, which would route the click
                # in-app; the browser itself must follow it for `download` to save the file
                custom_attrs={"reloadDocument": True},
            ),
            as_child=True,
            size="3",
        ),
        width="100%",
        spacing="3",
    )


def _send_step(tool: Tool) -> str:
    """The first step, the same on a laptop (inputs on the left) and a phone (inputs above)."""
    labels = [f"“{f.label}”" for f in tool.files]
    if len(labels) == 1:
        return f"Envie o arquivo no quadro {labels[0]}: arraste-o até lá ou clique para escolher."
    return (
        f"Envie os dois arquivos, um em cada quadro: {' e '.join(labels)} "
        "(arraste ou clique para escolher)."
    )


def intro_panel(tool: Tool) -> rx.Component:
    """What happens, step by step (the page's subtitle already says what the tool does)."""
    choose = "Escolha a escala e clique" if tool.scales else "Clique"
    return rx.vstack(
        rx.heading("Como funciona", size="4"),
        rx.el.ol(
            rx.el.li(_send_step(tool)),
            rx.el.li(
                f"{choose} em “Processar”: custa {tool.cost} créditos. ",
                rx.link("O que são créditos?", href=CREDITS_ROUTE, underline="always"),
            ),
            rx.el.li("Acompanhe aqui o andamento; pode recarregar a página sem perder nada."),
            rx.el.li("Baixe o resultado. Se algo falhar, seus créditos voltam na hora."),
            style={
                "paddingLeft": "1.5em",
                "margin": 0,
                "listStyleType": "decimal",
                "display": "grid",
                "gap": "0.5em",
            },
        ),
        spacing="3",
        data_testid="intro",
    )


def tool_page(tool: Tool, state: type[ToolPageState]) -> rx.Component:
    return rx.vstack(
        rx.vstack(rx.heading(tool.title, size="8"), rx.text(tool.promise, color_scheme="gray")),
        rx.grid(
            inputs_column(tool, state),
            rx.card(
                rx.cond(state.has_job, status_panel(tool, state), intro_panel(tool)),
                width="100%",
                id=STATUS_CARD_ID,
                data_following=rx.cond(state.is_active, "true", "false"),
                style={"scrollMarginTop": "1em"},
            ),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="5",
            width="100%",
        ),
        width="100%",
        spacing="5",
    )
