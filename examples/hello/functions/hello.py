async def main(context: FunctionContext):
    """Greet whoever is named in the JSON body or the `name` query parameter."""
    body = context.request.json() or {}
    name = body.get("name") or context.request.query.get("name", "world")
    context.logger.info("greeting %s", name)
    return {"message": f"{context.env.get('GREETING', 'Hello')}, {name}!"}
