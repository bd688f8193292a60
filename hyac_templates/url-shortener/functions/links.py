"""A URL shortener on the tenant's SQL database.

    POST {"url": "https://example.com/a/long/path"}  -> 201 {"code": "Ab3xY9", ...}
    GET  ?code=Ab3xY9                                -> 302 to the URL (counts a hit)
    GET  ?code=Ab3xY9&stats=1                        -> the link and its hits

Only http:// and https:// URLs are taken (no javascript: or data: redirects).
"""

import secrets
import time
from urllib.parse import urlsplit

ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
SCHEMA = ("CREATE TABLE IF NOT EXISTS links (code TEXT PRIMARY KEY, url TEXT NOT NULL, "
          "created_at REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0)")


def valid_url(url) -> bool:
    if not isinstance(url, str) or len(url) > 2048:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def main(context: FunctionContext):
    db = context.db
    db.execute(SCHEMA)
    if context.request.method == "POST":
        try:
            url = (context.request.json() or {}).get("url")
        except (ValueError, AttributeError):
            url = None
        if not valid_url(url):
            return Response(status=400, body={"error": "send {\"url\": \"https://...\"}"})
        for _attempt in range(5):
            code = "".join(secrets.choice(ALPHABET) for _ in range(7))
            if db.fetchone("SELECT code FROM links WHERE code = ?", [code]) is None:
                break
        db.execute("INSERT INTO links (code, url, created_at) VALUES (?, ?, ?)", [code, url, time.time()])
        return Response(status=201, body={"code": code, "url": url})
    code = context.request.query.get("code", "")
    link = db.fetchone("SELECT code, url, hits FROM links WHERE code = ?", [code])
    if link is None:
        return Response(status=404, body={"error": f"no link {code[:20]!r}"})
    if context.request.query.get("stats"):
        return link
    db.execute("UPDATE links SET hits = hits + 1 WHERE code = ?", [code])
    return Response(status=302, headers={"location": link["url"]}, body=b"")
