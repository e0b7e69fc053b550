"""`blog verify`: check a site's public revision log from the outside, as any reader holding its address can.

It fetches `/revisions.json`, checks the chain (numbering, links, each entry's revisions in order), the head's
signature against the key the onion address encodes, that a head seen earlier is still in it (`--since`), and
that what the site serves hashes to what the log records: every revision's Markdown, each entry page's
paragraphs and revision line, and the files each entry links. Every problem is one line naming the entry and
revision. Fetching is given (`Fetch`): the CLI hands it tor's egress, so the checks never leave Tor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lxml import html as lxml_html

from blog.honesty.chain import GENESIS, Record, chain_problems, head_of, parse_record
from blog.honesty.revlog import statement
from blog.render import render
from blog.tor import identity

Fetch = Callable[[str], tuple[int, bytes]]  # path -> (HTTP status, body); raises OSError-like on no answer
CONTENT_ANCHOR = re.compile(r"^(p|li|code|table)-[0-9a-f]{8}(-\d+)?$")
PARALLEL = 4  # entries checked at once
FILE_LINK = re.compile(r"^(?:https?://[^/]+)?(/files/[0-9a-f]{16}/[^/?#]+)$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Report:
    """What a verification found: the log's head and size, who signed it, and every problem, one line each."""

    head: str = GENESIS
    size: int = 0
    signed_by: str | None = None
    problems: list[str] = field(default_factory=list)
    records: tuple[Record, ...] = ()
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_log(fetch: Fetch, report: Report) -> bool:
    """Fetch /revisions.json into the report; return False (with the problem) when there is no usable log."""
    status, body = fetch("/revisions.json")
    if status != 200:
        report.problems.append(f"log: /revisions.json answered {status}: the site publishes no revision log")
        return False
    try:
        report.log = _json(body)
        report.records = tuple(parse_record(item) for item in report.log["records"])
    except (ValueError, TypeError, KeyError) as exc:
        report.problems.append(f"log: /revisions.json is not a revision log ({exc})")
        return False
    for item, record in zip(report.log["records"], report.records, strict=True):
        if item.get("hash") != record.hash:
            report.problems.append(f"log: record {record.seq} ({record.name}) does not hash to the hash it states")
    return True


def _json(body: bytes) -> dict[str, Any]:
    value = json.loads(body.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def check_chain(report: Report, address: str, since: str | None) -> None:
    """Check the chain's links and order, the signed head against the address, and that it extends `since`."""
    records = report.records
    report.problems += [f"log: record {r.seq} ({r.name}) {what}" for r, what in chain_problems(records)]
    head = report.log.get("head") or {}
    report.head, report.size = head_of(records), len(records)
    if head.get("hash") != report.head or head.get("size") != report.size:
        report.problems.append(f"log: the head says {head.get('hash')} over {head.get('size')} records, the records "
                               f"give {report.head} over {report.size}")
    _check_signature(report, head, address)
    if since:
        wanted = since.strip().lower()
        known = [GENESIS, *(r.hash for r in records)]
        if len(wanted) < 16 or not any(h.startswith(wanted) for h in known):
            report.problems.append(f"log: the head seen earlier ({since}) is not in this log: its history was "
                                   "rewritten or cut since (records were edited, dropped or reordered)")


def _check_signature(report: Report, head: dict[str, Any], address: str) -> None:
    name = identity.normalise(address)
    signature = head.get("signature")
    if not signature:
        report.problems.append(f"log: the head is not signed ({head.get('signed', 'no reason given')})")
        return
    if identity.normalise(str(head.get("address") or "")) != name:
        report.problems.append(f"log: the head names {head.get('address')}, not {name}.onion: another key signed it")
        return
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        raw = b""
    if not identity.verify(name, statement(name, report.head, report.size), raw):
        report.problems.append(f"log: the head's signature is not {name}.onion's: the log was signed by another "
                               "key, or changed after it was signed")
        return
    report.signed_by = f"{name}.onion"


def check_served(fetch: Fetch, report: Report) -> None:
    """Check that every revision's text, each entry page and each linked file hashes to what the log records."""
    by_slug: dict[str, list[Record]] = {}
    for record in report.records:
        by_slug.setdefault(record.slug, []).append(record)
    entries = report.log.get("entries") or {}
    slugs = sorted(set(by_slug) | set(entries))
    # A few entries at a time: over Tor each answer takes a round trip of a second or so, and the checks of
    # one entry do not depend on another's. The problems still come out in slug order.
    with ThreadPoolExecutor(PARALLEL) as pool:
        for found in pool.map(lambda slug: _check_entry(fetch, report.head, slug, by_slug.get(slug, []),
                                                        entries.get(slug)), slugs):
            report.problems += found


def _check_entry(fetch: Fetch, head: str, slug: str, records: list[Record], view: dict[str, Any] | None) -> list[str]:
    problems: list[str] = []
    if view is None:
        return [f"{slug} revision {records[-1].revision}: the log records it, but the site no longer shows the entry"]
    texts = [_check_text(fetch, problems, record) for record in records]
    served = int(view.get("revision") or 0)
    if served != len(records) or not view.get("recorded"):
        problems.append(f"{slug} revision {served}: the site shows it, but the log records "
                        f"{len(records)} revision(s) of the entry: a change without a recorded update")
    status, _ = fetch(f"/log/{slug}/revisions/{len(records) + 1}.md")
    if status == 200 and served == len(records):
        problems.append(f"{slug} revision {len(records) + 1}: the site serves its text, which the log does not "
                        "record")
    if records and texts[-1] is not None:
        _check_page(fetch, problems, head, records[-1], texts[-1], view)
    return problems


def _check_text(fetch: Fetch, problems: list[str], record: Record) -> str | None:
    status, body = fetch(f"/log/{record.slug}/revisions/{record.revision}.md")
    if status != 200:
        problems.append(f"{record.name}: its text is not served ({status})")
        return None
    if sha256(body) != record.body:
        problems.append(f"{record.name}: the served text hashes to {sha256(body)[:16]}…, the log records "
                        f"{record.body[:16]}…: the text was changed after it was recorded")
        return None
    return body.decode("utf-8")


def _check_page(fetch: Fetch, problems: list[str], head: str, record: Record, text: str,
                view: dict[str, Any]) -> None:
    """Check the entry page: its paragraphs are the recorded text's, its revision line and files the log's."""
    status, body = fetch(f"/log/{record.slug}")
    if status != 200:
        problems.append(f"{record.name}: the entry page answered {status}")
        return
    article = lxml_html.fromstring(body).find(".//article")
    if article is None:
        problems.append(f"{record.name}: the entry page has no article")
        return
    line = article.find(".//p[@data-head]")
    if line is None or (line.get("data-revision"), line.get("data-body"), line.get("data-head")) != (
            str(record.revision), record.body, head):
        said = (f"revision {line.get('data-revision')} under head {(line.get('data-head') or '')[:16]}"
                if line is not None else "nothing")
        problems.append(f"{record.name}: the entry page's revision line says {said}, the log's latest is "
                        f"revision {record.revision} under head {head[:16]}")
    for section in article.findall(".//section"):  # the update log and the replaced blocks' old anchors
        section.getparent().remove(section)
    shown_ids = [i for i in article.xpath(".//@id") if CONTENT_ANCHOR.match(i)]
    recorded_ids = [a for a in render(text).anchors() if CONTENT_ANCHOR.match(a)]
    if shown_ids != recorded_ids:
        extra = [a for a in shown_ids if a not in recorded_ids]
        missing = [a for a in recorded_ids if a not in shown_ids]
        problems.append(f"{record.name}: the entry page shows other paragraphs than the recorded text "
                        f"(not recorded: {', '.join(extra[:3]) or '-'}; missing: {', '.join(missing[:3]) or '-'})")
    urls = dict(view.get("files") or {})
    for path, digest in sorted(record.served.items()):
        url = urls.get(path)
        status, data = fetch(url) if url else (404, b"")
        if status != 200 or sha256(data) != digest:
            got = f"hashes to {sha256(data)[:16]}…" if status == 200 else f"is not served ({status})"
            problems.append(f"{record.name}: linked file {path} {got}, the log records {digest[:16]}…")
    linked = {m.group(1) for ref in article.xpath(".//@src | .//@href") for m in [FILE_LINK.match(ref)] if m}
    for url in sorted(linked - set(urls.values())):
        problems.append(f"{record.name}: the entry page links {url}, a file the log does not record")


def verify_site(fetch: Fetch, address: str, since: str | None = None) -> Report:
    """Check the log and everything it covers; return the report (problems empty when all holds)."""
    report = Report()
    if load_log(fetch, report):
        check_chain(report, address, since)
        check_served(fetch, report)
    return report


def cited_results(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the entry results in a stored tool answer: a search_blog answer, one of its results, or get_entry."""
    results = stored.get("results") if isinstance(stored.get("results"), list) else [stored]
    return [r for r in results if isinstance(r, dict) and r.get("revision") and r.get("source", "entry") == "entry"]


def verify_citation(fetch: Fetch, address: str, stored: dict[str, Any]) -> Report:
    """Check that what a stored answer quotes is the text the log records, under a log that extends its head."""
    report = Report()
    cited = cited_results(stored)
    if not cited:
        report.problems.append("citation: the file holds no result with a revision (a search_blog or get_entry "
                               "answer about an entry)")
        return report
    if not load_log(fetch, report):
        return report
    heads = {c.get("log_head") for c in cited} - {None}
    check_chain(report, address, None)
    known = {r.hash for r in report.records} | {GENESIS}
    for head in sorted(heads):
        if head not in known:
            report.problems.append(f"citation: the log head it was served under ({head}) is not in this log: "
                                   "the history was rewritten since")
    recorded = {(r.slug, r.revision): r for r in report.records}
    for result in cited:
        slug, number = str(result.get("slug")), int(result["revision"])
        name = f"{slug} revision {number}"
        record = recorded.get((slug, number))
        if record is None:
            report.problems.append(f"{name}: the citation names a revision the log does not record")
            continue
        if record.body != result.get("body_sha256"):
            report.problems.append(f"{name}: the citation's text hash {str(result.get('body_sha256'))[:16]}… is not "
                                   f"the recorded {record.body[:16]}…")
        text = _check_text(fetch, report.problems, record)
        if text is None or not result.get("anchor") or result.get("kind") in ("summary", "update"):
            continue  # a summary or an update note is front matter, not the recorded body
        blocks = {b.anchor: b for b in render(text).blocks}
        block = blocks.get(result["anchor"])
        if block is None:
            report.problems.append(f"{name}: paragraph #{result['anchor']} is not in the recorded text")
        elif result.get("text") and " ".join(str(result["text"]).split()) != " ".join(block.text.split()):
            report.problems.append(f"{name}: paragraph #{result['anchor']} says something else in the recorded text")
    return report
