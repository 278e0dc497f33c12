"""MkDocs hook: adds the generated pages to the site at build time.

- ``results/*.md``: rendered from ``bench/results/*.json`` by ``docs/gen_results.py``;
- ``results/files/*``: copies of ``bench/results/`` so every table links to its own data;
- ``changelog.md``: the repository's ``CHANGELOG.md``.

Nothing generated is written into docs/, so the pages cannot go stale in the repository.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


def _generator():
    spec = importlib.util.spec_from_file_location("gen_results", DOCS / "gen_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def on_files(files: Files, config) -> Files:
    gen = _generator()
    for rel, text in gen.pages().items():
        files.append(File.generated(config, rel, content=text))
    for p in sorted(gen.RESULTS.iterdir()):
        if p.is_file() and p.suffix in {".json", ".csv", ".png"}:
            files.append(File.generated(config, f"results/files/{p.name}", abs_src_path=str(p)))
    changelog = (ROOT / "CHANGELOG.md").read_text()
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files
