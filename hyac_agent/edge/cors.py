"""CORS per function: which origins, methods and headers a browser may use. The
gateway answers preflights itself and adds the headers to the function's answers."""

from __future__ import annotations

import re
from typing import Any

from hyac_common.errors import InvalidInput

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?|\*")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")


def validate(config: Any) -> dict[str, Any]:
    """``config`` as stored: origins, methods, headers, max_age, credentials."""
    if not isinstance(config, dict):
        raise InvalidInput("cors must be an object (origins, methods, headers, max_age, credentials)")
    unknown = set(config) - {"origins", "methods", "headers", "max_age", "credentials"}
    if unknown:
        raise InvalidInput(f"unknown cors field(s): {', '.join(sorted(unknown))}")
    origins = config.get("origins") or []
    if not isinstance(origins, list) or not origins or not all(
            isinstance(o, str) and _ORIGIN.fullmatch(o) for o in origins):
        raise InvalidInput("cors.origins: a list of origins like https://app.example.com, or '*'")
    methods = [str(m).upper() for m in config.get("methods") or ["GET", "POST"]]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise InvalidInput(f"cors.methods: unknown method(s) {', '.join(bad)}")
    headers = config.get("headers") or []
    if not isinstance(headers, list) or not all(isinstance(h, str) and _TOKEN.fullmatch(h)
                                                for h in headers):
        raise InvalidInput("cors.headers: a list of header names")
    max_age = config.get("max_age", 600)
    if not isinstance(max_age, int) or isinstance(max_age, bool) or not 0 <= max_age <= 86400:
        raise InvalidInput("cors.max_age: whole seconds from 0 to 86400")
    credentials = config.get("credentials", False)
    if not isinstance(credentials, bool):
        raise InvalidInput("cors.credentials: true or false")
    if credentials and "*" in origins:
        raise InvalidInput("cors: credentials cannot go with the origin '*' (name the origins)")
    return {"origins": [o.rstrip("/").lower() for o in origins], "methods": methods,
            "headers": [h.lower() for h in headers], "max_age": max_age,
            "credentials": credentials}


def origin_allowed(config: dict[str, Any], origin: str) -> bool:
    return "*" in config["origins"] or origin.rstrip("/").lower() in config["origins"]


def preflight(config: dict[str, Any], origin: str, method: str,
              requested_headers: str) -> tuple[dict[str, str] | None, str]:
    """The preflight's answer headers, or None and why it is refused."""
    if not origin_allowed(config, origin):
        return None, f"origin {origin!r} is not allowed"
    if method.upper() not in config["methods"]:
        return None, f"method {method!r} is not allowed"
    wanted = [h.strip().lower() for h in requested_headers.split(",") if h.strip()]
    refused = [h for h in wanted if h not in config["headers"]]
    if refused:
        return None, f"header(s) {', '.join(refused)} not allowed"
    headers = answer_headers(config, origin)
    headers["Access-Control-Allow-Methods"] = ", ".join(config["methods"])
    if config["headers"]:
        headers["Access-Control-Allow-Headers"] = ", ".join(config["headers"])
    headers["Access-Control-Max-Age"] = str(config["max_age"])
    return headers, ""


def answer_headers(config: dict[str, Any], origin: str) -> dict[str, str]:
    """The headers an answer to ``origin`` carries (it is allowed)."""
    headers = {"Access-Control-Allow-Origin": "*" if "*" in config["origins"]
               and not config["credentials"] else origin, "Vary": "Origin"}
    if config["credentials"]:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers
