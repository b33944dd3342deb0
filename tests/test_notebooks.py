"""The course's notebooks are stored the way DESIGN.md says: numbered, clean, smoke-aware,
and speaking to learners (no development history in their prose). Executing them is
nbval's job: `make test` runs pytest on the whole `notebooks/` folder, so every lesson and
every worked-solutions notebook in `notebooks/solutions/` is executed in smoke mode."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
# Lessons with exercises whose worked solutions are not in notebooks/solutions/ yet (the
# course page then says "to come"). Empty: every lesson's exercises are solved. A new lesson
# may join it while its solutions are written, and must leave it when they land.
SOLUTIONS_TO_COME: set[str] = set()
# words and phrases that belong to how a lesson was developed, not to the lesson
DEVELOPMENT = re.compile(
    r"\b(issue|TODO|FIXME|XXX|reviewer|pull request|earlier version|previous version|"
    r"while writing|motivated this (notebook|lesson))s?\b",
    re.IGNORECASE,
)


def check_clean(path):
    cells = json.loads(path.read_text())["cells"]
    for i, cell in enumerate(cells):
        assert not cell.get("outputs"), f"cell {i} is stored with outputs"
        assert cell.get("execution_count") is None, f"cell {i} keeps an execution count"
        if cell["cell_type"] == "markdown":
            found = DEVELOPMENT.search("".join(cell["source"]))
            assert found is None, f"cell {i} mentions {found.group(0)!r}"
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "SMOKE" in "".join(first_code["source"]), "the first code cell sets SMOKE"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_speaks_to_learners(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name)
    check_clean(path)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_are_stored_clean_and_belong_to_a_lesson(path):
    assert re.fullmatch(r"\d\d_solutions\.ipynb", path.name)
    lessons = {p.name[:2] for p in NOTEBOOKS}
    assert path.name[:2] in lessons, f"{path.name} has no lesson {path.name[:2]}"
    check_clean(path)


def test_every_lesson_with_exercises_has_worked_solutions():
    solved = {p.name[:2] for p in SOLUTIONS}
    for lesson in NOTEBOOKS:
        cells = json.loads(lesson.read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        number = lesson.name[:2]
        if "## Exercises" in text and number not in SOLUTIONS_TO_COME:
            assert number in solved, f"{lesson.name} has exercises but no solutions notebook"
    # once a lesson's solutions exist, it leaves the list
    assert not (solved & SOLUTIONS_TO_COME), "solutions exist: shorten SOLUTIONS_TO_COME"


def test_make_test_executes_the_solutions():
    # nbval collects notebooks from the folders pytest is given: the whole notebooks/ folder
    # (not a glob of the lessons) is what makes notebooks/solutions/ run in CI.
    recipe = re.search(r"^test:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no test target in the Makefile"
    assert re.search(r"pytest .*\bnotebooks(/| |$).*--nbval", recipe.group(1), re.M)


def test_course_page_links_resolve():
    page = ROOT / "notebooks" / "README.md"
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the course page links no notebook"
    for link in local:
        assert (page.parent / link).exists(), f"notebooks/README.md links a missing {link}"
    for path in SOLUTIONS:  # every solutions notebook is reachable from the course page
        assert f"solutions/{path.name}" in local, f"the course page does not link {path.name}"


def test_course_page_quotes_each_lesson_runtime_line():
    # The guide's CPU times are the lessons' own runtime lines, quoted: a lesson that changes
    # its line must change the guide too.
    page = (ROOT / "notebooks" / "README.md").read_text()
    sections = re.split(r"^### (?=\d\d )", page, flags=re.M)[1:]
    for section in sections:
        number = section[:2]
        quoted = re.search(r'\*"([^"]+)"\* \(the lesson\'s own runtime line\)', section)
        if quoted is None:
            continue  # a lesson in preparation, or one whose line the guide does not quote
        lesson = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        first = "".join(json.loads(lesson.read_text())["cells"][0]["source"])
        assert " ".join(quoted.group(1).split()) in " ".join(first.split()), (
            f"notebooks/README.md quotes lesson {number}'s runtime as {quoted.group(1)!r}, "
            "which its first cell no longer says"
        )
