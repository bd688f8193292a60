"""The template registry: templates are projects others start from (``hyac init
--template``), published by any user, approved by the platform owner, shared by remote
sources."""

from pathlib import Path
from typing import Any

from hyac_agent.templates.manifest import TemplateManifest, parse_manifest
from hyac_agent.templates.service import TemplateRegistry, Viewer


def registry_of(store: Any, data_dir: Path) -> TemplateRegistry:
    """The agent's registry on ``store`` (an SqlStore), files under DATA_DIR/templates,
    each published version scanned with the agent's advisory sources."""
    from hyac_agent.templates.scan import scan_template

    return TemplateRegistry(store.engine, data_dir / "templates",
                            scan=lambda files, runtime: scan_template(files, runtime, store))


__all__ = ["TemplateManifest", "TemplateRegistry", "Viewer", "parse_manifest", "registry_of"]
