"""Install pure-Python wheels into the running venv: ``install_wheels.py WHEEL...``.

What pip does for a pure-Python wheel without dependencies (unpack into site-packages with
its .dist-info, so entry points are found; write the console scripts; byte-compile), without
pip's start-up and resolver: under the guest's software emulation ``pip install`` of the three
labpower wheels takes about 15 s, this about 3. Byte-compiling matters: the daemon and the
users run the code without write access to site-packages, so every start would compile it.
"""

from __future__ import annotations

import compileall
import configparser
import sys
import sysconfig
import zipfile
from pathlib import Path

SCRIPT = """#!{python}
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.exit({call}())
"""


def install(wheel: Path, site: Path, bindir: Path) -> list[Path]:
    """Unpack ``wheel`` into ``site`` and write its console scripts into ``bindir``; returns
    the top-level directories it installed.

    :raises ValueError: not a pure-Python wheel.
    """
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if any(n.split("/", 1)[0].endswith(".data") for n in names):
            raise ValueError(f"{wheel.name}: has a .data directory, use pip")
        zf.extractall(site)
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        scripts = configparser.ConfigParser(delimiters=("=",))
        scripts.optionxform = str  # type: ignore[assignment,method-assign]  # keep the case
        if entry_points is not None:
            scripts.read_string(zf.read(entry_points).decode())
    if scripts.has_section("console_scripts"):
        for name, ref in scripts.items("console_scripts"):
            module, _, attr = ref.strip().partition(":")
            head = attr.split(".", 1)[0]
            path = bindir / name
            path.write_text(
                SCRIPT.format(python=sys.executable, module=module, head=head, call=attr)
            )
            path.chmod(0o755)
    return sorted({site / n.split("/", 1)[0] for n in names if "/" in n})


def main(wheels: list[str]) -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    bindir = Path(sys.prefix) / "bin"
    tops: set[Path] = set()
    for wheel in wheels:
        tops.update(install(Path(wheel), site, bindir))
    ok = True
    for top in sorted(tops):
        if top.is_dir() and not top.name.endswith(".dist-info"):
            ok = compileall.compile_dir(top, quiet=1) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
