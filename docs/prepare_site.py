"""Lay out the course website's sources in build/site-src/ for mkdocs (see mkdocs.yml).

The course page (notebooks/README.md) becomes the front page; every lesson and solutions
notebook is executed, by default in smoke mode (the environment variable CI set: small
sizes, seconds per lesson), so the pages show the figures and printed numbers. A notebook
already executed and newer than its source and than lrkit's code is not run again.

Widgets need a running kernel, which a web page does not have: each widget output is
replaced by a short note, and the widget state is dropped, so the pages load no script
from the network.

    python docs/prepare_site.py [--full] [--out build/site-src]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    '<div class="admonition note"><p class="admonition-title">Interactive widget</p>'
    "<p>A slider stands here when the notebook runs in JupyterLab (<code>make lab</code>): "
    "it needs a running kernel, which this page does not have. The lesson also draws the "
    "views it shows as static figures, next to it.</p></div>"
)


def _newest_mtime(paths) -> float:
    return max((p.stat().st_mtime for p in paths), default=0.0)


def _strip_widgets(nb) -> int:
    """Replace widget outputs by a note and drop the saved widget state; return the count."""
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                out["data"] = {"text/html": WIDGET_NOTE}
                n += 1
    nb.metadata.pop("widgets", None)
    return n


def execute(src: pathlib.Path, dst: pathlib.Path, *, timeout: int) -> None:
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(src.parent)}},  # run where the lesson lives
    )
    client.execute()
    n = _strip_widgets(nb)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    if n:
        print(f"  {n} widget output(s) replaced by a note", flush=True)


def front_page(src: pathlib.Path, dst: pathlib.Path) -> None:
    """The course page, word for word; only the link to the solutions folder points to
    the folder's index page, which mkdocs needs."""
    text = src.read_text(encoding="utf-8")
    dst.write_text(text.replace("](solutions/)", "](solutions/index.md)"), encoding="utf-8")


def solutions_index(notebooks, dst: pathlib.Path) -> None:
    lines = ["# Worked solutions", "", "One notebook per lesson, kept apart from the lessons.", ""]
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        title = nb_path.stem
        for cell in nb.cells:
            m = cell.cell_type == "markdown" and re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                title = m.group(1).strip()
                break
        lines.append(f"- [{title}]({nb_path.name})")
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "site-src"))
    ap.add_argument("--full", action="store_true", help="full size (default: smoke mode)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    if args.full:
        os.environ.pop("CI", None)
    else:
        os.environ["CI"] = "1"
    mode = "full" if args.full else "smoke"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

    nb_dir = ROOT / "notebooks"
    lessons = sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))
    solutions = sorted((nb_dir / "solutions").glob("[0-9][0-9]_*.ipynb"))
    code_mtime = _newest_mtime((ROOT / "lrkit").rglob("*.py"))

    out.mkdir(parents=True, exist_ok=True)
    (out / "solutions").mkdir(exist_ok=True)
    front_page(nb_dir / "README.md", out / "index.md")
    solutions_index(solutions, out / "solutions" / "index.md")
    # The mode the outputs were made in: switching modes runs everything again.
    stamp = out / ".mode"
    same_mode = stamp.exists() and stamp.read_text() == mode
    wanted = {out / p.relative_to(nb_dir) for p in [*lessons, *solutions]}
    for old in out.rglob("*.ipynb"):  # a notebook removed from the course leaves the site
        if old not in wanted:
            old.unlink()

    t_all = time.perf_counter()
    for src in [*lessons, *solutions]:
        dst = out / src.relative_to(nb_dir)
        fresh = (
            same_mode
            and dst.exists()
            and dst.stat().st_mtime > max(src.stat().st_mtime, code_mtime)
        )
        if fresh:
            print(f"up to date: {dst.relative_to(out)}", flush=True)
            continue
        print(f"executing ({mode}): {src.relative_to(ROOT)}", flush=True)
        t0 = time.perf_counter()
        execute(src, dst, timeout=args.timeout)
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    stamp.write_text(mode)
    print(f"site sources in {out} ({time.perf_counter() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
