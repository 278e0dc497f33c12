"""The documentation: the strict site build, the README's size and generated headline block, and
the rule that user-facing text carries no project history.

The history rule (README.md, CHANGELOG.md and every page under docs/): no issue numbers, work
rounds, work stops, git branches or "this session". The patterns name the *work* sense only, so
technical language passes: "round trip", "rounding", "round(x)", "prune round", "three rounds of
iterative closest points", "early stop", "the pixel stops", "branch-free", "both decode
branches". What fails: "issue 12", "issues 3 and 4", "#12", "second round", "this round", "a
round ago", "before this round", "this stop", "next stop", "this branch", "the scene-codec
branch", "merged with main", "on `main`", "this session", "before this change".
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 220

_ORD = r"(?:first|second|third|fourth|fifth|sixth|last|previous|next|this|that|current|earlier|later|same|new|\d+(?:st|nd|rd|th))"
HISTORY = [
    (re.compile(r"\bissues?\s+#?\d+", re.I), "an issue number"),
    (re.compile(r"(?<![\w&/.(\]])#\d{1,5}(?![\w-])"), "an issue number (#N)"),
    (re.compile(rf"\b{_ORD}[ -]rounds?\b(?![ -]trip)", re.I), "a work round"),
    (re.compile(r"\brounds?\s+ago\b", re.I), "a work round"),
    (re.compile(r"\b(?:this|that|last|previous|next|each|work|second|third)\s+stops?\b(?!\s+(?:at|when|on|before|after|the|if))", re.I),
     "a work stop"),
    (re.compile(r"\b(?:this|that|my|our|your|another|other|feature|git|main|their)\s+branch(?:es)?\b(?!-)", re.I),
     "a git branch"),
    (re.compile(r"`[\w./-]+`\s+branch\b|\b[a-z0-9]+(?:-[a-z0-9]+)+\s+branch\b(?!-)", re.I), "a git branch"),
    (re.compile(r"\bmerged\s+(?:with|into)\s+`?main\b|\bon\s+`main`|\bnot\s+on\s+main\b", re.I), "a git branch"),
    (re.compile(r"\bthis\s+session\b", re.I), "this session"),
    (re.compile(r"\bbefore\s+this\s+(?:change|round|branch)\b", re.I), "project history"),
]

MUST_FAIL = ["see issue 12, part A", "issues 3 and 4", "fixed in #12.", "the second round of decode work",
             "measured this round", "a round ago", "before this round it was 5.1x", "at this stop",
             "next stop", "that row comes from this branch", "merged with the scene-codec branch",
             "the .lgs codec was not on `main` yet", "in this session", "before this change"]
MUST_PASS = ["a PLY round trip is bit-exact", "rounding to the nearest code", "round(128 q + 128)",
             "log/exp round trip < 1e-6", "prune round", "the first prune round misses",
             "3 rounds of iterative closest points", "prune/fine-tune rounds", "early stop on a plateau",
             "the pixel stops before the Gaussian", "a tile stops as soon as", "Where it stops",
             "branch-free selects", "the two branches are balanced", "without branches", "srv.stop()",
             "the transmittance stop 1e-4", "lgs.md#5-streams", "colour #ffcc00", "rounds each value",
             "one prune round in the budget", "round(x)", "each round fine-tunes"]


def history_faults(text: str) -> list[str]:
    """'line N: what: the text' for every history phrase in a Markdown text."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        for pat, what in HISTORY:
            m = pat.search(line)
            if m:
                out.append(f"line {n}: {what}: {m.group(0)!r}")
    return out


def doc_files() -> list[Path]:
    return [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_history_rule_catches_work_language_and_passes_technical_language():
    for s in MUST_FAIL:
        assert history_faults(s), f"not caught: {s!r}"
    for s in MUST_PASS:
        assert not history_faults(s), f"false alarm on {s!r}: {history_faults(s)}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_project_history_in_user_facing_text(path):
    faults = history_faults(path.read_text())
    assert not faults, f"{path.relative_to(ROOT)}: project history in user-facing text:\n" + "\n".join(faults)


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}); move detail into docs/"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_results", ROOT / "docs" / "gen_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_readme_headline_block_matches_the_generator():
    gen = _generator()
    text = README.read_text()
    assert gen.BEGIN in text and gen.END in text, "README.md lost its generated results block"
    assert gen.rewrite_readme(text) == text, (
        "README.md's headline results differ from bench/results/: run python docs/gen_results.py --readme")


def test_every_number_in_the_readme_table_links_to_an_existing_results_file():
    gen = _generator()
    block = gen.readme_block()
    links = re.findall(r"\]\((bench/results/[^)]+)\)", block)
    rows = [l for l in block.splitlines() if l.startswith("| ") and not l.startswith("| capability")]
    assert rows and len(links) == len(rows)
    for link in links:
        assert (ROOT / link).is_file(), link


def test_result_pages_state_machine_load_and_command():
    gen = _generator()
    pages = gen.pages()
    assert "results/index.md" in pages and len(pages) >= 9
    for rel, text in pages.items():
        if rel == "results/index.md":
            continue
        tables = text.count("\n### ")
        assert tables >= 1, rel
        for field in ("**Machine:**", "**Load average (1 min):**", "**Command:**", "**Results file:**"):
            assert text.count(field) == tables, f"{rel}: a table without {field}"


def test_strict_site_build(tmp_path):
    """`mkdocs build --strict`: a broken link, a missing page or a page left out of the nav fails."""
    for mod in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed: pip install -e '.[docs]' (make test installs it)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
                        "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    warnings = [l for l in r.stderr.splitlines() if "WARNING" in l or "ERROR" in l]
    assert r.returncode == 0, "strict docs build failed:\n" + "\n".join(warnings or r.stderr.splitlines()[-30:])
    for page in ("index.html", "results/scene.html", "api/scene.html", "formats/lgs.html", "changelog.html"):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "api" / "scene.html").read_text()
    assert "compress_scene" in api and "write_lgs" in api, "the API reference was not generated from the docstrings"


def test_readme_links_resolve():
    """Every relative link in the README points at a file or folder of the repository."""
    text = README.read_text()
    links = [l for l in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", l)]
    assert links
    missing = [l for l in links if not (ROOT / l.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing paths: {missing}"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_python_examples_import_what_exists():
    """Every `from X import a, b` in a Python example of the README or the docs names a real
    module and real attributes, so an API example cannot outlive a rename."""
    import importlib

    checked = 0
    for path in doc_files():
        for block in _python_blocks(path.read_text()):
            found = re.findall(r"^from\s+([\w.]+)\s+import\s+\(([\w\s,]+)\)", block, re.M)
            found += re.findall(r"^from\s+([\w.]+)\s+import\s+([\w ,]+)$", block, re.M)
            for mod, names in found:
                m = importlib.import_module(mod)
                for name in (n.strip() for n in names.replace("\n", " ").split(",")):
                    if name:
                        assert hasattr(m, name), f"{path.relative_to(ROOT)}: {mod} has no {name}"
                        checked += 1
    assert checked >= 20
