"""What the cluster tests share: a fresh PostgreSQL database, reachability."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "HYAC_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (its URL), dropped afterwards; skips, naming why,
    when there is no server."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = "hyac_test_" + secrets.token_hex(4)
    try:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def shared_keys(*data_dirs: Path) -> None:
    """The files every node of a cluster shares, made once and put in each data dir: the
    key tenants' secrets are encrypted with, and the owner's token (docs/cluster.md)."""
    from cryptography.fernet import Fernet

    key, token = Fernet.generate_key(), ("hyac_" + secrets.token_urlsafe(32)).encode()
    for data_dir in data_dirs:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, content in (("secrets.key", key), ("agent.token", token)):
            (data_dir / name).write_bytes(content)
            (data_dir / name).chmod(0o600)
