"""The report layer: tables with disclosure control, figures, and the self-contained HTML report.

It takes tidy DataFrames (estimators' ``.table()``/``.curve``, ``Cohort.flow()``) and never reads data
itself. ``hostats.analysis`` assembles a ``ReportContent`` and calls ``render_report``.
"""
from hostats.report.html import ReportContent, TableBlock, flow_boxes, render_index, render_report
from hostats.report.tables import (
    neutralise_formulas,
    secondary_suppression,
    suppress_estimates,
    table_one,
    write_csv,
)

__all__ = ["ReportContent", "TableBlock", "flow_boxes", "neutralise_formulas", "render_index", "render_report",
           "secondary_suppression", "suppress_estimates", "table_one", "write_csv"]
