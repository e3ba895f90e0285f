"""The operator page: counts, jobs at risk with "sync now", rescues, webhook and upstream
health, the watchdog flags, and time-to-finish by path. Technical details live here, never on
the users' pages."""

from __future__ import annotations

from typing import Any

import reflex as rx

from arcano_tools.web.admin_state import AdminState
from arcano_tools.web.texts import STATUS_LABELS

STATUSES = list(STATUS_LABELS)


def _table(headers: list[str], rows: Any, cells: Any, testid: str) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
        rx.table.body(rx.foreach(rows, lambda r: rx.table.row(*cells(r)))),
        width="100%",
        size="1",
        variant="surface",
        data_testid=testid,
    )


def _flag(label: str, on: Any) -> rx.Component:
    return rx.badge(
        label, ": ", rx.cond(on, "ligado", "desligado"), color_scheme=rx.cond(on, "green", "red")
    )


def _login() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Acesso restrito", size="5"),
            rx.text("Esta página é só para operadores. Informe a chave de serviço."),
            rx.input(
                placeholder="ARCANO_SERVICE_KEY",
                type="password",
                value=AdminState.key_input,
                on_change=AdminState.set_key_input,
                data_testid="admin-key",
                width="100%",
            ),
            rx.cond(
                AdminState.login_error != "", rx.text(AdminState.login_error, color_scheme="red")
            ),
            rx.button("Entrar", on_click=AdminState.login, data_testid="admin-login"),
            spacing="3",
        ),
        max_width="420px",
    )


def _dashboard() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            _flag("WATCHDOG_ENABLED", AdminState.watchdog_enabled),
            _flag("Watchdog do servidor", AdminState.server_watchdog_enabled),
            rx.spacer(),
            rx.button(
                rx.icon("refresh-cw"), "Atualizar", variant="soft", on_click=AdminState.refresh
            ),
            rx.button("Sair", variant="ghost", on_click=AdminState.logout),
            width="100%",
            wrap="wrap",
        ),
        rx.heading("Jobs por status", size="4"),
        _table(
            ["Ferramenta", *STATUSES],
            AdminState.status_rows,
            lambda r: [rx.table.cell(r["tool"]), *[rx.table.cell(r[s]) for s in STATUSES]],
            "status-counts",
        ),
        rx.heading("Em risco (ativos há mais que o atraso inicial)", size="4"),
        rx.cond(
            AdminState.at_risk.length() > 0,
            _table(
                ["Tabela", "Job", "Status", "Idade", "Task", ""],
                AdminState.at_risk,
                lambda r: [
                    rx.table.cell(r["table"]),
                    rx.table.cell(rx.code(r["id"])),
                    rx.table.cell(r["status"]),
                    rx.table.cell(r["age"]),
                    rx.table.cell(rx.code(r["task_id"])),
                    rx.table.cell(
                        rx.button(
                            "Sincronizar agora",
                            size="1",
                            on_click=AdminState.sync_now(r["table"], r["id"]),
                            data_testid="sync-now",
                        )
                    ),
                ],
                "at-risk",
            ),
            rx.text("Nenhum job em risco.", color_scheme="gray", data_testid="no-risk"),
        ),
        rx.heading("Resgates recentes (watchdog ou timeout, não webhook)", size="4"),
        _table(
            ["Tabela", "Job", "Status", "Por", "Quando"],
            AdminState.rescues,
            lambda r: [rx.table.cell(r[k]) for k in ("table", "id", "status", "by", "at")],
            "rescues",
        ),
        rx.heading("Falhas recentes (motivo técnico da RunningHub)", size="4"),
        _table(
            ["Tabela", "Job", "Por", "Quando", "Motivo"],
            AdminState.failures,
            lambda r: [
                *[rx.table.cell(r[k]) for k in ("table", "id", "by", "at")],
                rx.table.cell(rx.code(r["error"], white_space="pre-wrap")),
            ],
            "failures",
        ),
        rx.heading("Cópias de resultado que falharam (link da RunningHub, expira)", size="4"),
        _table(
            ["Tabela", "Job", "Quando", "Tentativas", "Motivo"],
            AdminState.failed_copies,
            lambda r: [
                *[rx.table.cell(r[k]) for k in ("table", "id", "at", "tries")],
                rx.table.cell(rx.code(r["error"], white_space="pre-wrap")),
            ],
            "failed-copies",
        ),
        rx.grid(
            rx.vstack(
                rx.heading("Saúde dos webhooks", size="4"),
                _table(
                    ["Resultado", "Quantidade"],
                    AdminState.webhook_health,
                    lambda r: [rx.table.cell(r["outcome"]), rx.table.cell(r["n"])],
                    "webhook-health",
                ),
            ),
            rx.vstack(
                rx.heading("Erros da RunningHub", size="4"),
                _table(
                    ["Endpoint", "Código", "Quantidade"],
                    AdminState.upstream_errors,
                    lambda r: [
                        rx.table.cell(r["endpoint"]),
                        rx.table.cell(r["code"]),
                        rx.table.cell(r["n"]),
                    ],
                    "upstream-errors",
                ),
            ),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="5",
            width="100%",
        ),
        rx.heading("Tempo até terminar, por caminho (mediana, s)", size="4"),
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="median_s", fill=rx.color("accent", 9)),
            rx.recharts.x_axis(data_key="path"),
            rx.recharts.y_axis(),
            rx.recharts.graphing_tooltip(),
            data=AdminState.finish_times,
            width="100%",
            height=260,
        ),
        spacing="4",
        width="100%",
    )


def admin_page() -> rx.Component:
    return rx.vstack(
        rx.heading("Operação", size="7"),
        rx.cond(AdminState.authorized, _dashboard(), _login()),
        width="100%",
        spacing="4",
    )
