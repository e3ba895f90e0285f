"""The shell every page shares: navigation, the user's credit balance, light/dark switch."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from arcano_tools.domain.tools import DEFAULT_TOOLS
from arcano_tools.web.state import SessionState
from arcano_tools.web.texts import CREDITS_ROUTE, DEMO_BANNER, SIGN_IN_ROUTE

JOBS_ROUTE = "/meus-trabalhos"
ADMIN_ROUTE = "/admin"


def _nav_link(text: str, href: str) -> rx.Component:
    return rx.link(text, href=href, size="2", weight="medium", underline="hover")


def _menu(**props: object) -> rx.Component:
    """The site's menu: the tools, the user's jobs, what credits are."""
    return rx.el.nav(
        rx.hstack(
            *[_nav_link(t.title, t.route) for t in DEFAULT_TOOLS],
            _nav_link("Meus trabalhos", JOBS_ROUTE),
            _nav_link("Créditos", CREDITS_ROUTE),
            spacing="4",
            wrap="wrap",
            align="center",
        ),
        aria_label="Menu principal",
        **props,
    )


def _account_entry() -> rx.Component:
    """ "Entrar" or "Sair", when Supabase Auth is configured (nothing otherwise)."""
    return rx.cond(
        SessionState.sign_in_enabled,
        rx.cond(
            SessionState.user_id != "",
            rx.button(
                "Sair",
                on_click=SessionState.sign_out,
                size="2",
                variant="soft",
                color_scheme="gray",
                data_testid="sign-out",
            ),
            rx.link(
                "Entrar", href=SIGN_IN_ROUTE, size="2", weight="medium", data_testid="sign-in-link"
            ),
        ),
    )


def navbar() -> rx.Component:
    return rx.el.div(
        rx.hstack(
            rx.link(
                rx.hstack(rx.icon("sparkles", size=20), rx.heading("Arcano Tools", size="5")),
                href="/",
                underline="none",
                color_scheme="gray",
                high_contrast=True,
            ),
            # wide screens: the menu beside the name; phones: on its own line below
            _menu(display=["none", "none", "block"]),
            rx.spacer(),
            rx.link(
                rx.badge(
                    rx.icon("coins", size=14),
                    rx.text(SessionState.credits, " créditos", id="credits"),
                    size="2",
                    variant="soft",
                    radius="full",
                ),
                href=CREDITS_ROUTE,
                underline="none",
                title="O que são créditos?",
                data_testid="credits-badge",
            ),
            _account_entry(),
            rx.color_mode.button(
                size="2", variant="ghost", aria_label="Alternar tema claro/escuro"
            ),
            align="center",
            spacing="4",
            width="100%",
        ),
        _menu(display=["block", "block", "none"], padding_top="0.5em"),
        style={
            "paddingInline": "1.5em",
            "paddingBlock": "0.9em",
            "borderBottom": f"1px solid {rx.color('gray', 5)}",
            "width": "100%",
        },
    )


def demo_banner() -> rx.Component:
    """Shown on every page while the built-in RunningHub emulator runs the jobs."""
    return rx.cond(
        SessionState.demo,
        rx.callout(
            DEMO_BANNER,
            icon="flask-conical",
            color_scheme="amber",
            size="1",
            width="100%",
            border_radius="0",
            high_contrast=True,
            data_testid="demo-banner",
        ),
    )


def page_shell(*children: rx.Component) -> rx.Component:
    return rx.box(
        rx.el.header(demo_banner(), navbar()),
        rx.el.main(
            rx.container(
                rx.vstack(*children, spacing="5", width="100%"), size="4", padding_y="2em"
            ),
        ),
        min_height="100vh",
    )


def with_shell(page: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
    """Wrap a page function in the shared shell."""

    def wrapped() -> rx.Component:
        return page_shell(page())

    wrapped.__name__ = page.__name__
    return wrapped
