"""A named counter in the tenant's key-value store.

    hyac invoke counter -X POST --query name=visits       # add one, answer the count
    hyac invoke counter --method GET --query name=visits  # read without counting

Two requests at the same instant may read the same value; for counts that must never
miss one, keep them in ``context.db`` with ``UPDATE ... SET n = n + 1``.
"""

import re

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


async def main(context: FunctionContext):
    name = context.request.query.get("name", "default")
    if not NAME.match(name):
        return Response(status=400, body={"error": "name: 1 to 64 letters, digits, '_', '.', '-'"})
    key = f"counter/{name}"
    count = int(await context.kv.aget(key, 0))
    if context.request.method == "POST":
        count += 1
        await context.kv.aset(key, count)
    return {"name": name, "count": count}
