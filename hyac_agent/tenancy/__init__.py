"""Multi-tenancy: tenants, users and roles, API tokens, per-tenant databases, secrets,
env, network policy, quotas and the audit log."""

from hyac_agent.tenancy.auth import ROLES, Principal
from hyac_agent.tenancy.quotas import QUOTAS
from hyac_agent.tenancy.service import DEFAULT_TENANT, TenancyService
from hyac_common.errors import QuotaExceeded

__all__ = ["DEFAULT_TENANT", "QUOTAS", "ROLES", "Principal", "QuotaExceeded", "TenancyService"]
