"""Builds cloudvol's Docker managed plugin: OUT/config.json and OUT/rootfs/.

    python3 packaging/plugin/build.py OUT        (as root; `make plugin` runs it)

No container registry is needed: the root file system is Debian 12 made by mmdebstrap,
a virtualenv in /opt/cloudvol with cloudvol and its dependencies from PyPI, then
trimmed. It is made in three layers, each kept as a tarball in /var/cache/cloudvol-tests
and keyed by what goes into it, so a rebuild redoes only what changed:

1. Debian minbase, the same the install tests start from;
2. dependencies: Debian's Python, FUSE and the compiler pyfuse3 is built with, the venv
   with cloudvol's dependencies, then the compiler and what else the plugin does not
   need purged;
3. cloudvol itself, from this checkout, and the trimming.
"""

from __future__ import annotations

import fcntl
import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The Debian root helpers are the ones the install tests use (one copy of the
# mmdebstrap and chroot logic); they live with the test fixtures.
sys.path.insert(0, str(REPO))

from tests.integration.fixtures.debian_root import (  # noqa: E402
    BASE_CACHE,
    base_tarball,
    in_root,
    share_host_network_setup,
)

RUNTIME_PACKAGES = ("ca-certificates", "fuse3", "python3")
BUILD_PACKAGES = ("python3-venv", "gcc", "libc6-dev", "python3-dev", "libfuse3-dev", "pkg-config")
UNNEEDED_PACKAGES = (
    "usrmerge", "perl", "libperl5.36", "perl-modules-5.36", "libfile-find-rule-perl",
    "libnumber-compare-perl", "libtext-glob-perl", "tzdata", "make",
)  # fmt: skip
VENV = "/opt/cloudvol"
SOURCES = ("pyproject.toml", "domain", "application", "adapters", "entrypoints")
LAYERS_KEPT = 3  # per layer: other worktrees on this machine may build other sources

DEPENDENCIES_SCRIPT = f"""
apt-get update -qq
apt-get install -y --no-install-recommends {" ".join(RUNTIME_PACKAGES + BUILD_PACKAGES)} \\
    usr-is-merged
python3 -m venv {VENV}
{VENV}/bin/pip install --no-cache-dir --no-warn-script-location "$@"
# Debug symbols: pyfuse3 is built with them, and some wheels ship them.
find {VENV} -type f -name '*.so*' -exec strip --strip-unneeded {{}} +
# botocore's API models: s3fs needs S3's, and STS's and SSO's to find credentials.
cd {VENV}/lib/python3*/site-packages/botocore/data
for model in */; do case $model in s3/|sts/|sso/|sso-oidc/) ;; *) rm -rf "$model" ;; esac; done
cd /
apt-get purge -y --autoremove {" ".join(BUILD_PACKAGES)}
# mmdebstrap marks all of minbase as installed by hand, so autoremove keeps what the
# plugin does not need: Perl, which only usrmerge needed (for the conversion it did at
# install; usr-is-merged stands in), time zones (the plugin runs in UTC), and make.
apt-get purge -y --autoremove {" ".join(UNNEEDED_PACKAGES)}
"""

# Nothing here is read at run time: documentation, translations, apt's package lists,
# glibc's character set converters (Python has its own codecs).
TRIM_SCRIPT = """
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
    /usr/share/lintian /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
    /var/log/* /root/.cache /tmp/* /usr/lib/x86_64-linux-gnu/gconv
"""

# The smoke test loads what the daemon and its workers need, S3's trimmed models too.
CLOUDVOL_SCRIPT = f"""
{VENV}/bin/pip install --no-cache-dir --no-deps /tmp/cloudvol-src
{VENV}/bin/pip uninstall -y pip setuptools
ln -sf {VENV}/bin/cloudvol /usr/local/bin/cloudvol
mkdir -p /data/config /data/cache
update-ca-certificates --fresh >/dev/null
{TRIM_SCRIPT}
cloudvol version
{VENV}/bin/python -c '
import botocore.session, pyfuse3, asyncssh, entrypoints.serve_docker, entrypoints.mount_worker
botocore.session.get_session().create_client(
    "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
'
"""


def dependencies() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


def source_bytes() -> bytes:
    """Every file that goes into cloudvol's wheel, by name and content."""
    files = []
    for entry in SOURCES:
        path = REPO / entry
        found = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [f for f in found if f.is_file() and "__pycache__" not in f.parts]
    return b"".join(f.relative_to(REPO).as_posix().encode() + f.read_bytes() for f in files)


def cached_layer(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """The tarball `name-key.tar` in the cache, made by `build(root)` if missing."""
    tarball = BASE_CACHE / f"{name}-{key}.tar"
    BASE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(BASE_CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # builds in other sessions wait for this one
        if tarball.exists():
            return tarball
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=BASE_CACHE) as tmp:
            root = Path(tmp) / "root"
            build(root)
            partial = Path(tmp) / "layer.tar"
            subprocess.run(
                ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True
            )
            partial.rename(tarball)  # only a whole file is ever reused
        older = sorted(BASE_CACHE.glob(f"{name}-*.tar"), key=lambda p: p.stat().st_mtime)
        for stale in older[:-LAYERS_KEPT]:
            stale.unlink()
    return tarball


def unpack(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)], check=True)


def run_in(root: Path, script: str, *args: str) -> None:
    done = in_root(root, f"set -- {shlex.join(args)}\n{script}")
    if done.returncode != 0:
        raise SystemExit(
            f"building the plugin rootfs failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def with_host_network_setup(root: Path, script: str, *args: str) -> None:
    """Run `script` in `root` with the host's resolver, CA bundle and apt settings, then
    take the host's files out again: they must not ship in the plugin."""
    apt_conf = root / "etc" / "apt" / "apt.conf.d"
    own_apt_conf = {p.name for p in apt_conf.iterdir()}
    share_host_network_setup(root)
    try:
        run_in(root, script, *args)
    finally:
        for conf in apt_conf.iterdir():
            if conf.name not in own_apt_conf:
                conf.unlink()
        (root / "etc" / "resolv.conf").write_text("")  # Docker binds the host's in


def rootfs_tarball() -> Path:
    base = base_tarball()
    requirements = dependencies()

    def build_dependencies(root: Path) -> None:
        unpack(base, root)
        with_host_network_setup(root, DEPENDENCIES_SCRIPT, *requirements)

    deps_key = digest(
        base.name.encode(), "\n".join(requirements).encode(), DEPENDENCIES_SCRIPT.encode()
    )
    deps = cached_layer("cloudvol-plugin-deps", deps_key, build_dependencies)

    def build_cloudvol(root: Path) -> None:
        unpack(deps, root)
        src = root / "tmp" / "cloudvol-src"
        src.mkdir()
        for entry in SOURCES:
            path = REPO / entry
            if path.is_file():
                shutil.copy2(path, src / entry)
            else:
                shutil.copytree(path, src / entry, ignore=shutil.ignore_patterns("__pycache__"))
        with_host_network_setup(root, CLOUDVOL_SCRIPT)

    return cached_layer(
        "cloudvol-plugin-rootfs",
        digest(deps.name.encode(), source_bytes(), CLOUDVOL_SCRIPT.encode()),
        build_cloudvol,
    )


def build_plugin(out: Path) -> None:
    """OUT/config.json and OUT/rootfs/, as `docker plugin create NAME OUT` wants them."""
    if out.exists():
        shutil.rmtree(out)
    unpack(rootfs_tarball(), out / "rootfs")
    shutil.copy2(Path(__file__).with_name("config.json"), out / "config.json")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR")
    build_plugin(Path(sys.argv[1]))
