"""Build the course's text corpus from CPython's standard library source (PSF License).

    python datasets/pystdlib/build_corpus.py /path/to/lib/python3.11

Takes every ``.py`` file under that directory, except those under ``test``, ``tests``,
``idle_test`` and ``site-packages``, in sorted path order. Each file becomes one document:

    # file: <relative path>\n<source text>\n

Split rule (fixed, by path, so every file lands in one part whatever else changes):
``zlib.crc32(path) % 20 == 0`` -> held-out, ``== 1`` -> calibration, else -> train. Each part
is written as UTF-8 text compressed with xz (preset 9 | extreme), with ``manifest.json``
listing the files of each part, the source version and the SHA-256 of each part's text.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
import zlib
from pathlib import Path

EXCLUDE = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
PARTS = ("train", "heldout", "calibration")


def part_of(rel: str) -> str:
    r = zlib.crc32(rel.encode()) % 20
    return "heldout" if r == 0 else "calibration" if r == 1 else "train"


def main(src: str) -> None:
    root = Path(src)
    out = Path(__file__).resolve().parent
    files = sorted(
        p for p in root.rglob("*.py") if not EXCLUDE.intersection(p.relative_to(root).parts)
    )
    texts = {name: [] for name in PARTS}
    listing = {name: [] for name in PARTS}
    for p in files:
        rel = p.relative_to(root).as_posix()
        text = p.read_bytes().decode("utf-8", errors="replace")
        part = part_of(rel)
        texts[part].append(f"# file: {rel}\n{text}\n")
        listing[part].append(rel)
    manifest = {"source": "lib/python" + ".".join(sys.version.split(".")[:2]), "python": sys.version.split()[0], "parts": {}}
    for name in PARTS:
        data = "".join(texts[name]).encode("utf-8")
        (out / f"{name}.txt.xz").write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
        manifest["parts"][name] = {
            "files": listing[name],
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        print(f"{name}: {len(listing[name])} files, {len(data):,} bytes")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
