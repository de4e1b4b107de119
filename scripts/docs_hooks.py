"""MkDocs hooks: the pages generated from the code, so they cannot drift from it.

- `index.md` is README.md, its links into `docs/` made relative to the site;
- `reference/topology.md` is `ovsvx.model.keys.reference_markdown()`: every key, its default and
  its refusal, asked of the parser;
- a page's `<!-- bench: FILE.json -->` is the table of that bench JSON file (`ovsvx bench --json-file`)
  beside the page, as `ovsvx.observe.figures.markdown` renders it: a page shows what its file holds.
(`reference/commands.md` is mkdocs-click's, from the click commands; an option with no default shows
none, not click's `Sentinel.UNSET`, which mkdocs-click 0.9 prints.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent


def _index() -> str:
    readme = (REPO / "README.md").read_text()
    return re.sub(r"\]\(docs/", "](", readme)


def on_files(files: Files, config: Any) -> Files:
    from ovsvx.model import keys

    files.append(File.generated(config, "index.md", content=_index()))
    files.append(File.generated(config, "reference/topology.md", content=keys.reference_markdown()))
    return files


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    return html.replace("<code>Sentinel.UNSET</code>", "")


BENCH_MARK = re.compile(r"<!-- bench: ([\w./-]+\.json) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    from ovsvx.observe import figures

    folder = Path(config["docs_dir"]) / Path(page.file.src_path).parent
    return BENCH_MARK.sub(lambda m: figures.markdown(json.loads((folder / m.group(1)).read_text())), markdown)
