"""The task queue's baseline: a no-op Celery task on Redis, set up as Celery's "First
steps" guide sets one up (a broker and a result backend, ``.delay()`` then ``.get()``),
and its worker started as the guide starts it, from this folder:

    celery -A celery_noop worker --concurrency 2 --loglevel WARNING -Q QUEUE

The broker and the queue come from ``HYAC_BENCH_REDIS_URL`` and ``HYAC_BENCH_QUEUE``, so
a run uses its own Redis database and queue and leaves nobody else's alone.
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

REDIS_URL = os.environ.get("HYAC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
QUEUE = os.environ.get("HYAC_BENCH_QUEUE", "hyac-bench")

app = Celery("celery_noop", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(task_default_queue=QUEUE, broker_connection_retry_on_startup=True,
                result_expires=600)


@app.task(name="celery_noop.noop")  # the same name when imported as benchmarks.celery_noop
def noop() -> None:
    return None
