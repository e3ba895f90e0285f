"""Créditos: what a crédito is, what each tool costs, and where they come from."""

from __future__ import annotations

import reflex as rx

from arcano_tools.domain.tools import DEFAULT_TOOLS
from arcano_tools.web.state import SessionState


def _price_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                rx.table.column_header_cell("Ferramenta"),
                rx.table.column_header_cell("Custo por processamento"),
            )
        ),
        rx.table.body(
            *[
                rx.table.row(
                    rx.table.row_header_cell(rx.link(t.title, href=t.route)),
                    rx.table.cell(f"{t.cost} créditos"),
                )
                for t in DEFAULT_TOOLS
            ]
        ),
        variant="surface",
        width="100%",
        max_width="560px",
        data_testid="prices",
    )


def credits_page() -> rx.Component:
    return rx.vstack(
        rx.heading("Créditos", size="8"),
        rx.text(
            "Você tem ",
            rx.text.strong(SessionState.credits, " créditos"),
            ".",
            size="4",
            data_testid="credits-balance",
        ),
        rx.heading("O que é um crédito", size="5"),
        rx.text(
            "Crédito é a moeda das ferramentas: cada processamento usa um tempo de GPU no serviço "
            "de IA, e cada ferramenta custa alguns créditos por vez. Eles são descontados quando "
            "você clica em “Processar”."
        ),
        _price_table(),
        rx.heading("Se algo der errado", size="5"),
        rx.text(
            "Se o processamento falhar, ou se você cancelar antes do fim, os créditos voltam na "
            "hora, automaticamente — você só paga pelo que recebeu. O histórico fica em ",
            rx.link("Meus trabalhos", href="/meus-trabalhos", underline="always"),
            ".",
        ),
        rx.heading("Como conseguir créditos", size="5"),
        rx.cond(
            SessionState.demo,
            rx.callout(
                "Esta é uma demonstração: cada navegador ganha 100 créditos de teste para "
                "experimentar as ferramentas. Eles não valem dinheiro e não há pagamento aqui. "
                "Acabaram? Abra o site numa janela anônima para recomeçar com novos créditos.",
                icon="flask-conical",
                color_scheme="amber",
                high_contrast=True,
                data_testid="credits-demo",
            ),
            rx.text(
                "A compra de créditos ainda não está disponível no site. Fale com a equipe "
                "Arcano para receber mais créditos na sua conta."
            ),
        ),
        spacing="4",
        width="100%",
        align="start",
    )
