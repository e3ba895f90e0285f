"""The sample files each tool page offers ("Experimente com um exemplo").

Drawn by the project (``scripts/make_samples.py``) and committed in ``assets/samples/``, so a
first visitor can try a tool in one click without a photo of their own. The Video Upscaler has
none: Pillow cannot write a video and the project ships no encoder (its page says nothing).
"""

from __future__ import annotations

from pathlib import Path

#: ``assets/`` at the project root: Reflex serves it at ``/`` and the backend reads it here.
ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLES_DIR = ASSETS / "samples"
SAMPLES_ROUTE = "/samples"
#: Tool name → the file for each of its inputs, in the tool's input order.
SAMPLES: dict[str, tuple[str, ...]] = {
    "upscaler": ("paisagem.png",),
    "pose_changer": ("pessoa.png", "pose.png"),
    "veste_ai": ("pessoa.png", "roupa.png"),
}
#: The home page's before/after: the landscape small, and drawn again at 4×.
HOME_BEFORE = f"{SAMPLES_ROUTE}/paisagem.png"
HOME_AFTER = f"{SAMPLES_ROUTE}/paisagem-4x.jpg"


def has_samples(tool: str) -> bool:
    return tool in SAMPLES


def sample_files(tool: str) -> list[tuple[str, bytes]]:
    """``(file name, content)`` for each input of ``tool``; empty when it has no samples."""
    return [(name, (SAMPLES_DIR / name).read_bytes()) for name in SAMPLES.get(tool, ())]
