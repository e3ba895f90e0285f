"""Meus trabalhos: the user's jobs, newest first, with status, time taken and the result."""

from __future__ import annotations

import reflex as rx

from arcano_tools.domain.status import JobStatus
from arcano_tools.web.state import JobsState
from arcano_tools.web.texts import STATUS_LABELS

STATUS_COLORS = {
    JobStatus.COMPLETED.value: "green",
    JobStatus.FAILED.value: "red",
    JobStatus.CANCELLED.value: "gray",
}


def _status_badge(status: rx.Var[str]) -> rx.Component:
    label = rx.match(status, *[(k, v) for k, v in STATUS_LABELS.items()], status)
    color = rx.match(status, *list(STATUS_COLORS.items()), "blue")
    return rx.badge(label, color_scheme=color)


def _row(job: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.cond(
                (job["output_url"] != "") & (job["kind"] == "image"),
                rx.image(
                    src=job["output_url"],
                    width="64px",
                    height="64px",
                    object_fit="cover",
                    border_radius="6px",
                    alt="Resultado",
                ),
                rx.icon("image", color=rx.color("gray", 8)),
            )
        ),
        rx.table.cell(rx.link(job["tool"], href=job["route"])),
        rx.table.cell(
            rx.vstack(
                _status_badge(job["status"]),
                rx.cond(job["error"] != "", rx.text(job["error"], size="1", color_scheme="red")),
                rx.cond(
                    job["refund"] != "",
                    rx.text(job["refund"], size="1", color_scheme="gray", data_testid="refund"),
                ),
                spacing="1",
                align="start",
            )
        ),
        rx.table.cell(job["created"]),
        rx.table.cell(job["took"]),
        rx.table.cell(
            rx.cond(
                job["output_url"] != "",
                rx.link(
                    rx.button(rx.icon("download"), "Baixar", size="1", variant="soft"),
                    href=job["output_url"],
                    is_external=True,
                ),
            )
        ),
        data_testid="job-row",
    )


def jobs_page() -> rx.Component:
    return rx.vstack(
        rx.heading("Meus trabalhos", size="7"),
        rx.cond(
            JobsState.jobs.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in (
                                "Resultado",
                                "Ferramenta",
                                "Status",
                                "Criado",
                                "Duração",
                                "Baixar",
                            )
                        ]
                    )
                ),
                rx.table.body(rx.foreach(JobsState.jobs, _row)),
                width="100%",
                variant="surface",
            ),
            rx.callout(
                "Você ainda não processou nada. Escolha uma ferramenta no menu.", icon="info"
            ),
        ),
        width="100%",
        spacing="4",
    )
