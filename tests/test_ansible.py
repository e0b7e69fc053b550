"""The Ansible deployment: lint, syntax, a real apply into a fresh Debian 13 chroot, twice, and each input alone."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from processes import free_port
from tests import fresh_root
from tests.conftest import require_binary
from tests.fresh_root import CACHE, remove_tree, scratch_dir

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE = ROOT / "ansible"
BIN = Path(shutil.which("ansible-playbook") or ROOT / ".venv/bin/ansible-playbook").parent
APP_USER = "engineering-log"
ONION_DIR = "/var/lib/tor/engineering-log"
# The app as the blog role's systemd unit runs it, started by hand in the chroot; the bind address follows.
SERVE_AS_DEPLOYED = ["runuser", f"--user={APP_USER}", "--", "env", "BLOG_CONFIG=/etc/engineering-log/blog.toml",
                     "/opt/engineering-log/venv/bin/blog", "serve", "--bind"]


def ansible_tool(name: str) -> str:
    """Return an Ansible command from the venv; fail under CI=true when Ansible is not installed."""
    path = BIN / name
    if not path.exists():
        message = f"{name} is not installed: pip install ansible ansible-lint into the venv"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its text output."""
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


# The chroot host ----------------------------------------------------------------------------------------

SOURCE_FILES = ("pyproject.toml", "README.md", "wsgi.py", "constraints.txt", "torrc.template")


def ansible_env(home: Path) -> dict[str, str]:
    """Return the environment for Ansible commands: the venv first, a private Ansible home, no colour.

    No BLOG_* variable: the chroot connection hands this environment to the host's commands, and the
    suite's own (BLOG_SEMANTIC=0) would switch the deployed site's settings.
    """
    mine = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    return dict(mine, PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/sbin",
                ANSIBLE_HOME=str(home), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                ANSIBLE_LOCAL_TEMP=str(home / "tmp"), ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
                ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")


def pristine_root() -> Path:
    """Return today's cached minimal Debian 13 root (python3 only), building it when there is none."""
    try:
        return fresh_root.pristine_root("trixie")
    except fresh_root.RootError as exc:
        pytest.fail(str(exc))


class Apply:
    """One ansible-playbook run: its output and the recap's counts for the chroot host."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.output = result.stdout + result.stderr
        recap = re.search(r"^trixie\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                          self.output, re.M)
        assert recap, self.output[-4000:]
        self.changed = int(recap.group(2))
        self.failed = int(recap.group(3)) + int(recap.group(4)) + (result.returncode != 0)

    def changed_tasks(self) -> list[str]:
        """Return the task headers followed by a 'changed' line, for a readable failure."""
        return re.findall(r"^TASK \[([^]]+)\].*?\n(?=changed:)", self.output, re.M | re.S)


class ChrootHost:
    """A Debian 13 root filesystem reached through Ansible's chroot connection; services never start."""

    def __init__(self, work: Path, source: Path, playbook_dir: Path) -> None:
        self.work, self.playbook_dir = work, playbook_dir
        self.root = work / "root"
        self.backup_dir = work / "onion-keys"
        self.vault_pass = work / "vault-pass"
        self.src = work / "src"  # the software input: a checkout
        self.content = work / "mylog" / "content"  # the content input: the operator's own folder, apart from it
        for name in SOURCE_FILES:
            if (source / name).exists():
                (self.src).mkdir(exist_ok=True)
                shutil.copy2(source / name, self.src / name)
        # A snapshot, so other people's edits during the run cannot break the idempotence check.
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(source / "blog", self.src / "blog", ignore=ignore)
        shutil.copytree(source / "content", self.content, ignore=ignore)

    @classmethod
    def create(cls, work: Path, source: Path, playbook_dir: Path) -> ChrootHost:
        """Copy today's pristine root, keep services from starting, and trust this machine's CAs."""
        host = cls(work, source, playbook_dir)
        subprocess.run(["cp", "-a", f"{pristine_root()}/.", str(host.root)], check=True)
        policy = host.root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# No service starts inside the test chroot.\nexit 101\n")
        policy.chmod(0o755)
        local_cas = host.root / "usr/local/share/ca-certificates"
        local_cas.mkdir(parents=True, exist_ok=True)
        for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy2(cert, host.root / "usr/local/share/ca-certificates" / cert.name)
        shutil.copy2("/etc/resolv.conf", host.root / "etc/resolv.conf")
        host.vault_pass.write_text("a vault password for the test only\n")
        host.vault_pass.chmod(0o600)
        return host

    def __enter__(self) -> ChrootHost:
        # pip's cache is shared between runs so a warm run downloads nothing; CI starts it empty.
        pip_cache = CACHE / "pip"
        pip_cache.mkdir(parents=True, exist_ok=True)
        (self.root / "root/.cache/pip").mkdir(parents=True, exist_ok=True)
        for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"]),
                             ("root/.cache/pip", ["--bind", str(pip_cache)])):
            subprocess.run(["mount", *args, str(self.root / target)], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        remove_tree(self.work)

    def apply(self, *options: str) -> Apply:
        """Run site.yml against the chroot."""
        inventory = self.work / "inventory.yml"
        inventory.write_text(
            "all:\n  children:\n    onionbalance_frontends: {hosts: {}}\n    blog_backends:\n      hosts:\n"
            f"        trixie:\n          ansible_connection: community.general.chroot\n"
            f"          ansible_host: {self.root}\n          ansible_become: false\n"
            "          ansible_python_interpreter: /usr/bin/python3\n")
        extra = {"tor_onion_backup_dir": self.backup_dir, "tor_onion_vault_password_file": self.vault_pass,
                 "blog_source_dir": self.src, "blog_content_source": self.content,
                 "blog_wheel_cache": self.work / "wheels"}
        args = [str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"]
        for key, value in extra.items():
            args += ["-e", f"{key}={value}"]
        args += options  # after the defaults above: a later -e wins
        env = ansible_env(self.work / "ansible-home")
        return Apply(run(args, cwd=self.playbook_dir, env=env, timeout=900))

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a command inside the chroot."""
        return run(["chroot", str(self.root), *args])

    def sh(self, script: str) -> str:
        """Return a shell snippet's output inside the chroot."""
        return self.run(["sh", "-c", script]).stdout.strip()

    def read(self, path: str) -> str:
        """Return a file's text inside the chroot."""
        return (self.root / path.lstrip("/")).read_text()

    def stat(self, path: str) -> tuple[str, str, int]:
        """Return a path's owner, group and permission bits, named as the chroot names them."""
        owner, group, mode = self.sh(f"stat -c '%U %G %a' {path}").split()
        return owner, group, int(mode, 8)

    def content_built(self) -> bool:
        """Tell whether `blog build` left a current build in the data directory."""
        return (self.root / "var/lib/engineering-log/builds/current").exists()

    @contextlib.contextmanager
    def spawn(self, args: list[str], before: str = "") -> Iterator[subprocess.Popen[bytes]]:
        """Run a process inside the chroot for the block's duration, then stop its process group."""
        if before:
            self.sh(before)
        log = (self.work / f"{Path(args[0]).name}-{len(args)}.log").open("ab")
        process = subprocess.Popen(["chroot", str(self.root), *args], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()

    def wait_for(self, probe: Callable[[], object], what: str, timeout: float = 30.0) -> Any:
        """Return the probe's first truthy answer, failing with the logs after the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = probe()
            if answer:
                return answer
            time.sleep(0.2)
        logs = "".join(p.read_text(errors="replace")[-2000:] for p in self.work.glob("*.log"))
        pytest.fail(f"no {what} within {timeout:.0f}s; logs:\n{logs}")


def test_ansible_lint_passes_the_production_profile(tmp_path: Path) -> None:
    result = run([ansible_tool("ansible-lint"), "--profile", "production", "--offline"], cwd=ANSIBLE,
                 env=ansible_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_passes_the_syntax_check() -> None:
    playbook = ansible_tool("ansible-playbook")
    result = run([playbook, "--syntax-check", "-i", "inventory.example.yml", "site.yml"], cwd=ANSIBLE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_role_torrc_carries_every_option_of_the_repository_template() -> None:
    def options(path: Path) -> set[str]:
        return {m.group(1) for m in re.finditer(r"^([A-Z][A-Za-z0-9]+) ", path.read_text(), re.M)}

    missing = options(ROOT / "torrc.template") - options(ANSIBLE / "roles/tor/templates/torrc.j2")
    assert not missing, f"add these options from torrc.template to roles/tor/templates/torrc.j2: {missing}"


def test_every_role_variable_is_prefixed_and_commented() -> None:
    for defaults in ANSIBLE.glob("roles/*/defaults/main.yml"):
        role = defaults.parent.parent.name
        lines = defaults.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^[a-z_]+:", line):
                assert line.startswith(f"{role}_"), f"{defaults}: {line} lacks the prefix {role}_"
                assert lines[i - 1].startswith("#"), f"{defaults}: {line} has no comment above it"


@pytest.fixture(scope="module")
def host() -> Iterator[ChrootHost]:  # mmdebstrap and a cold first apply: minutes, counted in the first test
    """Return a fresh Debian 13 chroot with site.yml applied once."""
    for binary, package in (("mmdebstrap", "mmdebstrap"), ("tor", "tor"), ("chroot", "coreutils")):
        require_binary(binary, package)
    ansible_tool("ansible-playbook")
    if os.geteuid() != 0:
        pytest.skip("the chroot deployment test needs root (mmdebstrap, chroot, mount)")
    work = scratch_dir("ansible")
    try:
        created = ChrootHost.create(work, source=ROOT, playbook_dir=ANSIBLE)
    except BaseException:
        remove_tree(work)
        raise
    with created as chroot:
        chroot.first = chroot.apply()
        yield chroot


@pytest.mark.slow
@pytest.mark.tor
@pytest.mark.timeout(1800)
def test_first_apply_installs_everything_with_owners_and_modes(host: ChrootHost) -> None:
    assert host.first.failed == 0, host.first.output[-4000:]
    for package in ("tor", "python3-venv", "unattended-upgrades", "openssh-server", "systemd-timesyncd"):
        assert host.sh(f"dpkg-query -W -f='${{Status}}' {package}") == "install ok installed", package
    passwd = host.sh(f"getent passwd {APP_USER}").split(":")
    assert passwd[6] == "/usr/sbin/nologin"
    assert "debian-tor" in host.sh(f"id -nG {APP_USER}").split()
    assert host.stat(ONION_DIR) == ("debian-tor", "debian-tor", 0o700)
    assert host.stat(f"{ONION_DIR}/hs_ed25519_secret_key")[0::2] == ("debian-tor", 0o600)
    assert host.stat("/var/lib/engineering-log") == (APP_USER, APP_USER, 0o700)
    assert host.stat("/etc/engineering-log/blog.toml") == ("root", APP_USER, 0o640)
    onion = host.read(f"{ONION_DIR}/hostname").strip()
    assert re.fullmatch(r"[a-z2-7]{56}\.onion", onion)
    assert f'onion_address = "{onion}"' in host.read("/etc/engineering-log/blog.toml")
    assert host.read("/etc/ssh/sshd_config.d/50-keys-only.conf").count("PasswordAuthentication no") == 1
    assert os.readlink(host.root / "etc/localtime").endswith("Etc/UTC")
    assert host.run(["tor", "--verify-config", "-f", "/etc/tor/torrc"]).returncode == 0
    wants = host.root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "engineering-log.service").is_symlink()
    assert (wants / "tor.service").is_symlink()
    assert host.content_built()
    # The search model, fetched on the host and checked by SHA-256; the first build has its vectors.
    assert host.stat("/opt/engineering-log/model") == ("root", "root", 0o755)
    assert host.run(["/opt/engineering-log/venv/bin/python", "-m", "blog.index.semantic.weights", "--check",
                     "/opt/engineering-log/model"]).returncode == 0
    assert 'model_dir = "/opt/engineering-log/model"' in host.read("/etc/engineering-log/blog.toml")
    assert list((host.root / "var/lib/engineering-log/vectors").glob("*.npy")), "blog build made no vectors"


@pytest.mark.slow
@pytest.mark.tor
def test_unit_files_pass_systemd_analyze_verify(host: ChrootHost) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    unit = host.root / "etc/systemd/system/engineering-log.service"
    result = run([analyze, "verify", f"--root={host.root}", str(unit)])
    assert result.returncode == 0, result.stdout + result.stderr
    text = unit.read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "ReadWritePaths=/var/lib/engineering-log", "CapabilityBoundingSet=\n", "Restart=on-failure",
                 "LimitNOFILE=4096"):
        assert line in text


@pytest.mark.slow
@pytest.mark.tor
def test_onion_key_is_backed_up_encrypted_and_never_printed(host: ChrootHost) -> None:
    backup = next(host.backup_dir.glob("*.vault"))
    assert backup.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;")
    assert backup.stat().st_mode & 0o777 == 0o600
    key = (host.root / ONION_DIR.lstrip("/") / "hs_ed25519_secret_key").read_bytes()
    plain = run([ansible_tool("ansible-vault"), "view", "--vault-password-file", str(host.vault_pass),
                 str(backup)])
    assert base64.b64decode(plain.stdout) == key
    assert base64.b64encode(key).decode() not in host.first.output


@pytest.mark.slow
@pytest.mark.tor
def test_second_apply_changes_nothing(host: ChrootHost) -> None:
    second = host.apply()
    assert (second.failed, second.changed) == (0, 0), second.changed_tasks()


NEW_ENTRY = """---
title: "Deployed by Ansible"
date: 2026-11-25T12:00:00Z
tags: [ansible]
summary: "A marker entry the deployment test adds to check that a content update reaches the site."
---

The content update reached the host, and the new build went live without a restart.
"""


SOFTWARE_MARKER = "<p>A newer version of the software.</p>"
CURRENT = "/var/lib/engineering-log/builds/current"
INSTALLED_BASE = "opt/engineering-log/venv/lib/python3*/site-packages/blog/web/templates/base.html"


def installed_base_template(host: ChrootHost) -> str:
    """Return the text of the installed package's base template."""
    [path] = host.root.glob(INSTALLED_BASE)
    return path.read_text()


@pytest.mark.slow
@pytest.mark.tor
def test_content_update_switches_the_site_to_a_new_build_and_leaves_the_software(host: ChrootHost) -> None:
    before = host.read(CURRENT)
    (host.content / "log/2026-11-25-deployed-by-ansible.md").write_text(NEW_ENTRY)
    software = installed_base_template(host)
    template = host.src / "blog/web/templates/base.html"
    template.write_text(template.read_text().replace("</footer>", f"{SOFTWARE_MARKER}\n</footer>"))
    update = host.apply("--tags", "content")
    assert update.failed == 0, update.output[-4000:]
    assert (host.root / "srv/engineering-log/content/log/2026-11-25-deployed-by-ansible.md").exists()
    assert host.read(CURRENT) != before
    # The software changed in the checkout meanwhile: a content update does not deploy it.
    assert "Build the app's wheel" not in update.output and installed_base_template(host) == software


WAITING_ENTRY = NEW_ENTRY.replace("Deployed by Ansible", "Written but not deployed").replace("12:00", "13:00")


@pytest.mark.slow
@pytest.mark.tor
def test_software_update_installs_the_new_version_and_leaves_the_content(host: ChrootHost) -> None:
    before = host.read(CURRENT)
    (host.content / "log/2026-11-25-written-but-not-deployed.md").write_text(WAITING_ENTRY)
    update = host.apply("--tags", "app")
    assert update.failed == 0, update.output[-4000:]
    assert SOFTWARE_MARKER in installed_base_template(host)
    assert host.read(CURRENT) != before, "a new software version rebuilds the same content"
    assert not (host.root / "srv/engineering-log/content/log/2026-11-25-written-but-not-deployed.md").exists()
    assert "Copy the content to the host" not in update.output


@pytest.mark.slow
@pytest.mark.tor
def test_without_a_content_folder_the_play_stops_and_says_what_to_set(host: ChrootHost) -> None:
    unset = host.apply("--tags", "always", "-e", "blog_content_source=")
    assert unset.failed, unset.output[-3000:]
    assert "your site's content folder on this machine" in unset.output and "blog init" in unset.output


@pytest.mark.slow
@pytest.mark.tor
def test_installed_tor_and_gunicorn_serve_the_home_page(host: ChrootHost) -> None:
    # tor started as root with `User debian-tor` opens no control listener while DisableNetwork is set,
    # so the proof that it runs the installed torrc is the hostname it derives again from the key.
    hostname = host.root / ONION_DIR.lstrip("/") / "hostname"
    onion = hostname.read_text()
    hostname.unlink()
    port = free_port()
    with host.spawn(["tor", "-f", "/etc/tor/torrc", "--DisableNetwork", "1", "--SocksPort", "0",
                     "--RunAsDaemon", "0", "--Log", "notice stdout"],
                    before="install -d -o debian-tor -g debian-tor -m 2750 /run/tor") as tor:
        host.wait_for(lambda: hostname.exists() and hostname.read_text() == onion, "hostname from tor")
        cookie = host.stat("/run/tor/control.authcookie")
        assert cookie[1] == "debian-tor" and cookie[2] & 0o040
        assert tor.poll() is None
        with host.spawn([*SERVE_AS_DEPLOYED, f"127.0.0.1:{port}"]):
            body = host.wait_for(lambda: fetch(f"http://127.0.0.1:{port}/"), "the home page", timeout=60)
    assert "The engineering log" in body
    assert "Deployed by Ansible" in body and SOFTWARE_MARKER in body
    assert "Written but not deployed" not in body
    assert onion.strip() in body, "the page should name the onion address from blog.toml"


CLEARNET_DOMAIN = "log.example.org"

# Run inside the chroot, in a network namespace of its own: fetch the site through nginx and report.
CLEARNET_PROBE = r"""
import http.client, json, ssl, sys, time

def get(connection):
    connection.request("GET", "/", headers={"Host": sys.argv[1]})
    response = connection.getresponse()
    return {"status": response.status, "headers": {k.lower(): v for k, v in response.getheaders()},
            "onion_locations": [v for k, v in response.getheaders() if k.lower() == "onion-location"],
            "body": response.read().decode(errors="replace")}

deadline = time.monotonic() + 90
while True:
    try:
        https = get(http.client.HTTPSConnection("127.0.0.1", 443, timeout=5,
                                                context=ssl._create_unverified_context()))
        if https["status"] == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        raise SystemExit("no 200 through nginx within 90 s")
    time.sleep(0.5)
print(json.dumps({"https": https, "http": get(http.client.HTTPConnection("127.0.0.1", 80, timeout=5))}))
"""


@pytest.mark.slow
@pytest.mark.tor
def test_a_reinstall_keeps_the_onion_address_and_clearnet_puts_nginx_with_tls_and_onion_location_in_front(
        host: ChrootHost) -> None:
    """Two checks on one whole apply (each costs minutes): the onion folder is gone, as after a reinstall, and
    comes back with the same address from the backup; and the clearnet role is turned on."""
    before = host.read(f"{ONION_DIR}/hostname")
    shutil.rmtree(host.root / ONION_DIR.lstrip("/"))
    cert, key = host.work / "fullchain.pem", host.work / "privkey.pem"
    made = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN={CLEARNET_DOMAIN}", "-keyout", str(key), "-out", str(cert)])
    assert made.returncode == 0, made.stderr
    options = ["-e", "clearnet_enabled=true", "-e", f"clearnet_domain={CLEARNET_DOMAIN}",
               "-e", f"clearnet_tls_certificate={cert}", "-e", f"clearnet_tls_private_key={key}"]
    first = host.apply(*options)
    assert first.failed == 0, first.output[-4000:]
    assert host.read(f"{ONION_DIR}/hostname") == before, "a reinstall must keep the onion address"
    assert host.stat(f"{ONION_DIR}/hs_ed25519_secret_key")[0::2] == ("debian-tor", 0o600)
    assert host.stat("/etc/nginx/tls/privkey.pem") == ("root", "root", 0o600)
    assert not (host.root / "etc/nginx/sites-enabled/default").exists()
    assert (host.root / "etc/systemd/system/multi-user.target.wants/nginx.service").exists()
    checked = host.run(["nginx", "-t"])
    assert checked.returncode == 0, checked.stderr
    again = host.apply(*options)
    assert (again.failed, again.changed) == (0, 0), again.changed_tasks()

    # nginx listens on every address, as on the real host: new network and process namespaces keep it
    # private and end every process it and the app started when the probe ends.
    (host.root / "tmp/clearnet_probe.py").write_text(CLEARNET_PROBE)
    script = (f"{shlex.join([*SERVE_AS_DEPLOYED, '127.0.0.1:8181'])} >/tmp/blog.log 2>&1 & app=$!; "
              f"nginx && python3 /tmp/clearnet_probe.py {CLEARNET_DOMAIN}; status=$?; "
              "nginx -s stop; kill $app; wait $app; exit $status")
    probe = run(["unshare", "--net", "--pid", "--fork", "--kill-child", "sh", "-c",
                 'ip link set lo up && exec chroot "$0" sh -c "$1"', str(host.root), script], timeout=180)
    assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-2000:] + host.sh("cat /tmp/blog.log")
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    https, plain = answers["https"], answers["http"]
    onion = host.read(f"{ONION_DIR}/hostname").strip()
    assert "The engineering log" in https["body"]
    assert https["onion_locations"] == [f"http://{onion}/"], "one Onion-Location, the app's (nginx adds none)"
    assert https["headers"]["strict-transport-security"].startswith("max-age=")
    assert "server" not in https["headers"], https["headers"]
    assert (plain["status"], plain["headers"]["location"]) == (301, f"https://{CLEARNET_DOMAIN}/")
    assert "server" not in plain["headers"], plain["headers"]
    assert not host.sh("cat /var/log/nginx/*access*.log 2>/dev/null"), "nginx must not log readers' addresses"


def fetch(url: str) -> str | None:
    """Return the page's text, or None while the server is not answering yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        time.sleep(0.5)
        return None
