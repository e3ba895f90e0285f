"""The committed sample files: present, small, and accepted by the tools' own upload checks."""

from __future__ import annotations

from arcano_tools.domain.tools import DEFAULT_TOOLS
from arcano_tools.services.uploads import Upload, check_file
from arcano_tools.web.samples import ASSETS, HOME_AFTER, HOME_BEFORE, SAMPLES, sample_files

#: A sample must stay a small file in the repository.
MAX_SAMPLE_BYTES = 64 * 1024


def test_every_image_tool_has_samples_its_own_checks_accept() -> None:
    for tool in DEFAULT_TOOLS:
        files = sample_files(tool.name)
        if tool.output_kind == "video":
            assert files == []
            continue
        assert len(files) == len(tool.files), tool.name
        for spec, (name, content) in zip(tool.files, files, strict=True):
            assert len(content) <= MAX_SAMPLE_BYTES, name
            checked = check_file(spec, Upload(name, content))
            assert checked.width, name
            assert checked.height, name
    assert set(SAMPLES) <= {t.name for t in DEFAULT_TOOLS}


def test_the_home_pages_pair_is_the_same_picture_four_times_larger() -> None:
    from PIL import Image

    with (
        Image.open(ASSETS / HOME_BEFORE.lstrip("/")) as before,
        Image.open(ASSETS / HOME_AFTER.lstrip("/")) as after,
    ):
        assert after.size == (before.width * 4, before.height * 4)
    assert (ASSETS / HOME_AFTER.lstrip("/")).stat().st_size <= MAX_SAMPLE_BYTES
