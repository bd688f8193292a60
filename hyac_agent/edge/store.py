"""Reading and writing the edge's tables (blocking: call from a thread)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from hyac_agent.edge import tables as t


@dataclass(frozen=True)
class IpRule:
    id: str
    tenant: str
    function: str | None
    domain: str | None
    action: str
    cidr: str
    note: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Access:
    tenant: str
    function: str
    mode: str = "public"
    rate_requests: int | None = None
    rate_per: float | None = None
    cors: dict[str, Any] | None = None
    signing_secret: str | None = None  # encrypted
    replay_window: float | None = None

    def public(self) -> dict[str, Any]:
        rate = ({"requests": self.rate_requests, "per_seconds": self.rate_per}
                if self.rate_requests else None)
        return {"function": self.function, "mode": self.mode, "rate_limit": rate,
                "cors": self.cors, "signing_secret_set": self.signing_secret is not None,
                "replay_window": self.replay_window}


@dataclass(frozen=True)
class Domain:
    host: str
    tenant: str
    function: str | None
    path_prefix: str
    status: str
    challenge: str
    created_at: float
    verified_at: float | None
    acme: bool = False

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "tenant": self.tenant, "function": self.function,
                "tenant_root": self.function is None, "path_prefix": self.path_prefix,
                "status": self.status, "created_at": self.created_at,
                "verified_at": self.verified_at, "acme": self.acme}


@dataclass(frozen=True)
class Certificate:
    host: str
    tenant: str
    cert_pem: str
    key_pem: str  # encrypted
    not_after: float
    fingerprint: str
    source: str
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "not_after": self.not_after, "fingerprint": self.fingerprint,
                "source": self.source, "updated_at": self.updated_at}


@dataclass
class Snapshot:
    """Everything the gateway consults, read at once."""

    rules: list[IpRule] = field(default_factory=list)
    access: dict[tuple[str, str], Access] = field(default_factory=dict)
    #: sha256 of a function key -> (tenant, function)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: the active domains by host
    domains: dict[str, Domain] = field(default_factory=dict)
    #: every claim, pending ones too
    claims: list[Domain] = field(default_factory=list)
    certificates: dict[str, Certificate] = field(default_factory=dict)


class EdgeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        t.metadata.create_all(self.engine, checkfirst=True)

    def load(self) -> Snapshot:
        snap = Snapshot()
        with self.engine.connect() as conn:
            snap.rules = [IpRule(**row._mapping) for row in conn.execute(
                select(t.ip_rules).order_by(t.ip_rules.c.created_at, t.ip_rules.c.id))]
            for row in conn.execute(select(t.access)):
                snap.access[(row.tenant, row.function)] = _access(row._mapping)
            for row in conn.execute(select(t.keys.c.hash, t.keys.c.tenant, t.keys.c.function)):
                snap.keys[row.hash] = (row.tenant, row.function)
            snap.settings = {row.key: json.loads(row.value)
                             for row in conn.execute(select(t.settings))}
            for row in conn.execute(select(t.domains).order_by(t.domains.c.host)):
                values = dict(row._mapping)
                values.pop("active_host")
                values["acme"] = bool(values["acme"])
                domain = Domain(**values)
                snap.claims.append(domain)
                if domain.status == "active":
                    snap.domains[domain.host] = domain
            for row in conn.execute(select(t.certificates)):
                snap.certificates[row.host] = Certificate(**row._mapping)
        return snap

    # IP rules -------------------------------------------------------------------------

    def add_rule(self, rule: IpRule) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(t.ip_rules).values(**rule.__dict__))

    def delete_rule(self, tenant: str, rule_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.ip_rules).where(
                t.ip_rules.c.tenant == tenant, t.ip_rules.c.id == rule_id)).rowcount)

    # access ---------------------------------------------------------------------------

    def get_access(self, tenant: str, function: str) -> Access:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.access).where(
                t.access.c.tenant == tenant, t.access.c.function == function)).first()
        return _access(row._mapping) if row is not None else Access(tenant, function)

    def put_access(self, access: Access) -> None:
        values = {"mode": access.mode, "rate_requests": access.rate_requests,
                  "rate_per": access.rate_per,
                  "cors": json.dumps(access.cors) if access.cors is not None else None,
                  "signing_secret": access.signing_secret,
                  "replay_window": access.replay_window, "updated_at": time.time()}
        where = (t.access.c.tenant == access.tenant, t.access.c.function == access.function)
        with self.engine.begin() as conn:
            if not conn.execute(update(t.access).where(*where).values(**values)).rowcount:
                conn.execute(insert(t.access).values(
                    tenant=access.tenant, function=access.function, **values))

    # function keys --------------------------------------------------------------------

    def add_key(self, key_id: str, tenant: str, function: str, name: str, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(t.keys).values(id=key_id, tenant=tenant, function=function,
                                               name=name, hash=digest, created_at=time.time()))

    def list_keys(self, tenant: str, function: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.keys.c.id, t.keys.c.name, t.keys.c.created_at).where(
                t.keys.c.tenant == tenant, t.keys.c.function == function
            ).order_by(t.keys.c.created_at))
            return [{"id": r.id, "name": r.name, "created_at": r.created_at} for r in rows]

    def delete_key(self, tenant: str, function: str, key_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.keys).where(
                t.keys.c.tenant == tenant, t.keys.c.function == function,
                t.keys.c.id == key_id)).rowcount)

    # settings -------------------------------------------------------------------------

    def put_setting(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        with self.engine.begin() as conn:
            if not conn.execute(update(t.settings).where(t.settings.c.key == key)
                                .values(value=text)).rowcount:
                conn.execute(insert(t.settings).values(key=key, value=text))

    def get_setting(self, key: str) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).scalar()
        return json.loads(value) if value is not None else None

    def delete_setting(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.settings).where(t.settings.c.key == key))

    def take_lease(self, key: str, seconds: float) -> bool:
        """True if no other holder's lease ``key`` is running (this one now is, for
        ``seconds``): one agent of a cluster does the work it guards."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                value = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).scalar()
                if value is None:
                    conn.execute(insert(t.settings).values(key=key, value=json.dumps(now + seconds)))
                    return True
                if float(json.loads(value)) > now:
                    return False
                return bool(conn.execute(update(t.settings).where(
                    t.settings.c.key == key, t.settings.c.value == value
                ).values(value=json.dumps(now + seconds))).rowcount)
        except IntegrityError:  # another agent took it meanwhile
            return False

    # domains --------------------------------------------------------------------------

    def add_domain(self, domain: Domain) -> None:
        """Insert ``domain``; IntegrityError if the tenant claims it already, or it is
        active and another claim of its host is too."""
        active = domain.host if domain.status == "active" else None
        with self.engine.begin() as conn:
            conn.execute(insert(t.domains).values(**domain.__dict__, active_host=active))

    def set_domain_acme(self, tenant: str, host: str, on: bool) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(update(t.domains).where(
                t.domains.c.host == host, t.domains.c.tenant == tenant).values(acme=int(on))).rowcount)

    def activate_domain(self, tenant: str, host: str) -> None:
        """Make the tenant's claim the active one; IntegrityError if another is."""
        with self.engine.begin() as conn:
            conn.execute(update(t.domains).where(t.domains.c.host == host,
                                                 t.domains.c.tenant == tenant)
                         .values(status="active", verified_at=time.time(), active_host=host))
            # the other claims of the host are moot once one is proved
            conn.execute(delete(t.domains).where(t.domains.c.host == host,
                                                 t.domains.c.tenant != tenant))

    def delete_domain(self, tenant: str, host: str) -> bool:
        """Remove the tenant's claim of ``host``, and its certificate."""
        with self.engine.begin() as conn:
            gone = bool(conn.execute(delete(t.domains).where(
                t.domains.c.tenant == tenant, t.domains.c.host == host)).rowcount)
            if gone:
                conn.execute(delete(t.certificates).where(t.certificates.c.host == host,
                                                          t.certificates.c.tenant == tenant))
            return gone

    # certificates ---------------------------------------------------------------------

    def put_certificate(self, cert: Certificate) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.certificates).where(t.certificates.c.host == cert.host))
            conn.execute(insert(t.certificates).values(**cert.__dict__))

    def delete_certificate(self, tenant: str, host: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.certificates).where(
                t.certificates.c.host == host, t.certificates.c.tenant == tenant)).rowcount)


def forget(conn: Connection, tenant: str, function: str | None = None) -> list[str]:
    """Delete, in the caller's transaction, the edge settings of a function being removed
    (``function`` None: of a whole tenant): its access mode, signing secret, rate limit
    and CORS, its keys, its IP rules, and the domains bound to it with their
    certificates, so a new function of the name starts public, with no key of the old
    one and no domain. The hosts of the domains removed.

    The tenant's own IP rules, domain rules and tenant-root domains are the tenant's,
    not a function's: they go with the tenant only."""

    def owned(table: Any) -> list[Any]:
        return [table.c.tenant == tenant,
                *([table.c.function == function] if function is not None else [])]

    hosts = sorted(conn.execute(select(t.domains.c.host).where(*owned(t.domains))).scalars())
    conn.execute(delete(t.certificates).where(
        t.certificates.c.tenant == tenant,
        *([t.certificates.c.host.in_(hosts)] if function is not None else [])))
    for table in (t.domains, t.keys, t.access, t.ip_rules):
        conn.execute(delete(table).where(*owned(table)))
    return hosts


def _access(row: Any) -> Access:
    values = dict(row)
    values.pop("updated_at", None)
    cors = values.get("cors")
    values["cors"] = json.loads(cors) if cors else None
    return Access(**values)
