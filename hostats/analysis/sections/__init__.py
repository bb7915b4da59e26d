"""The report sections: one function per estimator, registered under its spec ``type``.

A section function takes the run's :class:`~hostats.analysis.context.Context` and one ``[[section]]``
table of the spec (validated by :func:`~hostats.analysis.spec.load_spec`) and returns a
:class:`~hostats.analysis.context.SectionOutput`. The keys each type accepts are declared in
:mod:`hostats.analysis.spec` (``SECTION_TYPES``); a test checks that every declared type is registered here.

Families: :mod:`.incidence` (cumulative_incidence, proportion, rate), :mod:`.regression` (logistic, cox,
fine_gray), :mod:`.causal` (iptw), :mod:`.meta` (meta_proportions), :mod:`.timing` (interval_censored,
diagnosis_timing).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostats.analysis.context import Context, SectionOutput

SectionFunction = Callable[["Context", dict], "SectionOutput"]

SECTIONS: dict[str, SectionFunction] = {}


def register(type_: str) -> Callable[[SectionFunction], SectionFunction]:
    """Register a section function under its spec ``type`` (``[[section]] type = "..."``)."""
    def deco(fn: SectionFunction) -> SectionFunction:
        if type_ in SECTIONS:
            raise ValueError(f"section type {type_!r} registered twice")
        SECTIONS[type_] = fn
        return fn
    return deco


# importing the family modules fills SECTIONS
from hostats.analysis.sections import causal, incidence, meta, regression, timing  # noqa: E402, F401
