"""The templates Hyac ships: published into every registry at start, approved, under the
publisher ``builtin`` (so no one else can take their names)."""

from __future__ import annotations

import logging
from pathlib import Path

from hyac_agent.templates.files import check_template, collect_dir
from hyac_agent.templates.service import APPROVED, BUILTIN, TemplateRegistry, Viewer
from hyac_common.errors import TemplateNameTaken, TemplateVersionExists

log = logging.getLogger(__name__)
BUILTIN_VIEWER = Viewer(id=BUILTIN, name="Hyac", owner=False)


def builtin_root() -> Path:
    shipped = Path(__file__).resolve().parent.parent.parent / "hyac_common" / "templates"
    if shipped.is_dir():  # an installed wheel (pyproject force-includes them there)
        return shipped
    return Path(__file__).resolve().parent.parent.parent / "hyac_templates"  # a source checkout


def builtin_dirs() -> list[Path]:
    root = builtin_root()
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir() if (path / "template.toml").is_file())


def seed(registry: TemplateRegistry) -> int:
    """Publish each built-in template version the registry does not hold yet."""
    added = 0
    for folder in builtin_dirs():
        files = collect_dir(folder)
        manifest = check_template(files)
        try:
            registry.add_version(files, manifest, BUILTIN_VIEWER, APPROVED)
        except TemplateVersionExists:
            continue  # seeded by an earlier start
        except TemplateNameTaken:
            # a user published the name before this release shipped a template of it:
            # theirs it stays, and the registry works on without this built-in
            log.warning("built-in template %s is not offered: a user's template holds the name",
                        manifest.name)
            continue
        added += 1
    if added:
        log.info("template registry: %d built-in template versions added", added)
    return added
