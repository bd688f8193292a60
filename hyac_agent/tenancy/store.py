"""Durable state of the tenancy layer, on the main store's SQLAlchemy engine."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from hyac_agent.tenancy import tables as t


@dataclass(frozen=True)
class TokenRecord:
    id: str
    user: str
    tenant: str | None
    name: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    created_by: str
    #: the token that made it (None: made with the agent's token)
    parent: str | None = None


def _token(row: Any) -> TokenRecord:
    return TokenRecord(row.id, row.user, row.tenant, row.name, row.created_at, row.expires_at,
                       row.revoked_at, row.created_by, row.parent)


def new_user_id() -> str:
    return "usr_" + secrets.token_hex(8)


#: how many generations of tokens a token may descend from
MAX_TOKEN_DEPTH = 32


class TenancyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        t.metadata.create_all(self.engine)
        self._add_columns()
        with self.engine.begin() as conn:  # users made before they had ids
            for name in conn.execute(select(t.users.c.name).where(t.users.c.id.is_(None))).scalars():
                conn.execute(update(t.users).where(t.users.c.name == name, t.users.c.id.is_(None))
                             .values(id=new_user_id()))

    def _add_columns(self) -> None:
        """Columns of tables older stores made without them (nullable, so old rows read as
        'not recorded')."""
        for table, column in t.ADDED_COLUMNS:
            present = {c["name"] for c in inspect(self.engine).get_columns(table.name)}
            if column in present:
                continue
            kind = table.c[column].type.compile(self.engine.dialect)
            preparer = self.engine.dialect.identifier_preparer
            try:
                with self.engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {preparer.quote(table.name)} "
                                      f"ADD COLUMN {preparer.quote(column)} {kind}"))
            except DBAPIError:  # another agent on the same store added it meanwhile
                if column not in {c["name"] for c in inspect(self.engine).get_columns(table.name)}:
                    raise
        for index in t.tokens.indexes:  # (create_all makes indexes only with new tables)
            index.create(self.engine, checkfirst=True)

    # tenants --------------------------------------------------------------------------

    def create_tenant(self, name: str, egress: str = "none") -> bool:
        with self.engine.begin() as conn:
            if conn.execute(select(t.tenants.c.name).where(t.tenants.c.name == name)).first():
                return False
            conn.execute(insert(t.tenants).values(name=name, created_at=time.time(), egress=egress))
            return True

    def get_tenant(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.tenants).where(t.tenants.c.name == name)).first()
        return None if row is None else {"name": row.name, "created_at": row.created_at,
                                          "egress": _decode_egress(row.egress)}

    def list_tenants(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.tenants).order_by(t.tenants.c.name)).all()
        return [{"name": r.name, "created_at": r.created_at, "egress": _decode_egress(r.egress)}
                for r in rows]

    def set_egress(self, name: str, egress: str | list[str]) -> None:
        value = egress if isinstance(egress, str) else json.dumps(egress)
        with self.engine.begin() as conn:
            conn.execute(update(t.tenants).where(t.tenants.c.name == name).values(egress=value))

    def delete_tenant(self, name: str) -> None:
        """Everything of the tenant kept in the store's database, in one transaction (its
        functions are removed before, through the main store; its database after)."""
        from hyac_agent.edge.store import forget
        from hyac_agent.metrics.tables import invocations
        from hyac_agent.notify.tables import forget as forget_notifications
        from hyac_agent.store import tables as store_tables
        from hyac_agent.store.task_tables import tasks

        with self.engine.begin() as conn:
            for table, column in ((t.tenants, "name"), (t.memberships, "tenant"),
                                  (t.secrets, "tenant"), (t.env, "tenant"), (t.quotas, "tenant"),
                                  (t.usage, "tenant"), (t.objects, "tenant"),
                                  (store_tables.kv, "tenant"), (store_tables.logs, "tenant"),
                                  (tasks, "tenant"), (invocations, "tenant")):
                conn.execute(delete(table).where(table.c[column] == name))
            # Its tokens go too (a token of a tenant makes only tokens of that tenant),
            # and its audit log but for the record of the removal, written after this.
            conn.execute(delete(t.tokens).where(t.tokens.c.tenant == name))
            conn.execute(delete(t.audit).where(t.audit.c.tenant == name))
            # and its edge: IP rules, access settings and keys, domains and certificates
            forget(conn, name)
            # and its notification channels and what it sent
            forget_notifications(conn, name)

    # users and roles ------------------------------------------------------------------

    def ensure_user(self, name: str, owner: bool = False) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
            if row is None:
                conn.execute(insert(t.users).values(name=name, owner=int(owner), created_at=time.time(),
                                                    id=new_user_id()))
            elif owner and not row.owner:
                conn.execute(update(t.users).where(t.users.c.name == name).values(owner=1))

    def get_user(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
            if row is None:
                return None
            roles = conn.execute(
                select(t.memberships.c.tenant, t.memberships.c.role).where(t.memberships.c.user == name)
            ).all()
        return {"name": row.name, "id": row.id, "owner": bool(row.owner),
                "created_at": row.created_at, "roles": {r.tenant: r.role for r in roles}}

    def list_users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            names = list(conn.execute(select(t.users.c.name).order_by(t.users.c.name)).scalars())
        return [u for u in (self.get_user(n) for n in names) if u]

    def delete_user(self, name: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(delete(t.users).where(t.users.c.name == name)).rowcount
            conn.execute(delete(t.memberships).where(t.memberships.c.user == name))
            conn.execute(
                update(t.tokens).where(t.tokens.c.user == name, t.tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(gone)

    def set_role(self, user: str, tenant: str, role: str) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t.memberships)
                .where(t.memberships.c.user == user, t.memberships.c.tenant == tenant)
                .values(role=role)
            ).rowcount
            if not changed:
                conn.execute(insert(t.memberships).values(
                    user=user, tenant=tenant, role=role, created_at=time.time()
                ))

    def remove_member(self, user: str, tenant: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(t.memberships).where(
                    t.memberships.c.user == user, t.memberships.c.tenant == tenant
                )
            ).rowcount
            conn.execute(
                update(t.tokens)
                .where(t.tokens.c.user == user, t.tokens.c.tenant == tenant,
                       t.tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(gone)

    def members(self, tenant: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.memberships).where(t.memberships.c.tenant == tenant)
                .order_by(t.memberships.c.user)
            ).all()
        return [{"name": r.user, "role": r.role, "created_at": r.created_at} for r in rows]

    def tenants_of(self, user: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.memberships.c.tenant, t.memberships.c.role).where(t.memberships.c.user == user)
            ).all()
        return {r.tenant: r.role for r in rows}

    # tokens ---------------------------------------------------------------------------

    def add_token(self, token_id: str, digest: str, user: str, tenant: str | None, name: str,
                  expires_at: float | None, created_by: str, parent: str | None) -> TokenRecord:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(t.tokens).values(
                id=token_id, hash=digest, user=user, tenant=tenant, name=name, created_at=now,
                expires_at=expires_at, revoked_at=None, created_by=created_by, parent=parent,
            ))
        return TokenRecord(token_id, user, tenant, name, now, expires_at, None, created_by, parent)

    def ancestors(self, token: TokenRecord) -> list[TokenRecord]:
        """The tokens ``token`` descends from, its parent first."""
        found: list[TokenRecord] = []
        parent = token.parent
        while parent is not None and len(found) < MAX_TOKEN_DEPTH:
            record = self.get_token(parent)
            if record is None:  # (deleted with its tenant: as good as revoked)
                found.append(TokenRecord(parent, "", None, "", 0.0, None, 0.0, ""))
                break
            found.append(record)
            parent = record.parent
        return found

    def token_by_hash(self, digest: str) -> TokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.tokens).where(t.tokens.c.hash == digest)).first()
        return None if row is None else _token(row)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def list_tokens(self) -> list[TokenRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.tokens).order_by(t.tokens.c.created_at)).all()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        """Revoke the token and every token it made, transitively."""
        now = time.time()
        with self.engine.begin() as conn:
            ids = [token_id]
            for _ in range(MAX_TOKEN_DEPTH + 1):
                conn.execute(
                    update(t.tokens).where(t.tokens.c.id.in_(ids), t.tokens.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                ids = list(conn.execute(
                    select(t.tokens.c.id).where(t.tokens.c.parent.in_(ids))).scalars())
                if not ids:
                    break

    # secrets and env ------------------------------------------------------------------

    def set_secret(self, tenant: str, name: str, encrypted: str) -> None:
        self._upsert(t.secrets, tenant, "name", name, encrypted)

    def secrets_of(self, tenant: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.secrets.c.name, t.secrets.c.value).where(t.secrets.c.tenant == tenant)
            ).all()
        return {r.name: r.value for r in rows}

    def delete_secret(self, tenant: str, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(
                delete(t.secrets).where(t.secrets.c.tenant == tenant, t.secrets.c.name == name)
            ).rowcount)

    def set_env(self, tenant: str, key: str, value: str) -> None:
        self._upsert(t.env, tenant, "key", key, value)

    def env_of(self, tenant: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.env.c.key, t.env.c.value).where(t.env.c.tenant == tenant).order_by(t.env.c.key)
            ).all()
        return {r.key: r.value for r in rows}

    def delete_env(self, tenant: str, key: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(
                delete(t.env).where(t.env.c.tenant == tenant, t.env.c.key == key)
            ).rowcount)

    def _upsert(self, table: Any, tenant: str, key_column: str, key: str, value: str) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(table).where(table.c.tenant == tenant, table.c[key_column] == key)
                .values(value=value, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(insert(table).values(
                    tenant=tenant, **{key_column: key}, value=value, updated_at=now
                ))

    # quotas and usage -----------------------------------------------------------------

    def quotas_of(self, tenant: str) -> dict[str, float]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.quotas.c.name, t.quotas.c.value).where(t.quotas.c.tenant == tenant)
            ).all()
        return {r.name: r.value for r in rows}

    def set_quotas(self, tenant: str, values: dict[str, float | None]) -> None:
        with self.engine.begin() as conn:
            for name, value in values.items():
                conn.execute(delete(t.quotas).where(t.quotas.c.tenant == tenant, t.quotas.c.name == name))
                if value is not None:
                    conn.execute(insert(t.quotas).values(tenant=tenant, name=name, value=value))

    def add_usage(self, counts: dict[tuple[str, str], int]) -> None:
        with self.engine.begin() as conn:
            for (tenant, window), count in counts.items():
                changed = conn.execute(
                    update(t.usage).where(t.usage.c.tenant == tenant, t.usage.c.window == window)
                    .values(count=t.usage.c.count + count)
                ).rowcount
                if not changed:
                    conn.execute(insert(t.usage).values(tenant=tenant, window=window, count=count))

    def usage_in(self, windows: list[str]) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.usage).where(t.usage.c.window.in_(windows))).all()
        # `count` is also a method of rows (they are tuples): read it by name.
        return {(r.tenant, r.window): int(r._mapping["count"]) for r in rows}

    def trim_usage(self, keep_windows: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.usage).where(t.usage.c.window.not_in(keep_windows)))

    def kv_bytes(self, tenant: str) -> int:
        from hyac_agent.store import tables as store_tables

        kv = store_tables.kv
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.coalesce(func.sum(func.length(kv.c.key) + func.length(kv.c.value)), 0))
                .where(kv.c.tenant == tenant)
            ).scalar()
        return int(value or 0)

    def kv_key_size(self, tenant: str, key: str) -> int:
        from hyac_agent.store import tables as store_tables

        kv = store_tables.kv
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.length(kv.c.key) + func.length(kv.c.value))
                .where(kv.c.tenant == tenant, kv.c.key == key)
            ).scalar()
        return int(value or 0)

    # audit ----------------------------------------------------------------------------

    def append_audit(self, entry: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(t.audit).values(**entry))

    def query_audit(self, tenants: list[str] | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        query = select(t.audit)
        if tenants is not None:
            query = query.where(t.audit.c.tenant.in_(tenants))
        if since is not None:
            query = query.where(t.audit.c.ts >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.audit.c.id.desc()).limit(limit)).all()
        return [
            {"ts": r.ts, "actor": r.actor, "actor_kind": r.actor_kind, "actor_id": r.actor_id,
             "actor_token": r.actor_token, "tenant": r.tenant, "action": r.action,
             "target": r.target, "result": r.result, "client": r.client}
            for r in reversed(rows)
        ]


def _decode_egress(value: str | None) -> str | list[str]:
    if not value or value in ("none", "allow"):
        return value or "none"
    try:
        decoded = json.loads(value)
    except ValueError:
        return "none"
    return [str(v) for v in decoded] if isinstance(decoded, list) else "none"
