"""Pages a creator would recommend: what a person reads and can do, in a real browser.

Brazilian Portuguese only, on a laptop (1280×800) and a phone (390×844): a failure explained
in plain words with the refund and a way to try again, a timeline that never claims "Concluído"
for a job that did not finish, a Video Upscaler that speaks of videos, an empty balance that
disables "Processar" and says why, a Portuguese 404 inside the menu, and no critical or serious
axe-core violation. Screenshots of every state land in ``tests/e2e/artifacts/`` at both widths.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arcano_tools import constants as c
from tests.support.app_driver import LAPTOP, SERVICE_KEY, AppDriver, photo
from tests.support.tools import tool_cost
from tests.support.waiting import wait_for_async

pytestmark = pytest.mark.e2e

#: A QuickTime movie as an iPhone writes it: an ISO-BMFF ``ftyp`` box of brand ``qt  ``.
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + b"\x00" * 4096


async def mark(on: AppDriver, step: int) -> str | None:
    """How timeline step ``step`` (1 Na fila … 4 Concluído) is drawn; None when not shown."""
    node = on.page.get_by_test_id(f"step-{step}")
    return await node.get_attribute("data-mark") if await node.count() else None


async def test_a_failure_is_explained_refunded_and_retried_and_a_cancel_stops_in_grey(
    on: AppDriver,
) -> None:
    """Points 1 and 2: the GPU's English never reaches the user's pages (it stays in the API and
    on /admin); the timeline stops where the job ended; "Tentar de novo" sends the same inputs."""
    await on.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
    await on.emulator(outcome="fail")
    await on.open_tool()
    start_credits = await on.credits()
    cost = tool_cost("upscaler")

    job_id = await on.submit_image()
    toast = on.page.locator("[data-sonner-toast]").filter(has_text=c.TOAST_FAILURE_DEFAULT)
    await toast.wait_for()
    box = on.page.get_by_test_id("job-error")
    await box.wait_for()
    await on.shots("failed")

    refund = f"Seus {cost} créditos foram devolvidos."
    for where in (toast, box):
        said = await where.inner_text()
        assert "A imagem era grande demais para a GPU" in said, said
        assert refund in said, said
    assert "Tentar de novo" in await toast.inner_text()
    await on.page.get_by_test_id("retry").wait_for()
    assert "CUDA" not in await on.page.locator("body").inner_text()
    # the plan's contract: RunningHub's own text stays in the job (API and /admin)
    job = await on.job(job_id)
    assert job["status"] == "failed"
    assert job["errorMessage"].startswith("CUDA out of memory")
    assert await on.credits() == start_credits
    # the task had started on RunningHub: ✕ on "Processando", no "Concluído"
    assert [await mark(on, s) for s in (1, 2, 3, 4)] == ["done", "done", "failed", None]

    # "Tentar de novo" (the toast's action): the same photo, a new job
    await on.emulator(outcome="never")
    await toast.get_by_role("button", name="Tentar de novo").click()

    async def retried() -> bool:
        return len(await on.my_jobs()) == 2 and await mark(on, 3) == "current"

    await wait_for_async(retried, timeout=15, what="the retried job to be processing")
    assert await on.page.get_by_role("progressbar", name="Progresso estimado").count() == 1
    assert await on.blocking_a11y_violations() == []  # the tool page while processing

    await on.page.get_by_test_id("cancel").click()
    cancelled = on.page.get_by_test_id("job-cancelled")
    await cancelled.wait_for()
    assert refund in await cancelled.inner_text()
    assert [await mark(on, s) for s in (1, 2, 3, 4)] == ["done", "done", "cancelled", None]
    await on.shots("cancelled")
    assert await on.credits() == start_credits

    # "Meus trabalhos": the same plain words, and the refund of each
    await on.page.goto(on.app.url + "/meus-trabalhos")
    rows = on.page.get_by_test_id("job-row")
    await rows.nth(1).wait_for()
    table = await on.page.locator("main").inner_text()
    assert "A imagem era grande demais para a GPU" in table
    assert table.count(refund) == 2
    assert "CUDA" not in table
    await on.shots("meus-trabalhos-failed")

    # the operator still reads RunningHub's reason
    await on.page.goto(on.app.url + "/admin")
    await on.page.get_by_test_id("admin-key").fill(SERVICE_KEY)
    await on.page.get_by_test_id("admin-login").click()
    failures = on.page.get_by_test_id("failures")
    await failures.get_by_text(job_id[:8]).wait_for()
    assert "CUDA out of memory" in await failures.inner_text()


async def test_the_video_upscaler_speaks_of_videos(on: AppDriver, tmp_path: Path) -> None:
    """Point 7: limits shown = limits enforced, MOV listed and taken, the file named."""
    await on.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
    await on.open_tool("/video-upscaler")
    zone = on.page.get_by_test_id("drop-video")
    limit_mb = c.MAX_UPLOAD_BYTES // (1024 * 1024)
    assert f"MP4, MOV ou WEBM até {limit_mb} MB" in await zone.inner_text()

    # over the limit: refused in the browser, with the video's limit (not the images')
    big = tmp_path / "viagem.mp4"
    big.write_bytes(MOV[:24] + b"\0" * (c.MAX_UPLOAD_BYTES + 5 * 1024 * 1024))
    await on.upload_path("video", big)
    error = on.page.get_by_test_id("error-video")
    await error.wait_for()
    assert await error.inner_text() == (
        f"Arquivo grande demais: o limite é {limit_mb} MB para vídeos."
    )

    clip = tmp_path / "praia.mov"
    clip.write_bytes(MOV)
    await on.upload_path("video", clip)
    await on.page.get_by_test_id("file-video").filter(has_text="praia.mov · 4 KB").wait_for()
    assert await on.page.get_by_test_id("error-video").count() == 0
    await on.shots("video-ready")

    await on.page.get_by_test_id("submit").click()
    await on.page.get_by_text("Vídeo processado com sucesso!").wait_for()
    await on.page.get_by_test_id("result").wait_for()
    await on.page.get_by_role("button", name="Processar outro vídeo").wait_for()
    body = await on.page.locator("body").inner_text()
    assert "imagem" not in body.lower(), body
    await on.shots("video-done")


async def test_without_enough_credits_processar_is_disabled_and_says_why(on: AppDriver) -> None:
    """Point 8: the button says why it cannot be used; /creditos says what a crédito is."""
    await on.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
    await on.open_tool()
    token = await on.token()
    # spend the demo's credits on Video Upscaler jobs (through the API, as the same user)
    video = {"video": ("clip.mov", MOV, "video/quicktime")}
    while (have := await on.credits()) >= tool_cost("video_upscaler"):
        r = await on.http.post(
            "/api/jobs",
            headers={"Authorization": f"Bearer {token}"},
            data={"tool": "video_upscaler", "scale": "2"},
            files=video,
        )
        assert r.status_code == 201, r.text
    assert have < tool_cost("upscaler")

    await on.open_tool(credits=have)
    await on.upload("image", "foto.png", photo())
    await on.page.get_by_text("320×240 px").wait_for()
    submit = on.page.get_by_test_id("submit")
    assert await submit.is_disabled()
    reason = on.page.get_by_test_id("credits-short")
    assert await reason.inner_text() == (
        f"Você tem {have} créditos e este processamento custa {tool_cost('upscaler')}. "
        "O que são créditos?"
    )
    assert await submit.get_attribute("aria-describedby") == "credits-short"
    await on.shots("upscaler-no-credits")

    await reason.get_by_role("link", name="O que são créditos?").click()
    await on.page.get_by_role("heading", name="O que é um crédito").wait_for()
    page = await on.page.locator("main").inner_text()
    assert "créditos de teste" in page
    assert "não há pagamento" in page
    for name in ("upscaler", "video_upscaler"):
        assert f"{tool_cost(name)} créditos" in page
    # the balance in the menu leads here too
    assert await on.page.get_by_test_id("credits-badge").get_attribute("href") == "/creditos"
    await on.shots("creditos")

    async def all_done() -> bool:  # leave the account's slots free for the next test
        return all(j["status"] == "completed" for j in await on.my_jobs())

    await wait_for_async(all_done, timeout=30, what="the video jobs to finish")


async def test_an_unknown_address_is_a_portuguese_page_inside_the_menu(on: AppDriver) -> None:
    """Point 11, and the page's language for screen readers and translators."""
    await on.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
    response = await on.page.goto(on.app.url + "/nao-existe")
    assert response is not None
    await on.page.get_by_role("heading", name="Página não encontrada").wait_for()
    assert await on.page.get_attribute("html", "lang") == "pt-BR"
    assert await on.page.title() == "Página não encontrada · Arcano Tools"
    assert await on.page.get_by_text("Page not found").count() == 0
    nav = on.page.get_by_role("navigation", name="Menu principal")
    await nav.get_by_role("link", name="Upscaler", exact=True).wait_for()
    await on.shots("404")
    await on.page.set_viewport_size({"width": 390, "height": 844})
    await nav.get_by_role("link", name="Meus trabalhos").wait_for()  # the phone's menu
    await on.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]


async def test_home_and_a_tool_page_have_no_serious_accessibility_problem(on: AppDriver) -> None:
    """Point 15 (axe-core, critical and serious) and point 16 (the words of the intro)."""
    await on.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
    await on.page.goto(on.app.url + "/")
    await on.session_ready()
    assert await on.blocking_a11y_violations() == []
    await on.shots("home")
    # the five found by hand, named as a screen reader names them
    await on.page.get_by_role("main").wait_for()
    await on.page.get_by_role("navigation", name="Menu principal").wait_for()
    await on.page.get_by_role("button", name="Alternar tema claro/escuro").wait_for()

    await on.open_tool("/pose-changer")
    intro = await on.page.get_by_test_id("intro").inner_text()
    assert "à esquerda" not in intro
    assert "Envie os dois arquivos, um em cada quadro" in intro
    promise = "Coloque a pessoa da foto na pose que você escolher."
    assert (await on.page.locator("main").inner_text()).count(promise) == 1
    assert await on.page.get_by_label("Escolher arquivo: Pose de referência").count() == 1
    assert await on.blocking_a11y_violations() == []
    await on.shots("pose-changer-empty")

    await on.open_tool()
    intro = await on.page.get_by_test_id("intro").inner_text()
    assert "Envie o arquivo no quadro “Sua foto”" in intro
    await on.submit_image()
    await on.page.get_by_test_id("result").wait_for()
    assert await on.blocking_a11y_violations() == []
    await on.shots("upscaler-done")
    await on.page.get_by_role("button", name="Processar outra imagem").wait_for()
