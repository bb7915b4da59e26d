"""One BLAS thread inside estimators whose matrix products are thin (n x p with p small).

A cross-product such as X' diag(q) X of a million rows by ten columns gains little from a second BLAS
thread on a quiet machine and loses much when the other core is busy: OpenBLAS's threads then wait for
each other (measured on 2 cores with one competing process: 0.27 s with two threads, 0.034 s with one, for
1,000,000 x 10; benchmarks/bench_survival.py). Estimators that do such products wrap them in
``single_blas_thread()``. The threadpoolctl controller is built once (listing the loaded libraries takes
~0.4 ms; entering the limit afterwards ~20 us on a quiet machine). Nested blocks do nothing: the outermost
one sets and restores the limit, so an estimator can hold one limit over its whole body (resetting
OpenBLAS's thread count was measured at 1-3 ms per call with the other core busy).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_CONTROLLER: Any = None
_NESTING = threading.local()  # per thread: inside a single_blas_thread block already?


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread inside the ``with`` block (threadpoolctl); restored on exit."""
    global _CONTROLLER
    if getattr(_NESTING, "inside", False):
        yield
        return
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        _NESTING.inside = True
        try:
            yield
        finally:
            _NESTING.inside = False
