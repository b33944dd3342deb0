"""Lesson 01's rank slider, used the way a learner uses it: in JupyterLab, in Chromium.

Starts JupyterLab on 127.0.0.1 (a free port, a random token) on a copy of lesson 01, opens
it in headless Chromium (playwright driving the system's Chromium: no browser download),
runs all cells from the Run menu, then drags the rank slider and types a rank into its
readout, and checks each time that the figure below the slider is redrawn (its PNG
changes) and that no cell shows an error. Screenshots go to build/browser/.

Run with `make browser-check`; needs the `site` extra (playwright) and Chromium
(`apt-get install chromium` on Debian, or CHROMIUM=/path/to/chrome).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LESSON = "01_svd_image_compression.ipynb"
ARTEFACTS = ROOT / "build" / "browser"
# Generous bounds for a loaded 2-core machine; a healthy run takes a fraction of each.
SERVER_START_S = 90
RUN_ALL_S = 300
REDRAW_S = 60


def _chromium() -> str:
    for cand in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and (path := shutil.which(cand)):
            return path
    pytest.fail("no Chromium found: apt-get install chromium, or set CHROMIUM=/path/to/chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, body: dict | None = None) -> dict:
    """GET (or POST ``body`` to) JupyterLab's REST API; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{base}/api/{path}?token={token}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of lesson 01; yields (base url, token)."""
    tmp = tmp_path_factory.mktemp("lab")
    (tmp / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / LESSON, tmp / "notebooks" / LESSON)
    (tmp / "datasets").symlink_to(ROOT / "datasets")  # the lessons' relative data paths
    # No news fetched from the network (and no pop-up asking to); the notebook's kernel
    # starts without a "Select Kernel" dialog.
    settings = tmp / "settings" / "@jupyterlab"
    for ext, name, value in [
        ("apputils-extension", "notification", '{"fetchNews": "false"}'),
        # every cell in the page, wherever the notebook has scrolled after Run All
        (
            "notebook-extension",
            "tracker",
            '{"autoStartDefaultKernel": true, "windowingMode": "none"}',
        ),
    ]:
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(value)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        CI="1",  # the lesson's smoke mode: half-size photo, seconds to run
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_DATA_DIR=str(tmp / "data"),  # e.g. the notebook-signing key
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={tmp / 'notebooks'}",
    ]  # fmt: skip
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; see {tmp / 'jupyterlab.log'}")
                time.sleep(0.5)
        # Start the notebook's kernel before the page opens, as a learner's running session
        # would be: the page attaches to it instead of racing its own start against the
        # first clicks (the page then waits until it reports idle).
        _api(base, token, "sessions", {
            "path": LESSON, "type": "notebook", "name": LESSON, "kernel": {"name": "python3"},
        })  # fmt: skip
        yield base, token
    finally:
        server.send_signal(signal.SIGINT)  # the server shuts its kernels down
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / "jupyterlab.log", ARTEFACTS / "jupyterlab.log")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[site]'")
    args = ["--no-sandbox"] if hasattr(os, "getuid") and os.getuid() == 0 else []
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(lab, browser):
    base, token = lab
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{base}/lab/tree/{LESSON}?token={token}&reset")
    pg.errors = errors
    yield pg
    pg.close()


def _until(page, ready, seconds: float, what: str) -> None:
    """Poll ``ready()``; accept the kernel dialog JupyterLab may show ("Select Kernel")."""
    deadline = time.monotonic() + seconds
    dialog = page.locator(".jp-Dialog button.jp-mod-accept")
    while not ready():
        if dialog.count():
            dialog.first.click()
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.5)


def _figure_src(widget) -> str:
    """The PNG (data URL) of the figure the slider's Output widget shows."""
    img = widget.locator(".jp-OutputArea-output img").first
    img.wait_for(state="attached", timeout=REDRAW_S * 1000)
    return img.get_attribute("src")


def _wait_redraw(widget, old: str) -> str:
    deadline = time.monotonic() + REDRAW_S
    while time.monotonic() < deadline:
        try:
            src = _figure_src(widget)
        except Exception:  # the Output is cleared while it redraws
            src = old
        if src != old:
            return src
        time.sleep(0.2)
    raise AssertionError(f"the figure was not redrawn within {REDRAW_S} s")


def test_rank_slider_redraws_the_figure(page):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    try:
        _check_rank_slider(page)
    except BaseException:
        page.screenshot(path=str(ARTEFACTS / "lesson01_failure.png"))
        raise


def _check_rank_slider(page):
    t0 = time.monotonic()
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=SERVER_START_S * 1000)
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    dialog = page.locator(".jp-Dialog")
    _until(
        page,
        lambda: idle.count() > 0 and not dialog.count(),
        SERVER_START_S,
        "the kernel to start",
    )
    # Run -> Run All Cells, the learner's way; again if no cell has started after a while
    # (a click that lands while the kernel is still connecting does nothing).
    started = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            _until(page, lambda: started.count() > 0, 20, "a cell to start")
            break
        except AssertionError:
            page.keyboard.press("Escape")
            if attempt == 2:
                raise

    # The rank slider: the one whose label reads "rank", inside lrkit's VBox.
    widget = (
        page.locator(".widget-vbox")
        .filter(has=page.locator(".widget-label", has_text="rank"))
        .first
    )
    # Every cell done: the slider is there, no prompt shows [*] and the kernel is idle.
    busy = page.locator(".jp-InputPrompt", has_text="[*]")
    _until(
        page,
        lambda: widget.count() > 0 and busy.count() == 0 and idle.count() > 0,
        RUN_ALL_S,
        "Run All Cells to finish",
    )
    ran_s = time.monotonic() - t0
    widget.scroll_into_view_if_needed()
    before = _figure_src(widget)
    widget.screenshot(path=str(ARTEFACTS / "lesson01_slider_before.png"))
    readout = widget.locator(".widget-readout").first
    rank0 = int(readout.inner_text())

    # 1. Drag the handle a quarter of the track to the right.
    track = widget.locator(".widget-hslider .noUi-target").first.bounding_box()
    knob = widget.locator(".noUi-handle").first
    handle = knob.bounding_box()
    # Wide enough to drag to one rank: at least 2 px per step (the default ~125 px track
    # gives 0.5 px per rank to the full-size lesson's 256 ranks).
    lo, hi = float(knob.get_attribute("aria-valuemin")), float(knob.get_attribute("aria-valuemax"))
    px_per_rank = track["width"] / (hi - lo)
    assert px_per_rank >= 2, f"the track gives {px_per_rank:.2f} px per rank (1 to {hi:.0f})"
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(min(hx + track["width"] / 4, track["x"] + track["width"] - 2), hy, steps=8)
    page.mouse.up()
    after_drag = _wait_redraw(widget, before)
    rank1 = int(readout.inner_text())
    assert rank1 > rank0, f"dragging right moved the rank from {rank0} to {rank1}"
    widget.screenshot(path=str(ARTEFACTS / "lesson01_slider_dragged.png"))

    # 2. Type a rank into the readout.
    typed = 2 if rank1 != 2 else 3
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(typed))
    page.keyboard.press("Enter")
    after_type = _wait_redraw(widget, after_drag)
    assert int(readout.inner_text()) == typed
    assert after_type not in (before, after_drag)
    widget.screenshot(path=str(ARTEFACTS / "lesson01_slider_typed.png"))
    page.screenshot(path=str(ARTEFACTS / "lesson01_page.png"), full_page=False)

    # No cell shows a traceback or a widget that failed to render; no script error.
    text = page.locator(".jp-Notebook").inner_text()
    for bad in ("Traceback", "Error displaying widget"):
        assert bad not in text, f"the notebook shows {bad!r}"
    assert not page.errors, f"JavaScript errors: {page.errors}"
    print(
        f"run all: {ran_s:.0f} s; track {track['width']:.0f} px, {px_per_rank:.1f} px per rank; "
        f"ranks {rank0} -> {rank1} (drag) -> {typed} (typed)"
    )


@pytest.mark.parametrize("name", ["index.html", "01_svd_image_compression.html"])
def test_site_renders_maths_with_the_network_cut(browser, name):
    """The site built by `make html`, opened from disk with every network request refused:
    MathJax (served from the site) typesets the maths."""
    path = ROOT / "build" / "html" / name
    if not path.exists():
        pytest.skip("no site built: run `make html` first")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    remote: list[str] = []

    def only_local(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    pg.route("**/*", only_local)
    try:
        pg.goto(path.as_uri())
        pg.wait_for_function(
            "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0"
            " && document.querySelectorAll('.MathJax').length > 0",
            timeout=REDRAW_S * 1000,
        )
        n = pg.locator(".MathJax").count()
        pg.screenshot(path=str(ARTEFACTS / f"site_{path.stem}.png"))
        assert not pg.locator(".MathJax_Error, merror").count(), "MathJax reports an error"
    finally:
        pg.close()
    assert not remote, f"the page asked the network for {remote}"
    print(f"{name}: {n} formulas typeset offline")
