"""Engines that turn episode files into raw groups (:mod:`hostats.scale.rules`) without holding the rows.

- ``duckdb``: one SQL query over the files (embedded DuckDB; parallel, streams, spills to disk).
- ``pandas``: the files read in batches (pyarrow for parquet, ``read_csv(chunksize=)`` for CSV), each batch
  summarised by the pandas rules and the summaries added; memory is one batch.
- ``dask``: ``dask.dataframe`` reads the files in partitions, each summarised by the pandas rules on
  whichever worker holds it (a ``dask.distributed`` cluster when a Client is active or given), and the
  summaries are added in a tree.
"""
from __future__ import annotations

import csv
import glob
from pathlib import Path

import pandas as pd

from hostats.errors import DataError
from hostats.scale.rules import Plan, combine, duckdb_sql, partition_groups

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
BATCH_ROWS = 1_000_000


def list_files(source) -> tuple[list[Path], str]:
    """Files of a source (a file, a folder of .parquet/.csv files, a glob pattern, or a list of these) and
    their one format."""
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise DataError("no files given")
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in FORMATS and f.is_file())
            if not found:
                raise DataError(f"{p}: no .parquet or .csv files in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        elif any(ch in str(item) for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(str(item)))
            if not found:
                raise DataError(f"{item}: no file matches this pattern")
            files += found
        else:
            raise DataError(f"{item}: no such file or folder")
    kinds = {FORMATS.get(f.suffix.lower()) for f in files}
    if None in kinds:
        bad = next(f for f in files if f.suffix.lower() not in FORMATS)
        raise DataError(f"{bad}: the out-of-core road reads .parquet or .csv files (use hostats.read_cohort for "
                        "other formats)")
    if len(kinds) > 1:
        raise DataError("mixed parquet and CSV files: give one format at a time")
    return files, kinds.pop()


def columns_of(files: list[Path], fmt: str) -> list[str]:
    """Column names of the first file (all files must share them)."""
    first = files[0]
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(first).names)
        with open(first, newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh))]
    except StopIteration:
        raise DataError(f"{first}: the file is empty") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{first}: cannot read the column names ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: not a parquet file
        raise DataError(f"{first}: not a readable {fmt} file ({type(exc).__name__})") from None


def run_duckdb(files: list[Path], fmt: str, plan: Plan, threads: int | None = None,
               memory_limit: str | None = None, temp_directory: str | None = None) -> pd.DataFrame:
    """Raw groups by one DuckDB query over the files."""
    try:
        import duckdb
    except ImportError:
        raise DataError('engine="duckdb" needs DuckDB: pip install "hostats[scale]"') from None
    con = duckdb.connect(":memory:")
    try:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit is not None:
            con.execute("SET memory_limit = ?", [str(memory_limit)])
        if temp_directory is not None:
            con.execute("SET temp_directory = ?", [str(temp_directory)])
        paths = [str(f) for f in files]
        try:
            rel = (con.read_parquet(paths) if fmt == "parquet"
                   else con.read_csv(paths, header=True, all_varchar=True))
            absent = [plan.source_of(c) for c in plan.read if plan.source_of(c) not in rel.columns]
            if absent:  # the header was read differently (broken quoting, another delimiter)
                raise DataError(f"{paths[0]}: DuckDB finds no column(s) {absent} (it reads the columns as "
                                f"{list(rel.columns)[:10]}); check the header, the delimiter and the quoting")
            rel = rel.select(*[duckdb.ColumnExpression(plan.source_of(c)).alias(c) for c in plan.read])
            rel.create_view("src")
            types = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
            frame = con.execute(duckdb_sql(plan, types)).df()
        except duckdb.Error as exc:
            raise DataError(f"reading {len(paths)} {fmt} file(s) ({paths[0]}{', ...' if len(paths) > 1 else ''}) "
                            f"with DuckDB failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    return combine([frame], plan)


def _batches(files: list[Path], fmt: str, plan: Plan, rows: int):
    cols = [plan.source_of(c) for c in plan.read]
    if fmt == "parquet":
        import pyarrow.dataset as ds

        dataset = ds.dataset([str(f) for f in files], format="parquet")
        # little read-ahead: memory stays about one batch (pyarrow's defaults buffer 16 batches, 4 files)
        for batch in dataset.to_batches(columns=cols, batch_size=rows, batch_readahead=1, fragment_readahead=1):
            yield batch.to_pandas(date_as_object=False)
    else:
        for f in files:
            yield from pd.read_csv(f, usecols=cols, dtype=str, keep_default_na=False, na_values=[],
                                   chunksize=rows, encoding="utf-8-sig")


def run_pandas(files: list[Path], fmt: str, plan: Plan, batch_rows: int = BATCH_ROWS) -> pd.DataFrame:
    """Raw groups by pandas over batches of ``batch_rows`` rows (memory: one batch and the sums)."""
    acc: list[pd.DataFrame] = []
    try:
        for frame in _batches(files, fmt, plan, batch_rows):
            acc.append(partition_groups(frame, plan))
            if len(acc) >= 8:
                acc = [combine(acc, plan)]
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"reading {fmt} file(s) starting {files[0]} failed: {type(exc).__name__}: {exc}") from None
    if not acc:
        raise DataError(f"{files[0]}: no data rows")
    return combine(acc, plan)


def run_dask(files: list[Path], fmt: str, plan: Plan, client=None, blocksize: str = "64MB",
             fan_in: int = 8) -> pd.DataFrame:
    """Raw groups by Dask: one task per partition, summed in a tree of ``fan_in`` (on ``client``, else on
    the active dask.distributed Client, else on Dask's default scheduler)."""
    try:
        import dask
        import dask.dataframe as dd
    except ImportError:
        raise DataError('engine="dask" needs Dask: pip install "hostats[dask]"') from None
    cols = [plan.source_of(c) for c in plan.read]
    paths = [str(f) for f in files]
    try:
        if fmt == "parquet":
            ddf = dd.read_parquet(paths, columns=cols)
        else:
            ddf = dd.read_csv(paths, usecols=cols, dtype=str, keep_default_na=False, na_values=[],
                              blocksize=blocksize, encoding="utf-8-sig")
        parts = [dask.delayed(partition_groups)(p, plan) for p in ddf.to_delayed()]
        while len(parts) > 1:
            parts = [dask.delayed(combine)(parts[i:i + fan_in], plan) for i in range(0, len(parts), fan_in)]
        out = client.compute(parts[0]).result() if client is not None else parts[0].compute()
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"reading {fmt} file(s) starting {files[0]} with Dask failed: {type(exc).__name__}: "
                        f"{exc}") from None
    return combine([out], plan)
