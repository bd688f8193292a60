"""A small JSON API for a to-do list, kept in the tenant's key-value store.

    GET    /default/todos          list all items
    POST   /default/todos          create one: {"title": "..."}
    GET    /default/todos/ID       read one
    PATCH  /default/todos/ID       update: {"title": "...", "done": true}
    DELETE /default/todos/ID       delete one
"""

import uuid

PREFIX = "todo:"


def not_found(context, item_id):
    return context.Response(404, body={"error": f"no todo {item_id!r}"})


def main(context: FunctionContext):
    request = context.request
    item_id = request.path.strip("/")
    if not item_id:
        if request.method == "GET":
            keys = context.kv.list(prefix=PREFIX)
            return [context.kv.get(key) for key in keys]
        if request.method == "POST":
            body = request.json() or {}
            title = str(body.get("title", "")).strip()
            if not title:
                return context.Response(400, body={"error": "a todo needs a non-empty 'title'"})
            item = {"id": uuid.uuid4().hex[:8], "title": title, "done": False}
            context.kv.set(PREFIX + item["id"], item)
            context.logger.info("created %s", item["id"])
            return context.Response(201, body=item)
        return context.Response(405, body={"error": "use GET or POST"})

    key = PREFIX + item_id
    item = context.kv.get(key)
    if item is None:
        return not_found(context, item_id)
    if request.method == "GET":
        return item
    if request.method == "PATCH":
        changes = request.json() or {}
        if "title" in changes:
            item["title"] = str(changes["title"])
        if "done" in changes:
            item["done"] = bool(changes["done"])
        context.kv.set(key, item)
        return item
    if request.method == "DELETE":
        context.kv.delete(key)
        return context.Response(204)
    return context.Response(405, body={"error": "use GET, PATCH or DELETE"})
