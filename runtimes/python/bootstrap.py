"""Hyac's Python worker, as the sandbox starts it: ``python -I -B RUNTIME_DIR/bootstrap.py``.

The worker itself is ``_hyac_worker`` beside this file (docs/protocol.md). A script is
compiled from its source on every start, and only imported modules are read from their
bytecode, so this entry stays a few lines: compiling the worker's 600 would cost each
cold start several milliseconds.
"""

import os
import sys

# Under -I the script's directory is not on sys.path; the runtime dir may be mounted
# anywhere (read-only), so the worker's modules are found from this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _hyac_worker import main  # noqa: E402

if __name__ == "__main__":
    main()
