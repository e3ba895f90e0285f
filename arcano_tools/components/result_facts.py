"""The facts of a tool page's result ("4096×3072 px · 6,1 MB"), shown by the browser.

The resolution is read in the browser from the loaded result (``assets/result_facts.jsx``);
the size comes from the server (``ToolPageState.output_size``, pushed after the end). Before,
the browser sent the resolution to the server, which pushed it back: an event, the page
state's lock and a re-render of every component of the page, per result, for a fact the
browser already had (BENCHMARKS.md, target 6, item 8).
"""

from __future__ import annotations

import reflex as rx

#: The component's source, copied into the frontend's public folder with the other assets.
LIBRARY = "$/public/result_facts.jsx"


class ResultFacts(rx.Component):
    """The facts as plain text (style them with their parent)."""

    library = LIBRARY
    tag = "ResultFacts"
    #: The result's address: a new result is measured again.
    src: rx.Var[str]
    #: "6,1 MB", or "" while unknown.
    size: rx.Var[str]
