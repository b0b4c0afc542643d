"""``python -m mvg_backend.seine``: convert a checkpoint, or run transitions headless (see ``cli.py``)."""

from .cli import main

raise SystemExit(main())
