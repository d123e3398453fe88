"""Declarations of result tables, importable without Polars or PyArrow: a Parquet schema
(``Schema``: documented ``Column``s with their type named as Polars names it), a rendered table
(``Table``: Markdown and HTML) and the labels and numbers every study's tables share.

A study module declares its schemas and tables with these at import time; Polars and PyArrow
are imported by the methods that build or check a frame or a file (``Schema.frame``,
``conform``, ``arrow_schema``, ``check_file``), so loading the study registry (the Snakefile
does, at parse) imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

# Column types by their Polars names (a Column may also hold the Polars type itself).
S, I32, I64, F64 = "String", "Int32", "Int64", "Float64"
LIST_F64 = "List(Float64)"
DTYPES = (S, I32, I64, F64, LIST_F64)


def dtype_name(dtype: Any) -> str:
    """The Polars name of a column type: ``Float64``, ``List(Float64)``."""
    return dtype if isinstance(dtype, str) else str(dtype)


def polars_dtype(dtype: Any) -> Any:
    """The Polars type of a column type given by its name (or as a Polars type)."""
    import polars as pl

    if not isinstance(dtype, str):
        return dtype
    if dtype == LIST_F64:
        return pl.List(pl.Float64)
    if dtype not in DTYPES:
        raise ValueError(f"column type: must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return getattr(pl, dtype)


def _arrow_type(dtype: Any) -> pa.DataType:
    import pyarrow as pa

    arrow = {
        S: pa.string(),
        I32: pa.int32(),
        I64: pa.int64(),
        F64: pa.float64(),
        LIST_F64: pa.list_(pa.field("element", pa.float64())),  # as Parquet names it
    }
    return arrow[dtype_name(dtype)]


@dataclass(frozen=True)
class Column:
    """One column: name, type (its Polars name, ``S``/``I32``/``I64``/``F64``/``LIST_F64``, or
    the Polars type), unit and one-line meaning."""

    name: str
    dtype: Any
    unit: str
    doc: str


def _c(name: str, dtype: Any, unit: str, doc: str) -> Column:
    return Column(name, dtype, unit, doc)


@dataclass(frozen=True)
class Schema:
    """A documented table layout; files are sorted by ``sort_by`` before writing."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...]
    nulls_allowed: frozenset[str] = field(default_factory=frozenset)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def polars_schema(self) -> dict[str, Any]:
        return {c.name: polars_dtype(c.dtype) for c in self.columns}

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the files (column docs as field metadata, no file metadata)."""
        import pyarrow as pa

        return pa.schema(
            [
                pa.field(c.name, _arrow_type(c.dtype), metadata={"unit": c.unit, "doc": c.doc})
                for c in self.columns
            ]
        )

    def frame(self, rows: Iterable[Mapping]) -> pl.DataFrame:
        """A typed DataFrame from row dicts; every key of the contract must be there, no other."""
        import polars as pl

        rows = list(rows)
        want = set(self.names)
        for i, row in enumerate(rows):
            missing = sorted(want - set(row))
            extra = sorted(set(row) - want)
            if missing or extra:
                raise ValueError(
                    f"{self.name} row {i}: missing columns {missing}, unexpected columns {extra}"
                )
        data = {c.name: [row[c.name] for row in rows] for c in self.columns}
        return pl.DataFrame(data, schema=self.polars_schema(), strict=False)

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Select the schema's columns in order, cast to their types and sort; checks nulls."""
        import polars as pl

        missing = sorted(set(self.names) - set(df.columns))
        if missing:
            raise ValueError(f"{self.name}: missing columns {missing}")
        out = df.select([pl.col(c.name).cast(polars_dtype(c.dtype)) for c in self.columns])
        for c in self.columns:
            if c.name not in self.nulls_allowed and out[c.name].null_count():
                raise ValueError(f"{self.name}: column {c.name} has null values")
        return out.sort(list(self.sort_by), nulls_last=False, maintain_order=True)

    def check_file(self, path: str | os.PathLike) -> None:
        """Raise ValueError unless the Parquet file at `path` has exactly this schema."""
        import pyarrow.parquet as pq

        got = pq.read_schema(path).remove_metadata()
        want = self.arrow_schema()
        if not got.equals(want, check_metadata=True):
            raise ValueError(f"{path}: schema differs from {self.name}:\n{got}\nexpected:\n{want}")
        meta = read_metadata(path)
        if meta.get("schema") != self.name:
            raise ValueError(f"{path}: metadata schema={meta.get('schema')!r}, want {self.name!r}")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The key/value metadata of a Parquet file written by ``write_parquet``."""
    import pyarrow.parquet as pq

    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW:")}


# ---------------------------------------------------------------------------------------------
# Rendered tables
# ---------------------------------------------------------------------------------------------


@dataclass
class Table:
    """A rendered table: title, header, rows of cell strings, notes below it."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """GitHub-flavoured Markdown, first column left-aligned, the others right-aligned."""
        lines = [f"## {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(self.header) - 1)) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(row) + " |")
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """An HTML fragment (a <table> with caption and notes), no external resources."""
        from html import escape as esc  # here: html.entities is 0.5 MiB a run never needs

        parts = [f"<table><caption>{esc(self.title)}</caption>", "<thead><tr>"]
        parts += [f"<th>{esc(h)}</th>" for h in self.header]
        parts.append("</tr></thead><tbody>")
        for row in self.rows:
            cells = [f"<th scope='row'>{esc(row[0])}</th>"] + [
                f"<td>{esc(c)}</td>" for c in row[1:]
            ]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
        parts += [f"<p class='note'>{esc(n)}</p>" for n in self.notes]
        return "\n".join(parts) + "\n"


def table_page(title: str, tables: Sequence[Table]) -> str:
    """A standalone offline HTML page holding `tables`."""
    from html import escape

    body = "\n".join(t.html() for t in tables)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{escape(title)}</title>\n<style>{TABLE_CSS}</style>\n</head>\n"
        f"<body>\n{body}</body>\n</html>\n"
    )


TABLE_CSS = (
    "body{font-family:sans-serif;margin:1.5em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "caption{font-weight:bold;text-align:left;padding:.3em 0}"
    "th,td{border:1px solid #bbb;padding:.25em .6em;font-variant-numeric:tabular-nums}"
    "td{text-align:right}th[scope=row]{text-align:left}"
    ".note{color:#444;font-size:.9em}"
)


# ---------------------------------------------------------------------------------------------
# Labels and numbers shared by every study's tables
# ---------------------------------------------------------------------------------------------


def number_text(v: float | None, digits: int = 1, signed: bool = False) -> str:
    """`v` with `digits` decimals (thousands separated; `signed`: always with its sign), or a
    dash for a missing value."""
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:,.{digits}f}"


def count_text(v: float | None) -> str:
    """A count with thousands separated, or a dash for a missing value."""
    return "–" if v is None else f"{v:,.0f}"


def count_noun(n: int, noun: str) -> str:
    """`1 channel`, `4 channels`: a count and its noun, plural unless the count is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def copy_label(copy: str, channels: int | None) -> str:
    """`baseline` or `DMA <n> ch`: the label of a copy back-end in tables and legends."""
    return "baseline" if copy == "baseline" else f"DMA {channels} ch"


def markdown(tables: Sequence[Table]) -> str:
    """Markdown of several tables, one after the other."""
    return "\n".join(t.markdown() for t in tables)


# ---------------------------------------------------------------------------------------------
# Signed numbers and mean ± sd (table cells)
# ---------------------------------------------------------------------------------------------


def _signed(value: float, digits: int = 1) -> str:
    """`+1.5`, `-0.3`, never `-0.0`."""
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def _pm(mean: float | None, sd: float | None, digits: int = 2) -> str:
    if mean is None:
        return "–"
    if sd is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}±{sd:.{digits}f}"


def describe_schemas(schemas: Iterable[Schema]) -> str:
    """Markdown documentation of `schemas` (results/README.md: ``migsim.studies.schemas()``
    and the study schemas)."""
    out = []
    for s in schemas:
        out.append(f"### {s.name}\n\n{s.doc} Sorted by {', '.join(s.sort_by)}.\n")
        out.append("| column | type | unit | meaning |\n|---|---|---|---|")
        for c in s.columns:
            kind = dtype_name(c.dtype)
            out.append(f"| {c.name} | {kind} | {c.unit} | {c.doc} |")
        out.append("")
    return "\n".join(out)
