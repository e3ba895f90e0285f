"""Meus trabalhos: the user's jobs, newest first, live while one is active.

One card per job, laid out as a row on a laptop and stacked on a phone (a table cut its
columns there): a thumbnail (the result, or the tool's kind: a film for videos), the tool and
status (cancelled in grey — the person's choice, not an error), when and how long, and the
actions: reopen the job's before/after on its tool page, download the result.
"""

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
THUMB = "64px"


def _status_badge(status: rx.Var[str]) -> rx.Component:
    label = rx.match(status, *[(k, v) for k, v in STATUS_LABELS.items()], status)
    color = rx.match(status, *list(STATUS_COLORS.items()), "blue")
    return rx.badge(label, color_scheme=color, data_testid="job-status")


def _thumb(job: rx.Var[dict[str, str]]) -> rx.Component:
    icon_box = {
        "width": THUMB,
        "height": THUMB,
        "border_radius": "6px",
        "background": rx.color("gray", 3),
        "flex_shrink": "0",
    }
    return rx.cond(
        (job["output_url"] != "") & (job["kind"] == "image"),
        rx.image(
            src=job["output_url"],
            width=THUMB,
            height=THUMB,
            object_fit="cover",
            border_radius="6px",
            alt="Resultado",
            flex_shrink="0",
            data_testid="job-thumb",
        ),
        rx.center(
            rx.cond(
                job["kind"] == "video",
                rx.icon("film", color=rx.color("gray", 11), aria_label="Vídeo"),
                rx.icon("image", color=rx.color("gray", 11), aria_label="Imagem"),
            ),
            data_testid="job-thumb",
            data_kind=job["kind"],
            **icon_box,
        ),
    )


def _row(job: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.el.li(
        rx.card(
            rx.flex(
                _thumb(job),
                rx.vstack(
                    rx.hstack(
                        rx.text(job["tool"], weight="bold"),
                        _status_badge(job["status"]),
                        spacing="2",
                        align="center",
                        wrap="wrap",
                    ),
                    rx.text(
                        job["created"],
                        rx.cond(job["took"] != "", rx.fragment(" · ", job["took"])),
                        size="1",
                        color_scheme="gray",
                    ),
                    rx.cond(
                        job["error"] != "", rx.text(job["error"], size="1", color_scheme="red")
                    ),
                    rx.cond(
                        job["refund"] != "",
                        rx.text(job["refund"], size="1", color_scheme="gray", data_testid="refund"),
                    ),
                    spacing="1",
                    min_width="12em",
                    flex="1",
                ),
                rx.hstack(
                    rx.button(
                        rx.link(
                            rx.icon("eye"),
                            rx.cond(job["status"] == "completed", "Ver antes e depois", "Abrir"),
                            href=job["reopen"],
                            data_testid="job-reopen",
                        ),
                        as_child=True,
                        size="2",
                        variant="soft",
                    ),
                    rx.cond(
                        job["download_url"] != "",
                        rx.button(
                            rx.el.a(
                                rx.icon("download"),
                                "Baixar",
                                href=job["download_url"],
                                download=job["download_file"],
                                # a plain browser link (not React Router's): `download` works
                                custom_attrs={"reloadDocument": True},
                            ),
                            as_child=True,
                            size="2",
                            variant="soft",
                            data_testid="job-download",
                        ),
                    ),
                    spacing="2",
                    wrap="wrap",
                ),
                spacing="4",
                align="center",
                wrap="wrap",
            ),
            width="100%",
        ),
        data_testid="job-row",
        data_status=job["status"],
        data_job=job["id"],
        style={"listStyle": "none"},
    )


def jobs_page() -> rx.Component:
    return rx.vstack(
        rx.heading("Meus trabalhos", size="7"),
        rx.cond(
            JobsState.jobs.length() > 0,
            rx.el.ul(
                rx.foreach(JobsState.jobs, _row),
                aria_label="Seus trabalhos, do mais recente ao mais antigo",
                style={"display": "grid", "gap": "var(--space-3)", "padding": 0, "margin": 0},
                width="100%",
            ),
            rx.callout(
                "Você ainda não processou nada. Escolha uma ferramenta no menu.", icon="info"
            ),
        ),
        width="100%",
        spacing="4",
    )
