#!/usr/bin/env bash
# Build the labpower Debian package (labpower_VERSION_ARCH.deb) from this work tree.
#
#   packaging/build-deb.sh [-o OUTDIR]     build; the .deb files land in OUTDIR
#                                          (default: build/deb in the repository)
#   packaging/build-deb.sh --print-version print the Debian version this tree builds
#
# What it does:
#   1. derives one version from git (see version() below) for the package and all three
#      Python distributions,
#   2. copies the tracked and untracked-but-not-ignored files of the work tree to a staging
#      directory, with packaging/debian/ as its debian/ and that version written into
#      debian/changelog and the three pyproject.toml files,
#   3. fetches the third-party Python dependencies pinned in uv.lock (hashes checked) into
#      wheelhouse/ of the staging tree: wheels for pure-Python ones, sources for the two with
#      C extensions (cached in ~/.cache/labpower/wheelhouse). This is the only step that
#      uses the network: debian/rules itself builds offline, as Debian builds must,
#   4. runs `dpkg-buildpackage -us -uc -b` there (debian/rules builds the private venv).
#
# Needs: git, uv (reads uv.lock), and the Build-Depends of packaging/debian/control
# (`apt-get build-dep` cannot read them from here: `./dev` installs them through APT_PACKAGES).
#
# Environment:
#   LABPOWER_DEB_VERSION   use this Debian version instead of the one derived from git
#   SOURCE_DATE_EPOCH      the changelog date (default: the last commit's date)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/labpower/wheelhouse"

# The version, from `git describe` against tags vX.Y.Z:
#   on a tag, clean tree                  X.Y.Z
#   N commits after tag vX.Y.Z            X.Y.Z+gitN.gHASH        (PEP 440: X.Y.Z.postN+gHASH)
#   no tag yet (base: root pyproject)     X.Y.Z~gitN.gHASH        (PEP 440: X.Y.Z.devN+gHASH)
#                                         N = commits in history; "~": before release X.Y.Z
#   uncommitted changes: both get .dYYYYMMDDHHMMSS (UTC) appended, so a rebuild of a changed
#   tree sorts after the last one.
# Each later commit has a bigger N, so every rebuilt package upgrades the previous one.
# Prints two words: the Debian version and the PEP 440 version.
version() {
    local desc base n hash dirty="" debian pep
    hash="$(git -C "$repo" rev-parse --short=7 HEAD)"
    if desc="$(git -C "$repo" describe --tags --long --match 'v[0-9]*' 2>/dev/null)"; then
        base="${desc%-*-g*}"
        base="${base#v}"
        n="${desc%-g*}"
        n="${n##*-}"
    else
        base="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$repo/pyproject.toml" | head -n1)"
        n="$(git -C "$repo" rev-list --count HEAD)"
    fi
    if [ -n "$(git -C "$repo" status --porcelain --untracked-files=normal 2>/dev/null)" ]; then
        dirty=".d$(date -u +%Y%m%d%H%M%S)"
    fi
    if [ -n "${desc:-}" ] && [ "$n" = 0 ] && [ -z "$dirty" ]; then
        debian="$base"
        pep="$base"
    elif [ -n "${desc:-}" ]; then
        debian="$base+git$n.g$hash$dirty"
        pep="$base.post$n+g$hash$dirty"
    else
        debian="$base~git$n.g$hash$dirty"
        pep="$base.dev$n+g$hash$dirty"
    fi
    echo "$debian $pep"
}

outdir="$repo/build/deb"
case "${1:-}" in
    --print-version)
        read -r deb _ <<<"$(version)"
        echo "${LABPOWER_DEB_VERSION:-$deb}"
        exit 0
        ;;
    -o)
        outdir="$(mkdir -p "$2" && cd "$2" && pwd)"
        ;;
    "") ;;
    *)
        sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac

read -r deb_version pep_version <<<"$(version)"
if [ -n "${LABPOWER_DEB_VERSION:-}" ]; then
    deb_version="$LABPOWER_DEB_VERSION"
    # a Debian version as PEP 440: keep the release, carry the rest as a local label
    pep_version="$(echo "$deb_version" | sed -E 's/^([0-9]+(\.[0-9]+)*)(.*)$/\1/')"
    rest="$(echo "$deb_version" | sed -E 's/^[0-9]+(\.[0-9]+)*//; s/[^A-Za-z0-9]+/./g; s/^\.//; s/\.$//')"
    [ -n "$rest" ] && pep_version="$pep_version+$rest"
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/labpower-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
src="$stage/labpower-$deb_version"
mkdir -p "$src"

# The work tree as git sees it, uncommitted changes included, nothing ignored (.venv, caches).
git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | (cd "$repo" && xargs -0 -r cp --parents -t "$src" 2>/dev/null || true)
# files deleted in the work tree but still in the index were skipped by cp: fine
rm -rf "$src/debian"
cp -r "$repo/packaging/debian" "$src/debian"

# The staged copy is no git checkout: its pyproject files get the version written in, in
# place of hatch-vcs (which would need git, and is not in Debian's build environment).
for pyproject in "$src"/client/pyproject.toml "$src"/backends/pyproject.toml \
    "$src"/daemon/pyproject.toml; do
    sed -i -e "s/^dynamic = \[\"version\"\]$/version = \"$pep_version\"/" \
        -e '/^\[tool\.hatch\.version\]$/,/^$/d' -e '/^# one version for all three/d' \
        -e '/^source = "vcs"$/d' -e '/^raw-options = /d' "$pyproject"
    sed -i 's/"hatchling>=1.25", "hatch-vcs>=0.4"/"hatchling>=1.25"/' "$pyproject"
done

date_epoch="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}"
cat >"$src/debian/changelog" <<EOF
labpower ($deb_version) unstable; urgency=medium

  * Built from git $(git -C "$repo" rev-parse --short=12 HEAD).
  * Python distributions: version $pep_version.

 -- labpower maintainers <labpower@lists.labpower.dev>  $(LC_ALL=C date -u -R -d "@$date_epoch")
EOF

# Third-party Python dependencies, pinned with hashes by uv.lock.
mkdir -p "$cache" "$src/wheelhouse"
(cd "$repo" && uv export --quiet --locked --no-dev --no-emit-workspace \
    --package labpower-client --package labpower-backends --package labpower-daemon \
    --extra serial --extra hid --extra usb --extra http --extra snmp --extra modbus --extra gpio --extra systemd \
    --extra web) >"$src/wheelhouse/requirements.txt"
# The system Python (not a pyenv or venv one), none of this machine's pip settings: PyPI and
# the pinned files only. Metadata of the two sources is read with Debian's setuptools and
# cython3 (Build-Depends), as debian/rules builds them.
syspip() {
    env -i HOME="$HOME" PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
        ${no_proxy:+no_proxy="$no_proxy"} PIP_CONFIG_FILE=/dev/null \
        python3 -m pip --disable-pip-version-check --no-input "$@"
}
syspip download --quiet --require-hashes --no-deps --no-build-isolation \
    --no-binary hidapi,systemd-python -r "$src/wheelhouse/requirements.txt" -d "$cache"
syspip download --quiet --require-hashes --no-deps --no-build-isolation --no-index \
    --find-links "$cache" --no-binary hidapi,systemd-python \
    -r "$src/wheelhouse/requirements.txt" -d "$src/wheelhouse"

# A clean environment: no pyenv shims or venvs in PATH, no pip config of this machine.
(
    cd "$src"
    env -i HOME="$HOME" PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        SOURCE_DATE_EPOCH="$date_epoch" PIP_CONFIG_FILE=/dev/null \
        dpkg-buildpackage -us -uc -b
) >"$stage/build.log" 2>&1 || {
    tail -n 60 "$stage/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (log above)" >&2
    exit 1
}
mkdir -p "$outdir"
cp "$stage"/*.deb "$stage"/*.buildinfo "$stage"/*.changes "$outdir"/
cp "$stage/build.log" "$outdir/labpower_${deb_version}.build.log"
ls "$outdir"/labpower_"$deb_version"_*.deb
