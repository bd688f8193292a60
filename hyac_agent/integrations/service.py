"""Integrations configured once for the platform: stored, shown, changed and tested.

Each value comes from the first of: the agent's configuration (a ``HYAC_*`` variable or
the command line: the environment wins, and ``show`` says so), the store (set through
the API; secrets encrypted with the tenants' secrets key, never returned), the
setting's default. Every agent sharing the store sees a change within
:data:`REFRESH_SECONDS`, the one that made it at once; consumers read :meth:`values`
each time they act, so nothing needs a restart. A change is saved whole or not at all:
values are parsed, checked by their kind and (where the kind asks) tried for real
before anything is written.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from hyac_agent.integrations import tables as t
from hyac_agent.integrations.kinds import IntegrationKind, check_kind_name
from hyac_agent.tenancy.secrets import load_or_create_key
from hyac_common.errors import InvalidInput, NotFound
from hyac_common.wire import IntegrationSettingView, IntegrationView

#: how old a value read from the store may be before it is read again
REFRESH_SECONDS = 2.0
SET = "set"


class _Stored:
    """One kind's row: plain and (decrypted) secret values."""

    def __init__(self, values: dict[str, Any], updated_at: float | None, updated_by: str) -> None:
        self.values = values
        self.updated_at = updated_at
        self.updated_by = updated_by
        self.read_at = time.monotonic()


class IntegrationService:
    def __init__(self, engine: Engine, data_dir: Path, config: BaseModel,
                 kinds: list[IntegrationKind]) -> None:
        from cryptography.fernet import Fernet

        self.engine = engine
        t.metadata.create_all(engine, checkfirst=True)
        self._box = Fernet(load_or_create_key(data_dir))
        #: the agent's configuration: a field set in it (from the environment or the
        #: command line) wins over the store
        self._config = config
        self._kinds: dict[str, IntegrationKind] = {}
        self._cache: dict[str, _Stored] = {}
        self._lock = threading.Lock()
        for kind in kinds:
            self.register(kind)

    def register(self, kind: IntegrationKind) -> None:
        check_kind_name(kind.name)
        if kind.name in self._kinds:
            raise ValueError(f"integration kind {kind.name!r} registered twice")
        self._kinds[kind.name] = kind

    def kind(self, name: str) -> IntegrationKind:
        found = self._kinds.get(check_kind_name(name))
        if found is None:
            raise NotFound(f"no integration {name!r} (known: {', '.join(sorted(self._kinds))})")
        return found

    @property
    def names(self) -> list[str]:
        return list(self._kinds)

    # reading ----------------------------------------------------------------------------

    def values(self, name: str) -> dict[str, Any]:
        """The values in effect for kind ``name``: configuration, else store, else default
        (secrets in clear: for the agent's own use, never for an answer)."""
        kind = self.kind(name)
        stored = self._stored(name).values
        return {s.name: self._from_config(s.config_field) if self._in_config(s.env, s.config_field)
                else stored.get(s.name, s.default) for s in kind.settings}

    def view(self, name: str) -> IntegrationView:
        """What ``show`` prints: each value with where it comes from, secrets as "set"."""
        kind = self.kind(name)
        stored = self._stored(name, fresh=True)
        settings = []
        for s in kind.settings:
            if self._in_config(s.env, s.config_field):
                value, source = self._from_config(s.config_field), "env"
            elif s.name in stored.values:
                value, source = stored.values[s.name], "store"
            else:
                value, source = s.default, "default"
            if s.secret:
                value = SET if value not in (None, "") else None
            elif s.display is not None:
                value = s.display(value)
            settings.append(IntegrationSettingView(
                name=s.name, value=value, source=source, secret=s.secret, env=s.env or None,
                help=s.help, choices=list(s.choices) or None))
        return IntegrationView(
            kind=name, title=kind.title, configured=kind.configured(self.values(name)),
            settings=settings, updated_at=stored.updated_at, updated_by=stored.updated_by or None)

    def _in_config(self, env: str, field: str) -> bool:
        # An empty variable is no setting: the store's value applies.
        return bool(env) and field in self._config.model_fields_set \
            and getattr(self._config, field) not in ("", None)

    def _from_config(self, field: str) -> Any:
        return getattr(self._config, field)

    def _stored(self, name: str, fresh: bool = False) -> _Stored:
        cached = self._cache.get(name)
        if cached is not None and not fresh and time.monotonic() - cached.read_at < REFRESH_SECONDS:
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(select(t.integrations).where(t.integrations.c.kind == name)).first()
        if row is None:
            loaded = _Stored({}, None, "")
        else:
            values = json.loads(row.plain or "{}")
            if row.secret:
                values.update(json.loads(self._box.decrypt(row.secret.encode())))
            loaded = _Stored(values, row.updated_at, row.updated_by)
        self._cache[name] = loaded
        return loaded

    # changing ---------------------------------------------------------------------------

    def set(self, name: str, changes: Mapping[str, Any], actor: str) -> IntegrationView:
        """Change some settings of ``name`` (a None or "" value removes the stored one).
        Checked, and tried where the kind asks, before anything is saved."""
        kind = self.kind(name)
        if not isinstance(changes, Mapping) or not changes:
            raise InvalidInput(f"name at least one setting of {name} to set")
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            setting = kind.setting(key)
            parsed[key] = None if value is None or value == "" else setting.parse(value)
        with self._lock:  # one change at a time on this agent: each sees the one before
            stored = dict(self._stored(name, fresh=True).values)
            for key, value in parsed.items():
                if value is None:
                    stored.pop(key, None)
                else:
                    stored[key] = value
            self._apply(kind, stored, actor, probe=kind.probe_on_set)
        return self.view(name)

    def unset(self, name: str, keys: list[str], actor: str) -> IntegrationView:
        """Remove the stored values of ``keys`` (every one if empty): the configuration or
        the defaults apply again. Checked (not tried) before anything is removed."""
        kind = self.kind(name)
        for key in keys:
            kind.setting(key)
        with self._lock:
            stored = dict(self._stored(name, fresh=True).values)
            kept = {k: v for k, v in stored.items() if keys and k not in keys}
            self._apply(kind, kept, actor, probe=False)
        return self.view(name)

    def _apply(self, kind: IntegrationKind, stored: dict[str, Any], actor: str, probe: bool) -> None:
        old = self.values(kind.name)
        new = self._effective(kind, stored)
        kind.check(new, old)
        if probe and kind.configured(new):
            kind.probe(new, {})
        self._write(kind, stored, actor)

    def _effective(self, kind: IntegrationKind, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {s.name: self._from_config(s.config_field) if self._in_config(s.env, s.config_field)
                else stored.get(s.name, s.default) for s in kind.settings}

    def _write(self, kind: IntegrationKind, stored: dict[str, Any], actor: str) -> None:
        secret_names = {s.name for s in kind.settings if s.secret}
        plain = json.dumps({k: v for k, v in stored.items() if k not in secret_names})
        secrets = {k: v for k, v in stored.items() if k in secret_names}
        token = self._box.encrypt(json.dumps(secrets).encode()).decode() if secrets else ""
        now = time.time()
        row = {"plain": plain, "secret": token, "updated_at": now, "updated_by": actor[:63]}
        where = t.integrations.c.kind == kind.name
        with self.engine.begin() as conn:
            if not stored:
                conn.execute(delete(t.integrations).where(where))
            elif not conn.execute(update(t.integrations).where(where).values(**row)).rowcount:
                try:
                    conn.execute(insert(t.integrations).values(kind=kind.name, **row))
                except IntegrityError:  # another agent inserted it first: ours is the later
                    conn.execute(update(t.integrations).where(where).values(**row))
        self._cache[kind.name] = _Stored(stored, now if stored else None, actor if stored else "")

    # testing ----------------------------------------------------------------------------

    def test(self, name: str, args: Mapping[str, Any]) -> str:
        """Try kind ``name`` with the values in effect: one line on success,
        IntegrationFailed (or InvalidInput for the test's own arguments) otherwise."""
        kind = self.kind(name)
        values = self.values(name)
        if not kind.configured(values):
            raise InvalidInput(f"{name} is not configured; nothing to test")
        return kind.probe(values, args)
