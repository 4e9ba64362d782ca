"""``python -m pipelines.cli``: the same as the ``freshcast`` console script."""

from pipelines.cli import app

app()
