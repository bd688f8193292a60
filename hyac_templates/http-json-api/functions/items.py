"""A JSON resource with validation.

    POST /items {"name": "widget", "quantity": 3, "tags": ["blue"]}  -> 201 + the item
    GET  /items                                                       -> every item
    GET  /items?id=ID                                                 -> one item (404 if none)

Invalid input is 422 with one message per field. Items live in the tenant's key-value
store under ``items/``.
"""

import uuid

MAX_NAME = 100
MAX_TAGS = 10


def validate(payload):
    """The item and a list of errors, one per bad field."""
    errors = {}
    if not isinstance(payload, dict):
        return None, {"body": "expected a JSON object"}
    unknown = sorted(set(payload) - {"name", "quantity", "tags"})
    if unknown:
        errors["body"] = f"unknown fields: {', '.join(unknown)}"
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "required, a non-empty string"
    elif len(name) > MAX_NAME:
        errors["name"] = f"at most {MAX_NAME} characters"
    quantity = payload.get("quantity", 0)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        errors["quantity"] = "a whole number, 0 or more"
    tags = payload.get("tags", [])
    if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(
        isinstance(tag, str) and 0 < len(tag) <= 32 for tag in tags
    ):
        errors["tags"] = f"a list of at most {MAX_TAGS} strings of 1 to 32 characters"
    if errors:
        return None, errors
    return {"name": name.strip(), "quantity": quantity, "tags": tags}, {}


async def main(context: FunctionContext):
    if context.request.method == "GET":
        item_id = context.request.query.get("id")
        if item_id:
            item = await context.kv.aget(f"items/{item_id}")
            if item is None:
                return Response(status=404, body={"error": f"no item {item_id!r}"})
            return item
        keys = await context.kv.alist("items/", limit=100)
        return {"items": [await context.kv.aget(key) for key in keys]}
    if context.request.method != "POST":
        return Response(status=405, headers={"allow": "GET, POST"}, body={"error": "use GET or POST"})
    try:
        payload = context.request.json()
    except ValueError as exc:
        return Response(status=400, body={"error": str(exc)})
    item, errors = validate(payload)
    if errors:
        return Response(status=422, body={"errors": errors})
    item["id"] = uuid.uuid4().hex[:12]
    await context.kv.aset(f"items/{item['id']}", item)
    context.logger.info("stored item %s", item["id"])
    return Response(status=201, body=item)
