"""Run ``udevadm test --action=add`` on device nodes, inside a private mount namespace.

Usage (as root): ``unshare --mount --propagation private PYTHON udevtest_ns.py SPEC.json``

``udevadm test`` really applies the rules: it changes owners and modes under /dev and makes
links. So this runs only in its own mount namespace, with tmpfs on /dev, /run and
/etc/udev/rules.d and a group file that has "labpower". Each node is created (as devtmpfs
would), udevadm is run on its sysfs device, and what it left in /dev is reported as JSON on
stdout: owner group, mode, every link under /dev/labpower, and udevadm's output.

SPEC: {"host_mount_ns": the caller's /proc/self/ns/mnt, "rules": [FILE...], "group": FILE,
       "udevadm": PATH,
       "nodes": [{"syspath": "/sys/class/tty/tty1", "devname": "tty1", "major": 4, "minor": 1}]}
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    # Refuse to run where it would change the host's /dev: the caller must unshare first.
    if os.readlink("/proc/self/ns/mnt") == spec["host_mount_ns"]:
        print("refusing to run in the host's mount namespace", file=sys.stderr)
        return 2
    mount("--make-rprivate", "/")
    for d in ("/dev", "/run"):
        mount("-t", "tmpfs", "tmpfs", d)
    os.makedirs("/etc/udev/rules.d", exist_ok=True)
    mount("-t", "tmpfs", "tmpfs", "/etc/udev/rules.d")
    for rules in spec["rules"]:
        shutil.copy(rules, "/etc/udev/rules.d/")
    mount("--bind", spec["group"], "/etc/group")

    results = []
    for node in spec["nodes"]:
        dev = "/dev/" + node["devname"]
        os.makedirs(os.path.dirname(dev), exist_ok=True)
        os.mknod(dev, 0o600 | stat.S_IFCHR, os.makedev(node["major"], node["minor"]))
        run = subprocess.run(
            [spec["udevadm"], "test", "--action=add", node["syspath"]],
            capture_output=True,
            text=True,
            check=False,
        )
        st = os.stat(dev)
        links = {}
        if os.path.isdir("/dev/labpower"):
            for name in sorted(os.listdir("/dev/labpower")):
                target = os.path.normpath(
                    os.path.join("/dev/labpower", os.readlink("/dev/labpower/" + name))
                )
                links[name] = target
        results.append(
            {
                "devname": node["devname"],
                "gid": st.st_gid,
                "mode": stat.S_IMODE(st.st_mode),
                "links": links,
                "output": run.stdout + run.stderr,
                "returncode": run.returncode,
            }
        )
        # the next node starts from a clean /dev/labpower
        shutil.rmtree("/dev/labpower", ignore_errors=True)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
