"""One BLAS thread inside estimators whose matrix products are thin (n x p with p small).

A cross-product such as X' diag(q) X of a million rows by ten columns gains little from a second BLAS
thread on a quiet machine and loses much when the other core is busy: OpenBLAS's threads then wait for
each other (measured on 2 cores with one competing process: 0.27 s with two threads, 0.034 s with one, for
1,000,000 x 10; benchmarks/bench_survival.py). Estimators that do such products wrap them in
``single_blas_thread()``. The threadpoolctl controller is built once (listing the loaded libraries takes
~0.4 ms; entering the limit afterwards ~20 us), so small fits pay nothing noticeable.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_CONTROLLER: Any = None


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread inside the ``with`` block (threadpoolctl); restored on exit."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield
