"""Mails a CSV summary of the ``events`` table (kind, count, total amount).

Runs every day on the ``schedule`` of hyac.toml (the agent starts it as a background
task, with ``{"source": "schedule", ...}`` as its body), or when invoked:

    hyac invoke report --data '{"to": "ops@example.com", "since_hours": 168}'

Record events from your other functions with
``context.db.execute("INSERT INTO events (at, kind, amount) VALUES (?, ?, ?)", [...])``.
"""

import csv
import io
import time

from hyac_context import Attachment

SCHEMA = "CREATE TABLE IF NOT EXISTS events (at REAL NOT NULL, kind TEXT NOT NULL, amount REAL NOT NULL)"


def summary_csv(rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["kind", "count", "total"])
    for row in rows:
        writer.writerow([row["kind"], row["n"], f"{row['total']:.2f}"])
    return out.getvalue()


def main(context: FunctionContext):
    options = context.request.json() or {}
    if not isinstance(options, dict):
        return Response(status=400, body={"error": "expected a JSON object"})
    to = options.get("to") or context.env.get("REPORT_TO")
    if not to:
        return Response(status=400, body={"error": "no recipient: set REPORT_TO or send 'to'"})
    try:
        hours = float(options.get("since_hours", 24))
    except (TypeError, ValueError):
        return Response(status=400, body={"error": "since_hours is a number of hours"})
    since = time.time() - hours * 3600
    context.db.execute(SCHEMA)
    if options.get("demo"):
        for kind, amount in (("order", 19.5), ("order", 5.25), ("refund", -5.25)):
            context.db.execute("INSERT INTO events (at, kind, amount) VALUES (?, ?, ?)",
                               [time.time(), kind, amount])
    rows = context.db.fetchall(
        "SELECT kind, COUNT(*) AS n, SUM(amount) AS total FROM events WHERE at >= ? "
        "GROUP BY kind ORDER BY kind", [since])
    report = summary_csv(rows)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    message_id = context.mail.send(
        to, f"Report for the last {hours:g} hours ({day})",
        text=f"{len(rows)} kinds of events; the summary is attached.",
        attachments=[Attachment(f"report-{day}.csv", report, "text/csv")],
    )
    if options.get("source") == "schedule":
        context.logger.info("scheduled report mailed to %s (%d kinds)", to, len(rows))
    return {"sent_to": to, "rows": len(rows), "message_id": message_id}
