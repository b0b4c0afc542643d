"""Engines over the one case function :func:`mvg_backend.case.run_case`.

``local.py`` runs cases one after another in this process (models loaded once) and holds what every engine
shares (the resume rule, the per-case run, the summary); ``ray_engine.py`` runs the same cases on Ray actors
that each load the models once from a :class:`~mvg_backend.batch.models.ModelSpec` (``ray`` imported only when
that engine runs).
"""

from .cases import cases_from_csv, cases_from_folder, load_cases
from .local import SUMMARY_COLUMNS, format_summary, run_batch, write_summary
from .models import ModelSpec

__all__ = ["SUMMARY_COLUMNS", "ModelSpec", "cases_from_csv", "cases_from_folder", "format_summary", "load_cases",
           "run_batch", "write_summary"]
