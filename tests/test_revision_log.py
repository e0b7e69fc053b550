"""The public revision log: a hash chain beside the lock, signed by the onion address's key, checked from outside.

These tests serve the app in-process (Flask's test client as the verifier's fetch); tests/test_verify_tor.py
runs the same verifier through the private Tor network against `blog serve`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, make_config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from stem.descriptor.hidden_service import HiddenServiceDescriptorV3

from blog import pipeline
from blog.cli import cli
from blog.config import Config
from blog.content import ContentProblems
from blog.honesty.chain import read_chain
from blog.honesty.verify import verify_citation, verify_site
from blog.tor import identity, keys
from tests import tamper
from tests.pictures import add_picture_entry


def lock(content: Path) -> str:
    result = CliRunner().invoke(cli, ["--content", str(content), "--data", str(content.parent / "data"), "lock"])
    assert result.exit_code == 0, result.output
    return result.output


def fetcher(config: Config):
    """Return the verifier's fetch over a fresh worker app of the site (the build `current` names)."""
    from blog.web import create_app

    client = create_app(config).test_client()

    def fetch(path: str) -> tuple[int, bytes]:
        with client.get(path) as response:
            return response.status_code, response.data

    return fetch


@pytest.fixture
def signed_site(tmp_path: Path) -> Config:
    """The bundled log with a picture entry, locked, built and signed with a new onion key."""
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    add_picture_entry(content)
    lock(content)
    config = make_config(content, tmp_path / "data")
    keys.load_or_create_key(config.onion_key_path)
    pipeline.publish(config)
    return config


def address(config: Config) -> str:
    return identity.address_of(keys.read_key(config.onion_key_path))


def test_the_address_is_the_key_tor_publishes_and_signatures_check_with_any_ed25519_library() -> None:
    key = keys.generate_key()
    public = identity.public_key(key)
    assert identity.address_of(key) == HiddenServiceDescriptorV3.address_from_identity_key(public).removesuffix(
        ".onion")
    signature = identity.sign(key, b"message")
    Ed25519PublicKey.from_public_bytes(identity.public_key_of(identity.address_of(key))).verify(signature, b"message")
    assert identity.verify(identity.address_of(key), b"message", signature)
    assert not identity.verify(identity.address_of(key), b"massage", signature)
    wrong = identity.address_of(key)[:-2] + ("ab" if not identity.address_of(key).endswith("ab") else "cd")
    with pytest.raises(identity.AddressError, match=r"checksum|version"):
        identity.public_key_of(wrong)


def test_the_untampered_site_verifies_clean_and_the_key_stays_private(signed_site: Config) -> None:
    report = verify_site(fetcher(signed_site), address(signed_site))
    assert report.problems == []
    assert report.signed_by == f"{address(signed_site)}.onion" and report.size == len(read_chain(
        signed_site.content_dir))
    assert stat.S_IMODE(signed_site.onion_key_path.stat().st_mode) == 0o600
    secret = keys.read_key(signed_site.onion_key_path)
    for file in signed_site.data_dir.rglob("*"):
        if file.is_file() and file != signed_site.onion_key_path:
            data = file.read_bytes()
            assert secret[:32] not in data and secret[32:] not in data, f"key material in {file}"


@pytest.mark.parametrize("name", [*tamper.TAMPERS, "serve the log signed by another onion key"])
def test_each_tamper_is_caught_with_a_line_naming_entry_and_revision(signed_site: Config, tmp_path: Path,
                                                                     name: str) -> None:
    tamper.publish_tampered(signed_site, tmp_path / "scratch", name)
    problems = verify_site(fetcher(signed_site), address(signed_site)).problems
    assert any(tamper.CAUGHT[name] in p for p in problems), problems


def test_since_catches_a_rewritten_history_a_fresh_verify_accepts(signed_site: Config, tmp_path: Path) -> None:
    old = tamper.rewrite_history(signed_site, tmp_path / "scratch")
    fetch = fetcher(signed_site)
    assert verify_site(fetch, address(signed_site)).problems == []
    problems = verify_site(fetch, address(signed_site), since=old).problems
    assert problems == [f"log: the head seen earlier ({old}) is not in this log: its history was rewritten or "
                        "cut since (records were edited, dropped or reordered)"]


def test_a_build_refuses_a_lock_edited_after_the_chain_recorded_it(signed_site: Config) -> None:
    tamper.edit_old_body(signed_site.content_dir)
    with pytest.raises(ContentProblems) as refused:
        pipeline.publish(signed_site, force=True)
    assert f"{tamper.REVISED} revision 1 in published.lock has another body than the chain recorded" in str(
        refused.value)
    result = CliRunner().invoke(cli, ["--content", str(signed_site.content_dir), "--data",
                                      str(signed_site.data_dir), "check"])
    assert result.exit_code == 1 and "content/published.chain:" in result.output


def test_moving_hosts_with_onion_export_and_import_keeps_the_chain_and_its_signer(signed_site: Config,
                                                                                 tmp_path: Path) -> None:
    before = verify_site(fetcher(signed_site), address(signed_site))
    runner = CliRunner()
    exported = tmp_path / "backup" / "hs_ed25519_secret_key"
    done = runner.invoke(cli, ["--content", str(signed_site.content_dir), "--data", str(signed_site.data_dir),
                               "onion", "export", str(exported)])
    assert done.exit_code == 0, done.output
    moved = signed_site.replace(data_dir=tmp_path / "new-host")
    done = runner.invoke(cli, ["--content", str(moved.content_dir), "--data", str(moved.data_dir),
                               "onion", "import", str(exported)])
    assert done.exit_code == 0, done.output
    pipeline.publish(moved)
    after = verify_site(fetcher(moved), address(signed_site), since=before.head)
    assert after.problems == [] and (after.head, after.signed_by) == (before.head, before.signed_by)


def test_a_site_without_an_onion_key_publishes_its_log_unsigned_and_says_so(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    config = make_config(content, tmp_path / "data")
    pipeline.publish(config)
    fetch = fetcher(config)
    log = json.loads(fetch("/revisions.json")[1])
    assert log["head"]["signature"] is None and "no onion key" in log["head"]["signed"]
    assert "not signed (this site has no onion key" in fetch("/llms.txt")[1].decode()
    assert not config.onion_key_path.exists()  # a build never creates a key
    other = identity.address_of(keys.generate_key())
    assert "log: the head is not signed" in verify_site(fetch, other).problems[0]


def test_a_key_imported_later_signs_the_next_build_the_builder_prepares(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    config = make_config(content, tmp_path / "data")
    first = pipeline.ensure_current(config)
    assert first.revlog.signature is None
    keys.load_or_create_key(config.onion_key_path)  # `blog serve` starts the onion after its first build
    again = pipeline.ensure_current(config)
    assert again.revlog.address == address(config) and again.revlog.signature
    assert pipeline.ensure_current(config).created == again.created  # signed by this key: nothing to redo


def test_a_stored_citation_verifies_and_a_forged_one_does_not(signed_site: Config, tmp_path: Path) -> None:
    from blog.index.search import Search
    from blog.mcp.tools import BlogTools
    from blog.serving.current import SiteState

    state = SiteState(signed_site)
    state.start()
    answer = BlogTools(lambda: state.snapshot.build, Search(), "http://x.onion", "").search(
        None, "verify-config", 3, None, None, None)
    stored = json.loads(answer.model_dump_json())
    first = stored["results"][0]
    assert first["revision"] == 1 and first["log_head"] == read_chain(signed_site.content_dir)[-1].hash
    assert first["body_sha256"] == hashlib.sha256(
        fetcher(signed_site)(f"/log/{first['slug']}/revisions/1.md")[1]).hexdigest()
    (tmp_path / "answer.json").write_text(json.dumps(stored))
    fetch = fetcher(signed_site)
    assert verify_citation(fetch, address(signed_site), json.loads((tmp_path / "answer.json").read_text())
                           ).problems == []
    first["text"] = first["text"].replace("tor", "TOR")
    problems = verify_citation(fetch, address(signed_site), stored).problems
    assert problems == [f"{first['slug']} revision 1: paragraph #{first['anchor']} says something else in the "
                        "recorded text"]


def test_blog_lock_starts_the_chain_of_an_older_content_tree_and_check_asks_for_it(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    (content / "published.chain").unlink()
    runner = CliRunner()
    args = ["--content", str(content), "--data", str(tmp_path / "data")]
    checked = runner.invoke(cli, [*args, "check"])
    assert checked.exit_code == 0 and "published.chain does not exist yet: run `blog lock`" in checked.output
    output = lock(content)
    assert "started published.chain from published.lock: appended 10 record(s)" in output
    assert (content / "published.chain").read_bytes() == (ROOT / "content" / "published.chain").read_bytes()


def test_blog_verify_refuses_a_bad_address_and_fails_closed_without_tor(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["verify", "example.org"], env={"BLOG_CONFIG": "/dev/null"})
    assert bad.exit_code == 1 and "is not a v3 onion address" in bad.output
    name = identity.address_of(keys.generate_key())
    closed = runner.invoke(cli, ["verify", name, "--socks", "127.0.0.1:1"], env={"BLOG_CONFIG": "/dev/null"})
    assert closed.exit_code == 1 and "Nothing was sent" in closed.output and "nothing was verified" in closed.output


def test_the_verifier_stops_reading_an_endless_answer(tmp_path: Path) -> None:
    import http.server
    import threading

    import httpx2

    from blog.cli.verify import ANSWER_LIMIT, Unreachable, onion_fetcher

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(ANSWER_LIMIT // 2**16 + 64):
                    self.wfile.write(b"x" * 2**16)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx2.Client(trust_env=False, timeout=30) as client:
            fetch = onion_fetcher(client, f"http://127.0.0.1:{server.server_address[1]}")
            with pytest.raises(Unreachable, match="sent more than 8 MiB"):
                fetch("/log/x/revisions/1.md")
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_serving_the_signed_log_never_loads_the_tor_room(signed_site: Config) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import blog.gunicorn_conf\n"  # what the master imports before it forks the workers
        "from blog.web import create_app\n"
        "client = create_app().test_client()\n"
        "for path in ('/log/tor-verify-config', '/revisions.json', '/log/rack-pictures/revisions.json'):\n"
        "    assert client.get(path).status_code == 200, path\n"
        "print(sorted(m for m in sys.modules if m.startswith(('blog.tor', 'nacl', 'stem'))))\n")
    env = {"BLOG_CONFIG": "/dev/null", "BLOG_CONTENT_DIR": str(signed_site.content_dir),
           "BLOG_DATA_DIR": str(signed_site.data_dir), "BLOG_SEMANTIC": "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
