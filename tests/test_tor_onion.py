"""The onion service against real tor processes: key handling, both modes, DoS options, reconnects."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from stem.control import EventType
from tor_helpers import SystemTor, kill_pid, require_tor, wait_for

from blog.tor import hsdir, keys
from blog.tor.control import connect
from blog.tor.errors import (
    ControlUnreachableError,
    KeyFileError,
    PublishError,
    TargetRefusedError,
    TorNotInstalledError,
)
from blog.tor.onion import OnionService, add_onion, check_target, status_from


def make_service(tmp_path: Path, control: str | None, **options: object) -> OnionService:
    data = tmp_path / "app"
    return OnionService(control=control, data_dir=data, key_path=data / "onion" / "hs_ed25519_secret_key",
                        target="127.0.0.1:8000", disable_network=True, **options)


@pytest.fixture
def services():
    started: list[OnionService] = []
    yield started
    for service in started:
        pid = service.tor_pid
        service.stop()
        kill_pid(pid)


@pytest.fixture
def system_tors():
    started: list[SystemTor] = []
    yield started
    for tor in started:
        tor.stop()


def test_key_is_created_once_in_tors_format_with_private_modes(tmp_path: Path) -> None:
    path = tmp_path / "onion" / "hs_ed25519_secret_key"
    key = keys.load_or_create_key(path)
    assert len(key) == 64
    assert path.read_bytes() == b"== ed25519v1-secret: type0 ==\x00\x00\x00" + key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert keys.load_or_create_key(path) == key


def test_a_key_readable_by_others_is_refused_with_the_chmod_to_run(tmp_path: Path) -> None:
    path = tmp_path / "onion" / "hs_ed25519_secret_key"
    keys.load_or_create_key(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError) as caught:
        keys.read_key(path)
    assert f"chmod 600 {path}" in str(caught.value)


def test_a_file_that_is_not_a_tor_key_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"not a key" * 10)
    with pytest.raises(KeyFileError, match="not a tor ed25519 v3 secret key"):
        keys.import_key(bogus, tmp_path / "onion" / "hs_ed25519_secret_key")


def test_export_then_import_moves_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "a" / "hs_ed25519_secret_key"
    key = keys.load_or_create_key(path)
    keys.remember_address(path, "old")
    backup = tmp_path / "backup" / "hs_ed25519_secret_key"
    keys.export_key(path, backup)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with pytest.raises(KeyFileError, match="already exists"):
        keys.export_key(path, backup)
    other = tmp_path / "b" / "hs_ed25519_secret_key"
    keys.load_or_create_key(other)
    keys.remember_address(other, "stale")
    keys.import_key(backup, other)
    assert keys.read_key(other) == key
    assert keys.known_address(other) is None


@pytest.mark.parametrize("target", ["127.0.0.1:8000", "[::1]:8080", "unix:/run/blog/web.sock"])
def test_loopback_and_unix_targets_are_accepted(target: str) -> None:
    assert check_target(target) == target


@pytest.mark.parametrize("target", ["0.0.0.0:8000", "192.0.2.7:80", "example.org:80", "127.0.0.1", "8000"])
def test_public_or_malformed_targets_are_refused(target: str) -> None:
    with pytest.raises(TargetRefusedError, match=r"must be 127\.0\.0\.1:PORT"):
        check_target(target)


def test_missing_tor_binary_says_how_to_install_it(tmp_path: Path) -> None:
    service = make_service(tmp_path, None, tor_cmd=str(tmp_path / "no-such-tor"))
    with pytest.raises(TorNotInstalledError, match="apt-get install tor"):
        service.start()


@pytest.mark.parametrize("control", ["/nonexistent/tor/control", "127.0.0.1:1"])
def test_unreachable_control_asks_whether_tor_runs(control: str) -> None:
    with pytest.raises(ControlUnreachableError, match="is tor running"):
        connect(control)


@pytest.mark.tor
def test_launch_mode_keeps_its_address_across_app_and_tor_restarts(tmp_path: Path, services) -> None:
    require_tor()
    first = make_service(tmp_path, None)
    services.append(first)
    address = first.start()
    assert len(address) == 56
    assert first.status().registered
    assert stat.S_IMODE((tmp_path / "app" / "tor").stat().st_mode) == 0o700

    kill_pid(first.tor_pid)  # tor dies under the running app; the supervisor relaunches it
    wait_for(lambda: first.reprovisions >= 1 and first.status().registered, what="re-provisioning")
    assert first.address == address
    assert "intro-point DoS 25/s burst 200" in first.status().defences  # the relaunched tor has them too
    first.stop()

    second = make_service(tmp_path, None)  # an app restart: a new object over the same data dir
    services.append(second)
    assert second.start() == address


@pytest.mark.tor
@pytest.mark.parametrize("control_socket", [False, True], ids=["ControlPort", "ControlSocket"])
def test_attach_mode_reprovisions_after_tor_restarts(
    tmp_path: Path, services, system_tors, control_socket: bool
) -> None:
    tor = SystemTor(tmp_path / "system", control_socket=control_socket).start()
    system_tors.append(tor)
    service = make_service(tmp_path, tor.control)
    services.append(service)
    address = service.start()
    status = service.status()
    assert status.connected and status.registered and not status.published
    assert status.bootstrap_summary == "Starting"

    tor.kill()
    wait_for(lambda: not service.status().connected, what="the app to notice tor is gone")
    tor.start()
    wait_for(lambda: service.reprovisions >= 1 and service.status().registered, what="re-provisioning")
    assert service.address == address

    service.stop()
    again = make_service(tmp_path, tor.control)
    services.append(again)
    assert again.start() == address


@pytest.mark.tor
def test_dos_defences_are_sent_and_tor_parses_them(tmp_path: Path, services, system_tors) -> None:
    tor = SystemTor(tmp_path / "system", control_socket=True).start()
    system_tors.append(tor)
    service = make_service(tmp_path, tor.control, max_streams=17)
    args = service.add_onion_args()
    assert "Flags=DiscardPK,MaxStreamsCloseCircuit" in args
    assert "MaxStreams=17" in args and "PoWDefensesEnabled=1" in args
    services.append(service)
    service.start()  # tor accepted exactly these arguments
    assert service.status().defences.startswith("max streams 17 (close circuit), intro-point DoS off, "
                                                "proof-of-work on (sent with ADD_ONION")

    # Tor validates each keyword: out-of-range values are refused, so the accepted ones took effect.
    controller = connect(tor.control)
    try:
        key = keys.generate_key()
        with pytest.raises(PublishError, match="PoWDefensesEnabled"):
            add_onion(controller, key, "PoWDefensesEnabled=7 Port=80,127.0.0.1:8000")
        with pytest.raises(PublishError, match="MaxStreams"):
            add_onion(controller, key, "MaxStreams=70000 Port=80,127.0.0.1:8000")
    finally:
        controller.close()


def launched_service_options(service: OnionService) -> dict[str, str]:
    """Return the HiddenServiceDir group the service's launched tor holds, read with GETCONF."""
    controller = connect(str(service.tor_dir / "control"))
    try:
        groups = hsdir.read_services(controller)
    finally:
        controller.close()
    assert len(groups) == 1
    return groups[0]


@pytest.mark.tor
def test_launch_mode_publishes_with_every_dos_defence_read_back_from_tor(
    tmp_path: Path, services, system_tors
) -> None:
    require_tor()
    service = make_service(tmp_path, None, max_streams=17, intro_rate=11, intro_burst=99)
    services.append(service)
    address = service.start()
    assert launched_service_options(service) == {
        "HiddenServiceDir": str(service.service_dir),
        "HiddenServicePort": "80 127.0.0.1:8000",
        "HiddenServiceMaxStreams": "17",
        "HiddenServiceMaxStreamsCloseCircuit": "1",
        "HiddenServiceEnableIntroDoSDefense": "1",
        "HiddenServiceEnableIntroDoSRatePerSec": "11",
        "HiddenServiceEnableIntroDoSBurstPerSec": "99",
        "HiddenServicePoWDefensesEnabled": "1",
    }
    status = service.status()
    assert status.registered
    assert status.defences == ("max streams 17 (close circuit), intro-point DoS 11/s burst 99, "
                               "proof-of-work on (read back from tor)")
    separate = connect(str(service.tor_dir / "control"))  # as `blog onion status` sees it
    try:
        assert status_from(separate, address) == status
    finally:
        separate.close()
    copy = service.service_dir / "hs_ed25519_secret_key"
    assert copy.read_bytes() == service.key_path.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE(service.service_dir.stat().st_mode) == 0o700

    # The same key through ADD_ONION on another tor gives the same address: only the route differs.
    tor = SystemTor(tmp_path / "system", control_socket=True).start()
    system_tors.append(tor)
    controller = connect(tor.control)
    try:
        assert add_onion(controller, keys.read_key(service.key_path), "Port=80,127.0.0.1:8000") == address
    finally:
        controller.close()


@pytest.mark.tor
def test_launch_mode_without_pow_or_stream_limit_sends_neither(tmp_path: Path, services) -> None:
    require_tor()
    service = make_service(tmp_path, None, max_streams=0, pow=False)
    services.append(service)
    service.start()
    options = launched_service_options(service)
    assert "HiddenServicePoWDefensesEnabled" not in options and "HiddenServiceMaxStreams" not in options
    assert options["HiddenServiceEnableIntroDoSDefense"] == "1"
    assert service.status().defences.startswith("max streams unlimited, intro-point DoS 25/s burst 200, "
                                                "proof-of-work off")


@pytest.mark.tor
def test_launch_mode_options_tor_refuses_raise_publish_error_and_stop_tor(tmp_path: Path, services) -> None:
    require_tor()
    service = make_service(tmp_path, None, intro_rate=-1)
    services.append(service)
    with pytest.raises(PublishError, match="tor refused the onion service options"):
        service.start()
    assert service.tor_pid is None


@pytest.mark.tor
def test_an_imported_key_replaces_the_launched_services_address(tmp_path: Path, services) -> None:
    require_tor()
    first = make_service(tmp_path, None)
    services.append(first)
    old = first.start()
    first.stop()
    keys.write_key(first.key_path, keys.generate_key())  # as `blog onion import` does
    second = make_service(tmp_path, None)
    services.append(second)
    new = second.start()
    assert new != old and len(new) == 56
    assert (second.service_dir / "hostname").read_text().strip() == f"{new}.onion"


@pytest.mark.tor
def test_attach_mode_keeps_add_onion_because_a_reload_drops_setconf_services(
    tmp_path: Path, services, system_tors
) -> None:
    torrc_dir = tmp_path / "torrc-hs"
    keys.write_key(torrc_dir / "hs_ed25519_secret_key", keys.generate_key())
    tor = SystemTor(tmp_path / "system", control_socket=True,
                    extra={"HiddenServiceDir": str(torrc_dir), "HiddenServicePort": "80 127.0.0.1:9000"}).start()
    system_tors.append(tor)
    service = make_service(tmp_path, tor.control)
    services.append(service)
    service.start()

    # SETCONF on a system tor works when every torrc group is resent with ours...
    controller = connect(tor.control)
    try:
        existing = [(name, value) for group in hsdir.read_services(controller) for name, value in group.items()]
        ours = tmp_path / "setconf-hs"
        defences = hsdir.Defences(max_streams=32, close_circuit=True, intro_dos=True, intro_rate=25,
                                  intro_burst=200, pow=True)
        hsdir.publish_dir(controller, keys.generate_key(), ours,
                          existing + hsdir.service_options(ours, 80, "127.0.0.1:8000", defences))
        assert [g["HiddenServiceDir"] for g in hsdir.read_services(controller)] == [str(torrc_dir), str(ours)]

        # ...but a reload (Debian's logrotate runs one daily) drops it without closing any connection,
        # while the ADD_ONION service stays registered.
        # stem handles a SIGNAL event in its own thread, and closing the controller while that thread still
        # handles the reload deadlocks (close() joins it holding the lock it waits for): a listener added
        # after stem's own runs once stem's is done, so the test closes only after that.
        handled = threading.Event()
        controller.add_event_listener(lambda _event: handled.set(), EventType.SIGNAL)
        os.kill(tor.process.pid, signal.SIGHUP)
        wait_for(lambda: len(hsdir.read_services(controller)) == 1, what="tor to reload its torrc")
        assert handled.wait(20), "stem never handled tor's reload signal"
    finally:
        controller.close()
    assert service.status().registered and service.reprovisions == 0


@pytest.mark.tor
def test_exported_key_gives_the_same_address_in_a_hidden_service_dir(
    tmp_path: Path, services, system_tors
) -> None:
    require_tor()
    service = make_service(tmp_path, None)
    services.append(service)
    address = service.start()
    hs_dir = tmp_path / "hs"
    keys.export_key(service.key_path, hs_dir / "hs_ed25519_secret_key")
    tor = SystemTor(tmp_path / "system", control_socket=True,
                    extra={"HiddenServiceDir": str(hs_dir), "HiddenServicePort": "80 127.0.0.1:8000"})
    system_tors.append(tor.start())
    hostname = wait_for(lambda: (hs_dir / "hostname").exists() and (hs_dir / "hostname").read_text(),
                        what="tor to write the hostname file")
    assert hostname.strip() == f"{address}.onion"


@pytest.mark.tor
def test_single_onion_mode_launches_without_socks(tmp_path: Path, services) -> None:
    require_tor()
    service = make_service(tmp_path, None, single_hop=True)
    services.append(service)
    assert "NonAnonymous" in service.add_onion_args()
    assert len(service.start()) == 56
    assert service.socks is None
    assert launched_service_options(service)["HiddenServiceEnableIntroDoSDefense"] == "1"


def run_cli(args: list[str], tmp_path: Path, env: dict[str, str] | None = None, input: str | None = None,
            **obj: object):
    import click
    from click.testing import CliRunner

    from blog.cli.tor import register

    group = click.Group()
    register(group)
    settings = tmp_path / "blog.toml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings.write_text("")
    return CliRunner().invoke(group, args, obj={"data_dir": tmp_path / "app", **obj}, input=input,
                              env={"BLOG_CONFIG": str(settings), **(env or {})})


def test_cli_export_and_import_move_the_key(tmp_path: Path) -> None:
    key = keys.load_or_create_key(tmp_path / "app" / "onion" / "hs_ed25519_secret_key")
    backup = tmp_path / "backup" / "hs_ed25519_secret_key"
    assert run_cli(["onion", "export", str(backup)], tmp_path).exit_code == 0
    other = tmp_path / "other"
    result = run_cli(["onion", "import", str(backup)], other, data_dir=other / "app")
    assert result.exit_code == 0, result.output
    assert keys.read_key(other / "app" / "onion" / "hs_ed25519_secret_key") == key
    refused = run_cli(["onion", "import", str(backup)], other, data_dir=other / "app", input="n\n")
    assert refused.exit_code == 1 and "changes the onion address" in refused.output


@pytest.mark.tor
def test_cli_status_reports_address_and_bootstrap(tmp_path: Path, services, system_tors) -> None:
    tor = SystemTor(tmp_path / "system", control_socket=True).start()
    system_tors.append(tor)
    service = make_service(tmp_path, tor.control)
    services.append(service)
    address = service.start()
    env = {"BLOG_TOR_MODE": "attach", "BLOG_TOR_CONTROL": tor.control}
    result = run_cli(["onion", "status"], tmp_path, env=env)
    assert result.exit_code == 0, result.output
    assert f"address:    {address}.onion" in result.output
    assert "bootstrap:  0% Starting" in result.output
    assert "published:  no" in result.output
    tor.stop()
    down = run_cli(["onion", "status"], tmp_path, env=env)
    assert down.exit_code == 1 and "is tor running" in down.output


@pytest.mark.tor
@pytest.mark.timeout(120)
def test_closing_while_stem_handles_a_reload_gives_up_instead_of_hanging(tmp_path: Path, system_tors) -> None:
    # stem's event thread handles queued events in order: hold it in a listener for DUMP, queue a RELOAD
    # behind it, then close. stem's close() joins that thread holding the send lock its reload handler
    # needs, so controller.close() never returns; close_controller() gives up after CLOSE_SECONDS.
    from stem import Signal

    from blog.tor.control import CLOSE_SECONDS, close_controller

    tor = SystemTor(tmp_path / "system", control_socket=True).start()
    system_tors.append(tor)
    controller = connect(tor.control)
    held = threading.Event()
    controller.add_event_listener(lambda e: e.signal == "DUMP" and (held.set(), time.sleep(2)),
                                  EventType.SIGNAL)
    controller.signal(Signal.DUMP)
    assert held.wait(20), "tor sent no SIGNAL event"
    controller.signal(Signal.RELOAD)
    started = time.monotonic()
    close_controller(controller)
    took = time.monotonic() - started
    assert took < CLOSE_SECONDS + 2, took
    assert not controller.is_alive()
    assert tor.process.poll() is None  # the system tor stays up: closing a connection is all it was
