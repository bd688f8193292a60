"""The store interface: what the services need, nothing about how it is kept.

``Store`` is a Protocol: the services depend on these methods only. A part that needs
the SQL engine itself (the tenancy's and the metrics' own tables) is handed the engine
by the agent, not reached through the store."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from hyac_agent.store.task_base import TaskRecord, TaskStore
from hyac_common.errors import OwnedByAnotherProject
from hyac_common.wire import FunctionConfig, LogRecord, SampleRequest

__all__ = ["LOG_LINE_OVERHEAD", "FunctionRecord", "LogRetention", "Store", "TaskRecord",
           "VersionRecord", "owned_elsewhere"]

#: what a stored log line costs beyond its message (time, names, ids, the row itself)
LOG_LINE_OVERHEAD = 128


@dataclass(frozen=True)
class LogRetention:
    """How much log each tenant keeps: its newest lines up to ``bytes`` (messages plus
    LOG_LINE_OVERHEAD a line) and ``lines``, none older than ``days``. Held per tenant,
    so one tenant's flood trims only its own history."""

    bytes: int = 64 * 1024 * 1024
    lines: int = 100_000
    days: float = 30.0


@dataclass(frozen=True)
class VersionRecord:
    tenant: str
    function: str
    number: int
    sha256: str
    entry: str
    config: FunctionConfig
    created_at: float
    sample: SampleRequest | None = None

    @property
    def runtime(self) -> str:
        return self.config.runtime


@dataclass(frozen=True)
class FunctionRecord:
    tenant: str
    name: str
    active_version: int
    versions: int
    created_at: float
    updated_at: float
    project: str | None = None


def owned_elsewhere(name: str, owner: str, project: str) -> OwnedByAnotherProject:
    """The refusal of a deploy from ``project`` over a function ``owner`` deployed."""
    return OwnedByAnotherProject(
        f"function {name!r} belongs to project {owner!r}, not {project!r}: "
        f"deploy with --force to take it over",
        owner=owner, project=project,
    )


class Store(TaskStore, Protocol):
    """Durable state of one agent (or of several agents sharing one database)."""

    @abc.abstractmethod
    def create_schema(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # functions and versions
    @abc.abstractmethod
    def record_deploy(
        self, tenant: str, name: str, sha256: str, entry: str, config: FunctionConfig,
        *, project: str | None = None, take_over: bool = False, bundle: bytes | None = None,
        sample: SampleRequest | None = None,
    ) -> tuple[VersionRecord, bool]:
        """Make ``sha256`` the active version of ``tenant/name``, in one transaction.
        A new version keeps ``sample`` (part of the content ``sha256`` names).

        ``bundle`` (the packed files, hyac_agent/bundles.py) is kept as the blob
        ``sha256`` in the same transaction when the store has not got it yet, so every
        agent sharing the store can run the version.

        Returns the version and whether it is new. Identical content reuses the version
        that already holds it. A deploy naming a ``project`` records it as the owner;
        over a function another project owns it raises ``owned_elsewhere`` unless
        ``take_over``, decided in the same transaction so two projects cannot race.
        """

    @abc.abstractmethod
    def get_function(self, tenant: str, name: str) -> FunctionRecord | None: ...

    @abc.abstractmethod
    def list_functions(self, tenant: str) -> list[FunctionRecord]: ...

    @abc.abstractmethod
    def delete_function(self, tenant: str, name: str) -> list[str] | None:
        """Remove the function, its versions and its edge settings (access, keys, IP
        rules, the domains bound to it), in one transaction. None if there was no such
        function, else the hosts of the domains removed with it."""

    @abc.abstractmethod
    def function_tenants(self) -> list[str]:
        """Every tenant with at least one function, sorted."""

    @abc.abstractmethod
    def list_versions(self, tenant: str, name: str) -> list[VersionRecord]: ...

    @abc.abstractmethod
    def get_version(self, tenant: str, name: str, number: int | None = None) -> VersionRecord | None:
        """The given version, or the active one when ``number`` is None."""

    @abc.abstractmethod
    def set_active_version(self, tenant: str, name: str, number: int) -> VersionRecord: ...

    @abc.abstractmethod
    def version_with(self, tenant: str, name: str, sha256: str) -> VersionRecord | None:
        """The function's version whose bundle is ``sha256``, if it has one (looked up by
        index: a function may have thousands of versions)."""

    # bundles shared by every agent (blobs)
    @abc.abstractmethod
    def get_blob(self, sha256: str) -> tuple[bytes, str] | None:
        """The stored bytes of bundle ``sha256`` and the sha256 they were stored with."""

    @abc.abstractmethod
    def put_blob(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` as bundle ``sha256`` unless the store has it (an upgrade's
        backfill of bundles deployed before they were shared)."""

    @abc.abstractmethod
    def blob_names(self) -> set[str]:
        """The sha256 of every stored bundle."""

    @abc.abstractmethod
    def collect_blobs(self, older_than: float) -> int:
        """Delete the bundles no version references and no deploy used since
        ``older_than`` (a time.time()); the number deleted."""

    # tenant key-value
    @abc.abstractmethod
    def kv_get(self, tenant: str, key: str) -> Any: ...

    @abc.abstractmethod
    def kv_set(self, tenant: str, key: str, value: Any) -> None: ...

    @abc.abstractmethod
    def kv_delete(self, tenant: str, key: str) -> bool: ...

    @abc.abstractmethod
    def kv_list(self, tenant: str, prefix: str, limit: int) -> list[str]: ...

    # logs
    @abc.abstractmethod
    def append_logs(self, records: Iterable[LogRecord]) -> None: ...

    @abc.abstractmethod
    def query_logs(
        self, tenant: str, function: str | None, since: float | None, limit: int
    ) -> list[LogRecord]: ...

    @abc.abstractmethod
    def trim_logs(self, tenant: str, retention: LogRetention) -> int:
        """Delete ``tenant``'s oldest lines past ``retention``'s bytes and lines; the
        number deleted."""

    @abc.abstractmethod
    def expire_logs(self, before: float) -> int:
        """Delete every line older than ``before`` (a time.time()); the number deleted."""

