"""Write docs/api.md's table of error codes from the classes in hyac_common/errors.py.

    .venv/bin/python scripts/error_codes.py           # rewrite the table in docs/api.md
    .venv/bin/python scripts/error_codes.py --check   # exit 1 if the table is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hyac_common.errors import with_table  # noqa: E402

DOC = REPO / "docs" / "api.md"


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    wanted = with_table(current)
    if argv == ["--check"]:
        if wanted != current:
            print(f"{DOC} is stale: run python scripts/error_codes.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    DOC.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
