"""The baseline of the wasm group: the same CPython WASI module run by plain wasmtime,
with none of Hyac around it. Run by ``hyac-wasm-host`` (the python3.12-wasm launcher,
which provides wasmtime and HYAC_WASM_HOME); prints one JSON object:

- ``load``: building the engine and deserializing the precompiled module (s);
- ``fresh``: each of ``RUNS`` fresh instances running ``python -c pass`` on the loaded
  module (s): what every invocation would cost without warm instances.

    hyac-wasm-host benchmarks/wasm_plain.py RUNS
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtimes" / "python"
sys.path.insert(0, str(RUNTIME_DIR))

import wasm_host  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    wasmtime = wasm_host._wasmtime()
    started = time.perf_counter()
    engine = wasm_host.make_engine(wasmtime)
    module = wasm_host.load_module(wasmtime, engine, os.environ["HYAC_WASM_HOME"])
    load = time.perf_counter() - started
    fresh = []
    for _ in range(runs):
        started = time.perf_counter()
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["python3.12", "-I", "-B", "-c", "pass"]
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        store.set_epoch_deadline(1)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        try:
            linker.instantiate(store, module).exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise
        fresh.append(time.perf_counter() - started)
    print(json.dumps({"load": load, "fresh": fresh}))
    sys.stdout.flush()
    os._exit(0)  # as the worker host does: no engine teardown in interpreter finalisation


if __name__ == "__main__":
    main()
