"""The committed CodeMirror bundle of the console editor is exactly what
scripts/build-editor.sh builds from the locked packages (CI has Node 20), and it needs
nothing the console's CSP forbids."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "hyac_agent" / "console" / "static" / "vendor" / "codemirror.js"


def test_the_committed_bundle_matches_a_rebuild() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: apt-get install -y nodejs npm (Node 20) to check "
                    "the editor bundle against a rebuild")
    result = subprocess.run([str(REPO / "scripts" / "build-editor.sh"), "--check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bundle_evaluates_no_strings() -> None:
    text = BUNDLE.read_text(encoding="utf-8")
    assert "createEditor" in text
    for forbidden in ("eval(", "new Function(", "innerHTML="):
        assert forbidden not in text, forbidden
