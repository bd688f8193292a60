"""`hyac-agent doctor` warns of a Docker daemon with libnetwork's known deadlock (every
docker command hangs for good under container churn; moby/moby#46661)."""

from __future__ import annotations

import pytest

from hyac_agent.sandbox.docker import DEADLOCK_FIXED, deadlock_warning


@pytest.mark.parametrize("version", ["20.10.24+dfsg1", "20.10.5", "19.03.15", "18.09.1-ce"])
def test_a_daemon_before_the_fix_is_named_with_what_to_do(version: str) -> None:
    warning = deadlock_warning(version)
    assert warning is not None
    assert version in warning and "moby/moby#46661" in warning
    assert ".".join(map(str, DEADLOCK_FIXED)) in warning


@pytest.mark.parametrize("version", ["20.10.27", "20.10.27+dfsg1", "23.0.0", "26.1.5+dfsg1", "",
                                     None, "unknown"])
def test_a_fixed_or_unknown_daemon_gets_no_warning(version: str | None) -> None:
    assert deadlock_warning(version) is None
