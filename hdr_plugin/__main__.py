"""``python -m hdr_plugin`` runs the command-line interface."""

from .cli import main

raise SystemExit(main())
