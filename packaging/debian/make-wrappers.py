"""Write /usr/bin wrappers for the console scripts of labpower's three distributions.

Run by debian/rules with the private venv's Python: ``python3 make-wrappers.py BINDIR``.
Each wrapper is a shell script that runs the entry point in /usr/lib/labpower's Python,
isolated (-I: no PYTHONPATH, no user site, no current directory on sys.path), so the lab
host's own Python packages can neither shadow nor break labpower's.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

VENV_PYTHON = "/usr/lib/labpower/bin/python3"
DISTRIBUTIONS = ("labpower-client", "labpower-backends", "labpower-daemon")


def wrapper(name: str, module: str, function: str) -> str:
    code = (
        f'import sys; sys.argv[0] = "{name}"; '
        f"from {module} import {function}; sys.exit({function}())"
    )
    return (
        "#!/bin/sh\n"
        f"# {name}: {module}:{function} in labpower's private Python environment\n"
        f"exec {VENV_PYTHON} -I -c '{code}' \"$@\"\n"
    )


def main() -> int:
    bindir = Path(sys.argv[1])
    bindir.mkdir(parents=True, exist_ok=True)
    for dist in DISTRIBUTIONS:
        for ep in importlib.metadata.distribution(dist).entry_points:
            if ep.group != "console_scripts":
                continue
            path = bindir / ep.name
            path.write_text(wrapper(ep.name, ep.module, ep.attr))
            path.chmod(0o755)
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
