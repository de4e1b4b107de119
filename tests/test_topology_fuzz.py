"""Hostile topology input, generated: whatever comes in, loading either succeeds or raises the one
TopologyError family with a single line; nothing else escapes (a bounded number of cases)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ovsvx.errors import TopologyError
from ovsvx.model import reader, writer

DEFAULT = writer.to_data(reader.default())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["10.33.30.150", "192.168.1.0/24", "br1", "x" * 16, "", "::1", "0.0.0.0/0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def mutated(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """The default topology with one value (found by following `path` as far as it goes) replaced."""
    data = copy.deepcopy(data)
    node: Any = data
    for step in path[:-1]:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        node = node[keys[step % len(keys)]]
    if isinstance(node, dict) and node:
        node[list(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return data


def loads_or_refuses_cleanly(load: Any) -> None:
    try:
        load()
    except TopologyError as err:
        assert str(err) and "\n" not in str(err)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=5), values)
def test_any_value_anywhere_is_accepted_or_refused_in_one_line(path: list[int], value: Any) -> None:
    loads_or_refuses_cleanly(lambda: reader.parse(mutated(DEFAULT, path, value)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_accepted_or_refused_in_one_line(text: str) -> None:
    loads_or_refuses_cleanly(lambda: reader.parse_text(text, "fuzz.toml"))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(reader.default_text())), st.text(max_size=20))
def test_the_default_file_spliced_with_junk_is_accepted_or_refused_in_one_line(at: int, junk: str) -> None:
    text = reader.default_text()
    loads_or_refuses_cleanly(lambda: reader.parse_text(text[:at] + junk + text[at:], "fuzz.toml"))
