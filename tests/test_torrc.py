"""torrc.template: rendered like Ansible renders it, and accepted by a real `tor --verify-config`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tor_helpers import require_tor

from blog.tor.errors import TargetRefusedError, TorrcError
from blog.tor.torrc import TEMPLATE, TorrcValues, render_torrc, verify_torrc
from processes import free_port


def values(tmp_path: Path, **changes: object) -> TorrcValues:
    hs_dir = tmp_path / "hs"
    hs_dir.mkdir(mode=0o700, exist_ok=True)
    return dataclasses.replace(
        TorrcValues(
            tor_data_dir=str(tmp_path / "data"), control_socket=str(tmp_path / "control"),
            cookie_file=str(tmp_path / "cookie"), socks_port=f"127.0.0.1:{free_port()}",
            onion_dir=str(hs_dir),
        ),
        **changes,
    )


def directives(text: str) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: rest for key, rest in pairs}


def test_the_rendered_torrc_carries_the_defences_and_no_tcp_control(tmp_path: Path) -> None:
    conf = directives(render_torrc(values(tmp_path)))
    assert conf["ControlPort"] == "0"
    assert conf["CookieAuthFileGroupReadable"] == "1"
    assert conf["HiddenServicePort"] == "80 127.0.0.1:8000"
    assert conf["HiddenServicePoWDefensesEnabled"] == "1"
    assert conf["HiddenServiceEnableIntroDoSDefense"] == "1"
    assert conf["HiddenServiceMaxStreamsCloseCircuit"] == "1"
    assert conf["SocksPort"].endswith("IsolateDestAddr")
    assert conf["SafeLogging"] == "1"


def test_every_directive_in_the_template_is_explained_or_obvious() -> None:
    obvious = {"DataDirectory", "CookieAuthentication", "CookieAuthFile", "ControlSocketsGroupWritable",
               "HiddenServiceEnableIntroDoSRatePerSec", "HiddenServiceEnableIntroDoSBurstPerSec",
               "GeoIPv6File", "Log", "HiddenServiceNonAnonymousMode", "HiddenServiceSingleHopMode",
               "HiddenServiceMaxStreams", "SocksPort"}
    explained = False  # a comment opens the paragraph this directive belongs to
    for line in TEMPLATE.read_text().splitlines():
        if not line.strip():
            explained = False
        elif line.startswith("#"):
            explained = True
        elif line[0].isupper() and line.split()[0] not in obvious:
            assert explained, f"torrc.template: say why for {line!r}"


@pytest.mark.tor
@pytest.mark.parametrize("changes", [
    {}, {"onion_dir": ""}, {"single_hop": True}, {"onion_target": "unix:/run/blog/web.sock"},
    {"onion_pow": False},
], ids=["hidden-service-dir", "attach-only", "single-onion", "unix-target", "no-pow"])
def test_tor_accepts_the_rendered_torrc(tmp_path: Path, changes: dict[str, object]) -> None:
    require_tor()
    verify_torrc(render_torrc(values(tmp_path, **changes)))


@pytest.mark.tor
def test_tor_refuses_a_broken_render(tmp_path: Path) -> None:
    require_tor()
    with pytest.raises(TorrcError, match="HiddenServiceMaxStreams"):
        verify_torrc(render_torrc(values(tmp_path, onion_max_streams="lots")))


def test_a_missing_variable_is_refused_before_tor_sees_it(tmp_path: Path) -> None:
    template = tmp_path / "torrc.template"
    template.write_text("SocksPort {{ socks_port }}\nHiddenServiceDir {{ not_a_setting }}\n")
    with pytest.raises(TorrcError, match="not_a_setting"):
        render_torrc(TorrcValues(), template)


def test_a_public_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetRefusedError):
        render_torrc(values(tmp_path, onion_target="203.0.113.5:80"))


def test_blog_torrc_renders_the_hidden_service_block_on_request(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner

    from blog.cli.tor import register

    group = click.Group()
    register(group)
    (tmp_path / "blog.toml").write_text("")
    env = {"BLOG_CONFIG": str(tmp_path / "blog.toml")}
    with_dir = CliRunner().invoke(group, ["torrc", "--no-verify", "--onion-dir", "/var/lib/tor/blog"],
                                  obj={}, env=env)
    assert with_dir.exit_code == 0, with_dir.output
    assert "HiddenServiceDir /var/lib/tor/blog\n" in with_dir.stdout
    without = CliRunner().invoke(group, ["torrc", "--no-verify"], obj={}, env=env)
    assert without.exit_code == 0 and "HiddenServiceDir" not in without.stdout
    refused = CliRunner().invoke(group, ["torrc", "--no-verify", "--target", "0.0.0.0:80"], obj={}, env=env)
    assert refused.exit_code == 1 and "refusing onion target" in refused.output
