"""A read model's table declaration refuses a query-only index it does not declare."""

from __future__ import annotations

import pytest

from adapters.read_models.base import Table


def test_a_query_only_index_must_be_one_of_the_tables_indexes() -> None:
    Table("t", "a {int} PRIMARY KEY, b {int}", indexes=("b",), query_only=("b",))
    with pytest.raises(ValueError, match=r"query_only names no index of t: \['a, b'\]"):
        Table("t", "a {int} PRIMARY KEY, b {int}", indexes=("b",), query_only=("a, b",))
