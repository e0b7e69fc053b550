"""The guard: in a fresh Debian root with only what `make test` installs, every program the suite starts runs.

A package the suite needs but `make test` does not install stays invisible on a machine that happens to
have it (libatomic1, which Playwright's node driver links, once). So: take today's cached minbase root
holding only what a new user has, run `make system-deps install-test` in it (cached per day and per
package list), then start each external program with a version or help call and `ldd` its binary, and
every compiled module in the venv. `make fresh` runs the whole suite there; this is the cheap part.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.fresh_root import (
    APP,
    OWNER,
    ROOT,
    RootError,
    debian_packages,
    host_release,
    mounted,
    mounts_under,
    prepared_root,
    remove_tree,
    run,
    scratch_dir,
)

VENV = f"{APP}/.venv"
# name -> (its version or help call, the ELF files it loads; * is a glob inside the root)
PROGRAMS = {
    "tor": ("tor --version", ["/usr/bin/tor"]),
    "tor-gencert": ("tor-gencert --help", ["/usr/bin/tor-gencert"]),
    "chromium": ("chromium --headless --no-sandbox --version", ["/usr/lib/chromium/chromium"]),
    "Playwright's driver": (f"{VENV}/lib/python3*/site-packages/playwright/driver/node --version",
                            [f"{VENV}/lib/python3*/site-packages/playwright/driver/node"]),
    "nginx": ("nginx -v", ["/usr/sbin/nginx"]),
    "wrk": ("wrk --version", ["/usr/bin/wrk"]),
    "mmdebstrap": ("mmdebstrap --version", ["/usr/bin/perl"]),
    "ansible": (f"{VENV}/bin/ansible-playbook --version", [f"{VENV}/bin/python"]),
    "ansible-lint": (f"{VENV}/bin/ansible-lint --offline --version", [f"{VENV}/bin/python"]),
    "gunicorn": (f"{VENV}/bin/gunicorn --version", [f"{VENV}/bin/python"]),
    "systemd-analyze": ("systemd-analyze --version", ["/usr/bin/systemd-analyze"]),
    "openssl": ("openssl version", ["/usr/bin/openssl"]),
    "sqlite3": ("sqlite3 --version", ["/usr/bin/sqlite3"]),
    "ss": ("ss -V", ["/usr/bin/ss"]),
    "ip": ("ip -V", ["/usr/bin/ip"]),
    "ps": ("ps --version", ["/usr/bin/ps"]),
    "unshare": ("unshare --version", ["/usr/bin/unshare"]),
    "mount": ("mount --version", ["/usr/bin/mount"]),
    "runuser": ("runuser --version", ["/usr/sbin/runuser"]),
    "chroot": ("chroot --version", ["/usr/sbin/chroot"]),
}
BROKEN = re.compile(r"error while loading shared libraries: (\S+?):")


@pytest.fixture(scope="module")
def root() -> Path:
    """Return today's fresh root of this machine's release after `make system-deps install-test`."""
    require_binary("mmdebstrap", "mmdebstrap")
    if os.geteuid() != 0:
        pytest.skip("the fresh-root guard needs root (mmdebstrap, chroot, mount)")
    try:
        return prepared_root(host_release())
    except RootError as exc:
        pytest.fail(str(exc))


def provider(library: str) -> str:
    """Return the Debian package that ships a library on this machine, or say that none here does."""
    found = run(["dpkg", "-S", f"*/{library}"])
    packages = {line.split(":")[0] for line in found.stdout.splitlines() if ": /" in line}
    return f"Debian package {', '.join(sorted(packages))}" if packages else "no Debian package on this machine"


def missing_libraries(root: Path, files: str) -> dict[str, list[str]]:
    """Return, per ELF file (a shell word list, globs allowed), the libraries ldd cannot find inside the root."""
    script = f'for g in {files}; do echo "== $g"; ldd "$g" 2>&1; done'
    output = run(["chroot", str(root), "sh", "-c", script], timeout=300).stdout
    missing: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("== "):
            current = line[3:]
        elif "=> not found" in line or "No such file" in line or "cannot open" in line:
            missing.setdefault(current, []).append(line.split()[0])
    return missing


def test_make_test_installs_what_every_program_needs(root: Path) -> None:
    problems = []
    with mounted(root):
        for name, (call, binaries) in PROGRAMS.items():
            started = run(["chroot", str(root), "sh", "-c", f"exec {call}"], timeout=60,
                          env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "HOME": "/root", "LANG": "C.UTF-8"})
            output = (started.stdout + started.stderr).strip()
            broken = BROKEN.search(output)
            if started.returncode in (126, 127) or broken or not output:
                library = broken.group(1) if broken else ""
                where = f": {library} is missing ({provider(library)})" if library else ""
                problems.append(f"{name}: `{call}` exited {started.returncode}{where}\n    {output[-400:]}")
            for binary, libraries in missing_libraries(root, " ".join(binaries)).items():
                for library in libraries:
                    problems.append(f"{name}: ldd {binary}: {library} not found ({provider(library)})")
        venv = missing_libraries(root, f"$(find {VENV} -name '*.so*' -type f)")
    for module, libraries in venv.items():
        problems += [f"venv {module}: {library} not found ({provider(library)})" for library in libraries]
    assert not problems, ("in a fresh root with only what `make test` installs (tests/debian-packages.txt):\n"
                          + "\n".join(problems))


def test_the_makefile_installs_the_package_list() -> None:
    listed = subprocess.run(["make", "-s", "print-deb-packages"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == debian_packages()
    assert "libatomic1" in listed, "Playwright's node driver links libatomic.so.1"


def test_make_run_installs_tor_as_root_and_otherwise_names_the_command() -> None:
    # `make fresh` proves the install itself (a fresh root, make run as root, the onion address printed).
    absent = "no-such-package-stands-for-tor"  # tor is installed here: a missing name takes its place
    as_user = ["make", "-s", "run-deps", f"DEB_RUN_PACKAGES={absent}"]
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "nobody", "--", *as_user]
    told = subprocess.run(as_user, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert told.returncode == 0, told.stdout + told.stderr
    assert f"install them with: sudo apt-get install --no-install-recommends {absent}" in told.stdout
    plan = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True).stdout
    assert "for p in tor;" in plan and "apt-get install" in plan, plan
    assert plan.index("for p in tor;") < plan.index(" serve --bind"), "make run installs tor before serving"
    if os.geteuid() == 0:  # nothing missing: nothing said, nothing installed
        quiet = subprocess.run(["make", "-s", "run-deps", "DEB_RUN_PACKAGES=coreutils"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=True)
        assert quiet.stdout == "", quiet.stdout


def test_make_fresh_takes_every_release_when_none_is_named() -> None:
    from tests.fresh import RELEASES, releases_from

    assert releases_from([]) == list(RELEASES)  # plain `make fresh`
    assert releases_from(["trixie"]) == ["trixie"]
    with pytest.raises(SystemExit):
        releases_from(["sid"])


def as_root_with_mounts() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")


def test_a_root_is_not_taken_for_another_root_that_holds_its_path(tmp_path: Path) -> None:
    # A `make fresh` root runs the suite, which builds its roots under the same cache path inside that
    # root: a mount at <fresh root>/var/cache/.../partial/proc is not the host's partial's.
    as_root_with_mounts()
    inner = tmp_path / "inner"
    (inner / "usr").mkdir(parents=True)
    other = tmp_path / "outer" / str(inner).lstrip("/") / "proc"
    other.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(other)], check=True)
    try:
        remove_tree(inner)
        assert not inner.exists()
        assert mounts_under(tmp_path / "outer") == [str(other)], "the other root's mount was touched"
    finally:
        subprocess.run(["umount", "--lazy", str(other)], check=False)


def test_a_killed_runs_root_and_mounts_are_swept_by_the_next_run() -> None:
    as_root_with_mounts()
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = scratch_dir("sweep-test")
    (left / OWNER).write_text(str(dead.pid))  # the run that made it is gone
    (left / "root/proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(left / "root/proc")], check=True)
    os.utime(left, (time.time() - 600, time.time() - 600))
    mine = scratch_dir("sweep-test")
    try:
        assert not left.exists() and not mounts_under(left), "a killed run's root stayed behind"
        assert (mine / OWNER).read_text() == str(os.getpid())
        again = scratch_dir("sweep-test")
        assert mine.exists(), "a live run's directory was swept"
        remove_tree(again)
    finally:
        remove_tree(mine)
        if left.exists():
            remove_tree(left)
