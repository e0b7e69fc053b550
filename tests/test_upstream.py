"""Upstream claims: forge URL shapes, recorded API answers, and verification over a private Tor network."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, make_config

from blog.cli import cli
from blog.honesty import HonestyError
from blog.honesty.claims import read_cache
from blog.honesty.forges import parse_state, parse_url
from blog.honesty.upstream import parse_overrides
from processes import free_port

FORGE = DATA / "forge"
ROUTES = {k: v for k, v in json.loads((FORGE / "routes.json").read_text()).items() if k.startswith("/")}
ENTRY = "log/2026-10-02-verify-config.md"
HOSTS = ("github.com", "gitlab.torproject.org", "codeberg.org", "git.example.org")
UPSTREAM = """upstream:
  - {url: https://github.com/torproject/stem/pull/142, merged: 2026-03-02}
  - https://github.com/benoitc/gunicorn/pull/3301
  - {url: https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/812, merged: 2026-01-28}
  - https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/845
  - https://codeberg.org/whoosh-ng/whoosh/pulls/57
  - {url: https://git.example.org/ops/a2wsgi-notes/pulls/9, merged: 2026-11-24}
"""


class StandInForge:
    """A real HTTP server on 127.0.0.1 answering each forge's API paths with recorded responses."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                name = ROUTES.get(self.path)
                body = (FORGE / name).read_bytes() if name else b'{"message": "Not Found"}'
                self.send_response(200 if name else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandInForge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def override(self) -> str:
        return ",".join(f"{host}={self.url}" for host in HOSTS)


def run(content: Path, forge: StandInForge, *args: str, socks: str = "") -> tuple[int, str]:
    env = {"BLOG_UPSTREAM_API_OVERRIDE": forge.override(), "BLOG_CONFIG": None,
           "BLOG_TOR_SOCKS": socks or f"127.0.0.1:{free_port()}"}
    result = CliRunner().invoke(cli, ["--content", str(content), "--data", str(content.parent / "data"), *args],
                                env=env)
    return result.exit_code, result.output


def with_upstream(site_dir: Path, text: str = UPSTREAM) -> Path:
    path = site_dir / ENTRY
    path.write_text(path.read_text().replace("\n---\n", f"\n{text}---\n", 1))
    return site_dir


@pytest.mark.parametrize(("url", "forge", "api"), [
    ("https://github.com/torproject/stem/pull/142", "github", "https://api.github.com/repos/torproject/stem/pulls/142"),
    ("https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/812", "gitlab",
     "https://gitlab.torproject.org/api/v4/projects/tpo%2Fcore%2Ftor/merge_requests/812"),
    ("https://gitlab.com/group/project/-/merge_requests/3/", "gitlab",
     "https://gitlab.com/api/v4/projects/group%2Fproject/merge_requests/3"),
    ("https://codeberg.org/whoosh-ng/whoosh/pulls/57", "gitea", "https://codeberg.org/api/v1/repos/whoosh-ng/whoosh/pulls/57"),
])
def test_pull_request_urls_of_each_forge(url: str, forge: str, api: str) -> None:
    pull = parse_url(url)
    assert (pull.forge, pull.api_url({})) == (forge, api)
    assert pull.api_url({pull.host: "http://127.0.0.1:9"}) == "http://127.0.0.1:9" + api.split(".org", 1)[-1].split(
        ".com", 1)[-1]


@pytest.mark.parametrize("url", ["https://github.com/o/r/issues/1", "http://github.com/o/r/pull/1",
                                 "https://example.org/some/page", "https://github.com/o/r/pull/x"])
def test_other_urls_are_refused_with_the_known_shapes(url: str) -> None:
    with pytest.raises(HonestyError, match="merge_requests/N"):
        parse_url(url)


@pytest.mark.parametrize(("url", "name", "state", "day"), [
    ("https://github.com/torproject/stem/pull/142", "github-merged.json", "merged", "2026-03-02"),
    ("https://github.com/benoitc/gunicorn/pull/3301", "github-open.json", "open", None),
    ("https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/812", "gitlab-merged.json", "merged", "2026-01-28"),
    ("https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/845", "gitlab-opened.json", "open", None),
    ("https://codeberg.org/whoosh-ng/whoosh/pulls/57", "gitea-closed.json", "closed", None),
    ("https://git.example.org/ops/a2wsgi-notes/pulls/9", "gitea-merged.json", "merged", "2026-11-24"),  # +01:00
])
def test_recorded_answers_give_the_state_and_the_utc_merge_day(url: str, name: str, state: str,
                                                               day: str | None) -> None:
    found, merged_at = parse_state(parse_url(url), json.loads((FORGE / name).read_text()))
    assert found == state
    assert (merged_at.date().isoformat() if merged_at else None) == day


def test_overrides_must_name_a_host_and_a_base() -> None:
    assert parse_overrides("github.com=http://127.0.0.1:1, codeberg.org=http://127.0.0.1:2") == {
        "github.com": "http://127.0.0.1:1", "codeberg.org": "http://127.0.0.1:2"}
    with pytest.raises(HonestyError, match="HOST=http"):
        parse_overrides("github.com")


def test_check_refuses_an_upstream_link_of_unknown_shape(site_dir: Path) -> None:
    with_upstream(site_dir, "upstream:\n  - https://github.com/o/r/issues/7\n")
    with StandInForge() as forge:
        code, output = run(site_dir, forge, "check")
    assert code == 1 and "issues/7" in output and "/pull/N" in output


def test_verification_refuses_to_run_without_tor(site_dir: Path) -> None:
    with_upstream(site_dir)
    with StandInForge() as forge:
        code, output = run(site_dir, forge, "upstream", "verify", "--socks", f"127.0.0.1:{free_port()}")
        assert forge.hits == []  # nothing went direct
    assert code == 1
    assert "is tor running" in output and "nothing was recorded" in output
    assert not (site_dir / "upstream.json").exists()


def test_verification_over_the_private_tor_network(tornet, site_dir: Path, tmp_path: Path) -> None:
    with_upstream(site_dir)
    socks = f"127.0.0.1:{tornet.socks_port}"
    with StandInForge() as forge:
        assert tornet.exit_reaches(forge.url + "/repos/torproject/stem/pulls/142", timeout=90)
        forge.hits.clear()
        code, output = run(site_dir, forge, "upstream", "verify", "--socks", socks)
        assert code == 0, output
        assert sorted(forge.hits) == sorted(ROUTES)
        states = read_cache(site_dir)
        assert {url: s.state for url, s in states.items()} == {
            "https://github.com/torproject/stem/pull/142": "merged",
            "https://github.com/benoitc/gunicorn/pull/3301": "open",
            "https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/812": "merged",
            "https://gitlab.torproject.org/tpo/core/tor/-/merge_requests/845": "open",
            "https://codeberg.org/whoosh-ng/whoosh/pulls/57": "closed",
            "https://git.example.org/ops/a2wsgi-notes/pulls/9": "merged",
        }
        checked = states["https://github.com/torproject/stem/pull/142"].checked
        assert "merged on 2026-03-02 (checked" in output

        from tests.conftest import make_app

        page = make_app(make_config(site_dir, tmp_path / "data")).test_client().get("/log/verify-config")
        text = page.get_data(as_text=True)
        assert f"merged on 2026-03-02 (checked {checked:%Y-%m-%d})" in text
        assert "pull/3301</a>: open (checked" in text
        assert "pulls/57</a>: closed unmerged (checked" in text

        code, output = run(site_dir, forge, "check", "--upstream", socks=socks)
        assert code == 0, output
        path = site_dir / ENTRY
        path.write_text(path.read_text().replace("merged: 2026-03-02", "merged: 2026-03-01").replace(
            "https://github.com/benoitc/gunicorn/pull/3301",
            "{url: https://github.com/benoitc/gunicorn/pull/3301, merged: 2026-11-01}"))
        code, output = run(site_dir, forge, "check", "--upstream", socks=socks)
        assert code == 1
        assert "claims https://github.com/torproject/stem/pull/142 merged on 2026-03-01" in output
        assert "write merged: 2026-03-02" in output
        assert "claims https://github.com/benoitc/gunicorn/pull/3301 merged on 2026-11-01, but the forge says open" \
            in output
