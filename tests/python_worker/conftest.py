"""The worker harness's fixtures (``python``: each Python 3.9-3.13 found; ``start``: a
worker with its code), for every test of this directory."""

from tests.python_worker.test_bootstrap import python, start  # noqa: F401
