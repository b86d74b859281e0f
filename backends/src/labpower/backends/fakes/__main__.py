"""``python -m labpower.backends.fakes BUS_FILE MODULE [ARGS...]``: run MODULE (as
``python -m MODULE ARGS...`` would) in a fake USB world, the :class:`FileBus` at BUS_FILE.

The testing entry point for programs that a test starts as child processes (the daemon,
``labpower-discover``): the fakes are installed before MODULE runs, and nothing in the
program itself knows about them.
"""

from __future__ import annotations

import runpy
import sys

from labpower.backends.fakes import FileBus, install


def main(argv: list[str]) -> None:
    """:raises SystemExit: usage error (2), or MODULE's own exit."""
    if len(argv) < 2:
        print("usage: python -m labpower.backends.fakes BUS_FILE MODULE [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    bus_file, module, *args = argv
    with install(FileBus(bus_file)):
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
