"""Parquet files written with PyArrow alone: what a simulation job needs to write its run file
(numpy and the engine, no Polars: importing Polars costs a pipeline job about 0.3 CPU s, a
third of a throughput row's job). ``arrow_table`` builds the table that
``migsim.output.tables.write_parquet`` builds through Polars from the same rows (typed, sorted,
checked for nulls), so both write the same bytes (tests/test_tables.py); for values it does
not convert the same way it returns None and ``write_rows`` takes the Polars path.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from migsim import __version__
from migsim.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from migsim.output.schema import Schema


def file_metadata(
    schema: Schema, *, config_hash: str, seed: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The key/value metadata of a migsim Parquet file (no timestamp)."""
    meta = {
        "schema": schema.name,
        "schema_doc": schema.doc,
        "migsim_version": __version__,
        "config_hash": config_hash,
        "seed": str(int(seed)),
    }
    for key, value in (extra or {}).items():
        meta[str(key)] = str(value)
    return meta


def write_arrow(table: pa.Table, path: str | os.PathLike, meta: Mapping[str, str]) -> None:
    """Write `table` (already in its schema's types and order) with `meta`, zstd, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(dict(meta)), buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue().to_pybytes())


class _NoPandas:
    """A finder (sys.meta_path) for which pandas is not installed, in the threads that are
    inside _pandas_unseen() only: another thread's import of pandas meanwhile finds it."""

    def __init__(self) -> None:
        self.depth: dict[int, int] = {}  # thread ident -> nesting of _pandas_unseen()
        self.lock = threading.Lock()

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" and self.depth.get(threading.get_ident()):
            raise ModuleNotFoundError("pandas is hidden from PyArrow here", name=name)


_NO_PANDAS = _NoPandas()


@contextmanager
def _pandas_unseen() -> Iterator[None]:
    """PyArrow's first pa.array() of a process imports pandas, if it is installed, to ask
    whether the values are a pandas object (pyarrow/array.pxi _is_array_like, pandas-shim.pxi
    _check_import): about 0.15 CPU s of a simulation job, whose values are Python lists. In
    this block, a process that has not imported pandas finds none in this thread, so PyArrow
    takes the values as the lists they are; PyArrow tries the import again where it needs
    pandas (to_pandas, from_pandas). The finder stays on sys.meta_path once installed (it
    answers None to every other name and in every other thread)."""
    if "pandas" in sys.modules:
        yield
        return
    f, me = _NO_PANDAS, threading.get_ident()
    with f.lock:
        if f not in sys.meta_path:
            sys.meta_path.insert(0, f)
        f.depth[me] = f.depth.get(me, 0) + 1
    try:
        yield
    finally:
        with f.lock:
            f.depth[me] -= 1
            if not f.depth[me]:
                del f.depth[me]


def arrow_table(rows: Sequence[Mapping[str, Any]], schema: Schema) -> pa.Table | None:
    """The rows as `schema`'s Arrow table, sorted by ``schema.sort_by`` (stable, nulls first),
    as ``schema.conform(schema.frame(rows))`` gives it; ValueError for a row with missing or
    extra keys or a null where the schema allows none. None where the two could differ: a
    value PyArrow does not convert to its column's type as it is (Polars casts it), or a NaN in
    a sort key (Arrow places NaN with the nulls, Polars after every number)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    want = set(schema.names)
    for i, row in enumerate(rows):
        missing, extra = sorted(want - set(row)), sorted(set(row) - want)
        if missing or extra:
            raise ValueError(
                f"{schema.name} row {i}: missing columns {missing}, unexpected columns {extra}"
            )
    target = schema.arrow_schema()
    columns = []
    with _pandas_unseen():
        for field in target:
            try:
                columns.append(pa.array([row[field.name] for row in rows], type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                return None
    table = pa.Table.from_arrays(columns, schema=target)
    for name in table.column_names:
        if name not in schema.nulls_allowed and table[name].null_count:
            raise ValueError(f"{schema.name}: column {name} has null values")
    keys = list(schema.sort_by)
    for key in keys:
        col = table[key]
        if pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py():
            return None
    if keys and len(table):
        try:  # nulls first in every key; PyArrow < 25 takes null_placement for all keys
            options = pc.SortOptions(sort_keys=[(k, "ascending", "at_start") for k in keys])
        except (TypeError, ValueError):
            options = pc.SortOptions([(k, "ascending") for k in keys], null_placement="at_start")
        table = table.take(pc.sort_indices(table, options=options))
    return table


def conformed_arrow(df: pl.DataFrame, schema: Schema) -> pa.Table:
    """`df` conformed to `schema` (``Schema.conform``: its columns, types and order) as the
    Arrow table of its files."""
    return schema.conform(df).to_arrow().cast(schema.arrow_schema())


def write_rows(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    schema: Schema,
    *,
    config_hash: str,
    seed: int,
    extra: Mapping[str, str] | None = None,
) -> None:
    """``migsim.output.tables.write_parquet(schema.frame(rows), ...)``, the same bytes, without
    importing Polars unless ``arrow_table`` declines the rows."""
    table = arrow_table(rows, schema)
    if table is None:
        table = conformed_arrow(schema.frame(rows), schema)
    write_arrow(table, path, file_metadata(schema, config_hash=config_hash, seed=seed, extra=extra))
