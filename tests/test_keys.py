"""The topology reference is generated from `model/keys.py`: its list of keys must be the parser's."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ovsvx.model import keys, reader


def normalized(path: str) -> str:
    """hosts[0].namespaces[1] -> hosts[].namespaces[]: a table's place, whichever one it is."""
    return re.sub(r"\[\d+\]", "[]", path)


def read_by_parser(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key the parser asks for, in every sample (each table of the file is in one)."""
    seen: set[str] = set()
    plain_done = reader._Table.done

    def done(table: Any) -> None:
        seen.update(normalized(table.field(key)) for key in table.used)
        plain_done(table)

    monkeypatch.setattr(reader._Table, "done", done)
    for sample in keys.samples().values():
        reader.parse(sample)
    return seen


def test_every_key_the_parser_reads_is_described_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    described = {key.path for key in keys.KEYS}
    assert sorted(read_by_parser(monkeypatch) ^ described) == []


@pytest.mark.parametrize("key", keys.KEYS, ids=lambda k: k.path)
def test_each_keys_bad_value_is_refused_in_one_line_naming_that_key(key: keys.Key) -> None:
    said = keys.refusal(key)
    assert "\n" not in said
    assert normalized(said).startswith(f"{key.path}: ") or normalized(said).startswith(f"{key.path}[]: "), said


def test_the_reference_page_has_a_row_for_every_key_under_its_table() -> None:
    page = keys.reference_markdown()
    for table in keys.TABLES:
        section = page.split(f"## `{table or 'top level'}`", 1)[1].split("\n## ", 1)[0]
        for key in (k for k in keys.KEYS if k.table == table):
            assert f"| `{key.name}` |" in section, key.path
