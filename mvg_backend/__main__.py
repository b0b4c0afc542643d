"""``python -m mvg_backend``: the headless front door (see ``cli.py``)."""

from .cli import main

raise SystemExit(main())
