"""Integrations configured once for the platform (``/v1/system/integrations``): a small
registry of kinds (:class:`IntegrationKind`), each a set of settings the service stores
(secrets encrypted), shows (with where each value comes from), checks, tests and applies
without a restart."""

from hyac_agent.integrations.kinds import IntegrationKind, Setting
from hyac_agent.integrations.service import IntegrationService

__all__ = ["IntegrationKind", "IntegrationService", "Setting"]
