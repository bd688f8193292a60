"""A long job in the background, with progress.

Invoked over HTTP it queues itself as a background task and answers 202 with the task id
at once; as that task it works through the items and reports progress as it goes.

    hyac invoke job --data '{"items": 20}'
    hyac tasks show TASK_ID            # status, progress and result
"""

import time


def process(item: int) -> int:
    time.sleep(0.05)  # stands for real work: a download, a conversion...
    return item * item


def main(context: FunctionContext):
    try:
        options = context.request.json() or {}
        items = int(options.get("items", 10)) if isinstance(options, dict) else 10
    except (TypeError, ValueError):
        return Response(status=400, body={"error": "send {\"items\": N}"})
    if not 1 <= items <= 10_000:
        return Response(status=400, body={"error": "items: 1 to 10000"})
    if context.task is None:
        task_id = context.enqueue(context.function.name, {"items": items})
        return Response(status=202, body={"task_id": task_id, "items": items})
    total = 0
    for index in range(items):
        total += process(index)
        context.task.progress((index + 1) / items, f"{index + 1} of {items}")
    return {"items": items, "sum_of_squares": total}
