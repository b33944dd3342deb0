"""mkdocs hooks for the course website: MathJax served from the site itself, no CDN.

MathJax 2 comes from the ``jupyter-server-mathjax`` package (the ``site`` extra) and is
copied to ``assets/mathjax/``. Notebook pages ask for it through mkdocs-jupyter's
``custom_mathjax_url`` (a placeholder here, made relative to each page); Markdown pages
with maths (pymdownx.arithmatex) get the same script. After the build, every page is
checked to load no script, style sheet or font from the network.
"""

from __future__ import annotations

import pathlib
import re
import shutil

PLACEHOLDER = "LRKIT_LOCAL_MATHJAX"
MATHJAX = "assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# The package ships the STIX-Web fonts only (no TeX fonts): MathJax is told to use them.
_FONTS = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null,
  webFont: "STIX-Web", imageFont: null}});
</script>
"""
# Markdown pages: pymdownx.arithmatex (generic) writes \\( \\) and \\[ \\].
_MD_CONFIG = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({tex2jax: {inlineMath: [["\\\\(", "\\\\)"]],
  displayMath: [["\\\\[", "\\\\]"]], processEscapes: true}, messageStyle: "none"});
</script>
"""
# A tag that would fetch from the network when the page loads (links in text are fine).
_REMOTE = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=[\"'](https?:)?//", re.I)


def _prefix(page) -> str:
    return "../" * page.file.dest_uri.count("/")


def on_post_page(output: str, page, config) -> str:
    src = _prefix(page) + MATHJAX
    if PLACEHOLDER in output:  # a notebook page: mkdocs-jupyter wrote the script tag
        tag = f'<script src="{PLACEHOLDER}">'
        return output.replace(tag, _FONTS + f'<script src="{src}">')
    if 'class="arithmatex"' in output:
        script = _FONTS + _MD_CONFIG + f'<script src="{src}"></script>\n'
        return output.replace("</body>", script + "</body>", 1)
    return output


def on_post_build(config) -> None:
    import jupyter_server_mathjax

    static = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    dest = pathlib.Path(config["site_dir"]) / "assets" / "mathjax"
    shutil.copytree(static, dest, dirs_exist_ok=True)
    remote = []
    for page in pathlib.Path(config["site_dir"]).rglob("*.html"):
        for m in _REMOTE.finditer(page.read_text(encoding="utf-8", errors="replace")):
            remote.append(f"{page}: {m.group(0)}")
    if remote:
        raise SystemExit("pages that load from the network:\n" + "\n".join(remote[:20]))
