"""Engines over the one case function :func:`mvg_backend.case.run_case`.

``local.py`` runs cases one after another in this process (models loaded once). A Ray engine would
ship the same :class:`~mvg_backend.case.Case`, :class:`~mvg_backend.pipeline.PipelineConfig` and model
arguments to workers that call ``run_case`` (``ray`` imported lazily there).
"""

from .cases import cases_from_csv, cases_from_folder, load_cases
from .local import SUMMARY_COLUMNS, format_summary, run_batch, write_summary

__all__ = ["SUMMARY_COLUMNS", "cases_from_csv", "cases_from_folder", "format_summary", "load_cases", "run_batch",
           "write_summary"]
