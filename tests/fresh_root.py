"""Fresh Debian roots for the tests and `make fresh`: mmdebstrap, cached per release per day, one builder at a time.

The deployment test, the guard in test_fresh_root.py and `python -m tests.fresh` all build their roots here,
under one lock, so two runs on one machine never write the same half-built root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ENGINEERING_LOG_CACHE", "/var/cache/engineering-log-tests"))
PACKAGES_FILE = ROOT / "tests" / "debian-packages.txt"
# What a new user has before typing the README's commands, and nothing more.
NEW_USER = ("python3", "python3-venv", "python3-pip", "make", "git", "curl", "ca-certificates")
RELEASES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
# The machine's own pip settings that still make sense inside a root: its CA bundle (behind an
# intercepting proxy pip's own bundle fails) and its timeout. Local wheel directories do not.
APP = "/root/engineering-log"  # where the project's copy lives inside a root, as a clone in root's home
PIP_PASSED = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK")


class RootError(Exception):
    """A root could not be built or prepared; the message carries mmdebstrap's or apt's own words."""


def debian_packages() -> list[str]:
    """Return the Debian packages `make test` installs (tests/debian-packages.txt, comments dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in PACKAGES_FILE.read_text().splitlines())
    return [line for line in lines if line]


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its text output."""
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def host_release() -> str:
    """Return this machine's Debian codename when it is one we build roots for, else bookworm."""
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    match = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
    return match.group(1) if match and match.group(1) in RELEASES else "bookworm"


def debian_mirror() -> str:
    """Return the Debian mirror this machine's own apt sources use."""
    sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]
    for path in sources:
        text = path.read_text() if path.exists() else ""
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if "security" not in match.group(1):
                return match.group(1)
    raise RootError("no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list")


SCRATCH = Path("/var/tmp")
OWNER = "owner.pid"


def scratch_dir(kind: str) -> Path:
    """Make a work directory for a root under /var/tmp, marked with this process as its owner.

    Not under pytest's tmp dirs: their clean-up must never meet a root with /dev still bound in it. A run
    that was killed (a session's end, a CI timeout) leaves its root and mounts behind; whichever run comes
    next removes every such directory whose owner is gone, so leftovers never pile up or trip a later run.
    """
    for old in SCRATCH.glob("engineering-log-*-*"):
        try:
            owner = int((old / OWNER).read_text())
            os.kill(owner, 0)
        except (OSError, ValueError):
            if time.time() - old.stat().st_mtime > 60:  # not one another run is making this very moment
                remove_tree(old)
    work = Path(tempfile.mkdtemp(prefix=f"engineering-log-{kind}-", dir=SCRATCH))
    (work / OWNER).write_text(str(os.getpid()))
    return work


def remove_tree(path: Path) -> None:
    """Delete a root filesystem tree, unmounting first whatever is still mounted inside it."""
    unmount_all(path)
    left = mounts_under(path)
    if left:
        raise RootError(f"could not unmount everything under {path}: {', '.join(left[:5])} still mounted")
    if path.exists():
        shutil.rmtree(path)


def build_root(partial: Path, suite: str = "trixie", include: tuple[str, ...] = ("python3",)) -> str:
    """Build a minbase Debian root in partial with mmdebstrap; return what went wrong, or "" on success.

    mmdebstrap resolves and fetches with apt itself, the same client the deployed host uses. A second
    attempt covers a mirror caught mid-sync.
    """
    problems = []
    for attempt in (1, 2):
        remove_tree(partial)
        result = run(["mmdebstrap", "--mode=root", "--variant=minbase", f"--include={','.join(include)}", suite,
                      str(partial), debian_mirror()], timeout=900)
        if result.returncode == 0 and (partial / "usr/bin/python3").exists():
            return ""
        disk = run(["df", "-h", str(partial.parent)]).stdout
        problems.append(f"attempt {attempt}: mmdebstrap exit {result.returncode}\n"
                        f"{result.stdout[-2000:]}{result.stderr[-6000:]}\n{disk}")
    remove_tree(partial)
    return "\n".join(problems)


@contextlib.contextmanager
def builder_lock() -> Iterator[None]:
    """Hold the machine-wide lock under which roots in the cache are built."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pristine_root(suite: str = "trixie", include: tuple[str, ...] = ("python3",), flavour: str = "minbase") -> Path:
    """Return today's cached minbase root of a release, building it when there is none."""
    root = CACHE / f"{suite}-{flavour}-{time.strftime('%Y%m%d')}"
    with builder_lock():
        if not (root / "usr/bin/python3").exists():
            for old in CACHE.glob(f"{suite}-{flavour}-2*"):
                remove_tree(old)
            partial = CACHE / "partial"
            problems = build_root(partial, suite, include)
            if problems:
                raise RootError(problems)
            partial.rename(root)
    return root


def new_user_root(suite: str) -> Path:
    """Return today's cached root of a release holding only what a new user has (NEW_USER)."""
    return pristine_root(suite, NEW_USER, flavour="newuser")


# Never copied: what the Makefile, pip and the tests make (git ignores them too, when there is a .git).
LOCAL_ONLY = {".git", ".venv", "var", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist"}


def working_tree_files() -> list[str]:
    """Return the working tree's files, committed and uncommitted alike, without what git ignores (.venv, var/)."""
    if not (ROOT / ".git").exists():  # an unpacked tarball, or a copy made by this very function
        return sorted(str(path.relative_to(ROOT)) for path in ROOT.rglob("*") if path.is_file()
                      and not LOCAL_ONLY & set(path.relative_to(ROOT).parts) and path.suffix != ".pyc")
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT)
    if listed.returncode != 0:
        raise RootError(f"git ls-files failed: {listed.stderr}")
    return [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


def copy_working_tree(target: Path) -> None:
    """Copy the working tree into target as a fresh clone with its uncommitted changes: .git included."""
    for name in working_tree_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name, follow_symlinks=False)  # torrc.template is a link into blog/tor/
    if (ROOT / ".git").is_dir():
        shutil.copytree(ROOT / ".git", target / ".git", ignore=shutil.ignore_patterns("*.lock"))


def tree_digest(packages: str, *names: str) -> str:
    """Return a short digest of a package list and some working tree files, for cache keys."""
    digest = hashlib.sha256(packages.encode())
    for name in names:
        digest.update(b"\0" + name.encode() + b"\0" + (ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


def trust_local_cas(root: Path) -> None:
    """Give the root this machine's locally added CAs (an intercepting proxy's, say), as its own admin would."""
    local = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if not local:
        return
    target = root / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for cert in local:
        shutil.copy2(cert, target / cert.name)
    if (root / "usr/sbin/update-ca-certificates").exists():
        result = run(["chroot", str(root), "update-ca-certificates"])
        if result.returncode != 0:
            raise RootError(f"update-ca-certificates failed in {root}: {result.stderr}")


def chroot_env(**extra: str) -> dict[str, str]:
    """Return a clean environment for commands in a root: a login's PATH, UTF-8, and the machine's pip settings."""
    env = {"HOME": "/root", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "TERM": "dumb", "DEBIAN_FRONTEND": "noninteractive"}
    env.update({key: os.environ[key] for key in PIP_PASSED if key in os.environ})
    env.update(extra)
    return env


@contextlib.contextmanager
def mounted(root: Path, binds: dict[str, Path] | None = None) -> Iterator[Path]:
    """Mount /proc, /dev (with pts and shm), /sys and some bind mounts in a root for the block; unmount after.

    chromium, tor, pip and the nested mmdebstrap of the deployment test all need them. The recursive
    binds are made slaves, so unmounting them can never reach the host's own /dev or /sys.
    """
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    try:
        for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--rbind", "/dev"]),
                             ("sys", ["--rbind", "/sys"])):
            (root / target).mkdir(exist_ok=True)
            subprocess.run(["mount", *args, str(root / target)], check=True)
            if target != "proc":
                subprocess.run(["mount", "--make-rslave", str(root / target)], check=True)
        for inside, source in (binds or {}).items():
            source.mkdir(parents=True, exist_ok=True)
            (root / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", str(source), str(root / inside.lstrip("/"))], check=True)
        yield root
    finally:
        unmount_all(root)


def mounts_under(root: Path) -> list[str]:
    """Return the mount points at or below a directory, from /proc/mounts.

    A mount point is compared as a path, from its start: another root's mounts that merely contain this
    path (a `make fresh` root running the suite builds its own roots under the same cache path, inside
    itself) are not this root's. /proc/mounts writes space, tab, newline and backslash as octal escapes.
    """
    points = (line.split()[1] for line in Path("/proc/mounts").read_text().splitlines())
    decoded = (re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point) for point in points)
    return [point for point in decoded if point == str(root) or point.startswith(f"{root}/")]


def unmount_all(root: Path) -> None:
    """Unmount whatever is mounted under a root, innermost first."""
    inside = [point for point in mounts_under(root) if point != str(root)]
    for mount in sorted(inside, reverse=True):
        subprocess.run(["umount", "--lazy", mount], check=False)


def copy_root(source: Path, target: Path) -> None:
    """Copy a cached root to a work place, keeping owners, modes and links; no service starts inside."""
    target.mkdir(parents=True, exist_ok=True)
    result = run(["cp", "-a", f"{source}/.", str(target)])
    if result.returncode != 0:
        raise RootError(f"copying {source} failed: {result.stderr}")
    # A root has no init: apt's maintainer scripts must not start tor or nginx on this machine's network.
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# No service starts inside a test root.\nexit 101\n")
    policy.chmod(0o755)


def prepared_root(suite: str) -> Path:
    """Return today's cached new-user root after `make system-deps install-test`, keyed by what they read.

    The guard starts every program from it. The package layer has a lock of its own, so the deployment
    test's mmdebstrap does not wait for apt and pip here.
    """
    key = tree_digest(" ".join(debian_packages()), "Makefile", "pyproject.toml", "constraints.txt")
    today = time.strftime("%Y%m%d")
    name = f"{suite}-maketest-{key}-{today}"
    root = CACHE / name
    base = new_user_root(suite)
    with (CACHE / f"{suite}-maketest.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / APP.lstrip("/") / ".venv/.installed-test").exists():
            return root
        for old in CACHE.glob(f"{suite}-maketest-*-2*"):
            if not old.name.endswith(today):  # other package lists of today stay: switching back is free
                remove_tree(old)
        partial = CACHE / f"{suite}-maketest-partial"
        remove_tree(partial)
        copy_root(base, partial)
        trust_local_cas(partial)
        copy_working_tree(partial / APP.lstrip("/"))
        with mounted(partial, {"/root/.cache/pip": CACHE / "pip"}):
            result = in_root(partial, "make system-deps install-test", timeout=1800)
        if result.returncode != 0:
            remove_tree(partial)
            raise RootError(f"make system-deps install-test failed in a fresh {suite} root:\n"
                            f"{(result.stdout + result.stderr)[-6000:]}")
        partial.rename(root)
    return root


def in_root(root: Path, script: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root inside a root, in the project's copy, with a clean environment."""
    return run(["chroot", str(root), "env", "-i", *(f"{k}={v}" for k, v in chroot_env(**env).items()),
                "sh", "-c", f"cd {APP} && {script}"], timeout=timeout)
