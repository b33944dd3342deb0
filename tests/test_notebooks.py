"""The course's notebooks are stored the way DESIGN.md says: numbered, clean, smoke-aware,
and speaking to learners (no development history in their prose). Executing them is
nbval's job (`make test` runs every notebook)."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# words and phrases that belong to how a lesson was developed, not to the lesson
DEVELOPMENT = re.compile(
    r"\b(issue|TODO|FIXME|XXX|reviewer|pull request|earlier version|previous version|"
    r"while writing|motivated this (notebook|lesson))s?\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_speaks_to_learners(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name)
    cells = json.loads(path.read_text())["cells"]
    for i, cell in enumerate(cells):
        assert not cell.get("outputs"), f"cell {i} is stored with outputs"
        assert cell.get("execution_count") is None, f"cell {i} keeps an execution count"
        if cell["cell_type"] == "markdown":
            found = DEVELOPMENT.search("".join(cell["source"]))
            assert found is None, f"cell {i} mentions {found.group(0)!r}"
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "SMOKE" in "".join(first_code["source"]), "the first code cell sets SMOKE"
