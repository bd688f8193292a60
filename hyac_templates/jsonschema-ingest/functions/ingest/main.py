"""Validates records against schema.json (JSON Schema 2020-12) and stores them.

    POST {"device": "t-1", "temperature": 21.5, "at": "2026-01-01T12:00:00Z"}   -> 201
    POST [record, record, ...]                                                   -> 201, all or none
    GET                                                                          -> the newest 50

A record that does not match gets 422 with each error's path and message, and nothing is
stored. Edit schema.json to change what is accepted.
"""

import json
import time
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA = json.loads((Path(__file__).parent / "schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
TABLE = ("CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY AUTOINCREMENT, "
         "received_at REAL NOT NULL, record TEXT NOT NULL)")


def main(context: FunctionContext):
    context.db.execute(TABLE)
    if context.request.method == "GET":
        rows = context.db.fetchall(
            "SELECT id, received_at, record FROM readings ORDER BY id DESC LIMIT 50")
        return [{"id": row["id"], "received_at": row["received_at"], **json.loads(row["record"])}
                for row in rows]
    try:
        payload = context.request.json()
    except ValueError as exc:
        return Response(status=400, body={"error": str(exc)})
    records = payload if isinstance(payload, list) else [payload]
    if not 1 <= len(records) <= 500:
        return Response(status=400, body={"error": "send 1 to 500 records"})
    errors = []
    for index, record in enumerate(records):
        for error in VALIDATOR.iter_errors(record):
            path = "/".join(str(part) for part in error.absolute_path)
            errors.append({"record": index, "path": path or "(root)", "message": error.message})
    if errors:
        return Response(status=422, body={"errors": errors[:50]})
    now = time.time()
    with context.db.transaction():
        for record in records:
            context.db.execute("INSERT INTO readings (received_at, record) VALUES (?, ?)",
                               [now, json.dumps(record)])
    return Response(status=201, body={"stored": len(records)})
