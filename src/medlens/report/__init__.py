"""HTML reports of evaluation tables: self-contained files with embedded plots.

matplotlib and jinja2 are imported only when a report is rendered.
"""

from medlens.report._html import (
    RankingSection,
    classification_plots,
    comparison_plot,
    distribution_plot,
    render_report,
    write_report,
)

__all__ = [
    "RankingSection",
    "classification_plots",
    "comparison_plot",
    "distribution_plot",
    "render_report",
    "write_report",
]
