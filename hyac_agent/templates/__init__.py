"""The template registry: templates are projects others start from (``hyac init
--template``), published by any user, approved by the platform owner, shared by remote
sources."""

from hyac_agent.templates.manifest import TemplateManifest, parse_manifest
from hyac_agent.templates.service import TemplateRegistry, Viewer

__all__ = ["TemplateManifest", "TemplateRegistry", "Viewer", "parse_manifest"]
