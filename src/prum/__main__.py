"""``python -m prum`` is the ``prum`` command."""

from prum.cli import app

app()
