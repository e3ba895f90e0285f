"""The browser benchmark's floor (issue 9, target 6): the least a Reflex page can take from an
HTTP request to a changed element — one page showing one state var, and one bare Starlette
route that sets that var out of band for one connected tab (``app.modify_state``), nothing
else: no database, no bus, no background task.

``POST /floor/set`` with JSON ``{"token": <the tab's client token>, "value": <text>}``: 204
when pushed, 404 when no tab with that token is connected (``modify_state`` would otherwise
create a fresh state for an unknown token and push to nobody).
"""

from __future__ import annotations

import reflex as rx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The element the benchmark's MutationObserver watches.
VALUE_ID = "floor-value"


class FloorState(rx.State):
    value: str = ""


async def set_value(request: Request) -> Response:
    body = await request.json()
    token, value = str(body["token"]), str(body["value"])
    if token not in app.event_namespace.token_to_sid:  # type: ignore[union-attr]
        return Response(status_code=404)
    # modify_state yields the root state even for a substate's token (Reflex 0.10.1)
    async with app.modify_state(rx.BaseStateToken(ident=token, cls=FloorState)) as root:
        floor = await root.get_state(FloorState)
        floor.value = value
    return Response(status_code=204)


def index() -> rx.Component:
    return rx.text(FloorState.value, id=VALUE_ID)


app = rx.App(api_transformer=Starlette(routes=[Route("/floor/set", set_value, methods=["POST"])]))
app.add_page(index, route="/")
