"""`make bench`: run every bench in one go, print one table, write docs/performance.{json,png,md}.

    python -m bench                       # everything (5-6 minutes on 2 busy cores)
    python -m bench --quick               # only this file's figures: no Tor, no other engineers' benches
    python -m bench --seconds 5 --rounds 2 --sizes 0 1000 --no-tor --no-browser --no-others
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ceilings, chart, coldstart, pages
from processes import ROOT, Gunicorn, rss_mib

log = logging.getLogger("bench")

DOCS = ROOT / "docs"
BEGIN, END = "<!-- bench:figures:begin -->", "<!-- bench:figures:end -->"
# Other engineers' benches, run as they are; their stdout is kept whole in the JSON.
OTHERS = {"quality": ["-m", "bench.quality"], "mcp": ["-m", "bench.mcp", "--rounds", "1", "--seconds", "3"],
          "search": ["-m", "bench.search", "--sizes", "1000"],
          "semantic": ["-m", "bench.semantic", "--entries", "1000", "--sample", "500"],
          # the whole served stack's PSS by process, demo log and 1,000 entries (bench/memory.py); the large
          # log's vectors are stand-ins of the same size: embedding it takes 12 minutes and more
          "memory": ["-m", "bench.memory", "--stand-in"],
          # the stack and its tor inside a 512 MB memory cgroup, 60 s under load (root, cgroup v1)
          "host512": ["-m", "bench.host512", "--seconds", "60"]}
TIMEOUTS: dict[str, float] = {}  # a bench that needs longer than 600 s

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk run (5-10 s)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved wrk rounds per case; the best counts")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1000], help="extra entries for cold starts")
    parser.add_argument("--no-tor", action="store_true", help="skip the private Tor network path")
    parser.add_argument("--no-browser", action="store_true", help="skip headless Chromium's request count")
    parser.add_argument("--no-others", action="store_true",
                        help="skip bench.load/quality/mcp/search/semantic/memory/host512")
    parser.add_argument("--quick", action="store_true", help="--no-tor --no-others --sizes 0")
    parser.add_argument("--out", type=Path, default=DOCS, help="where performance.{json,png,md} go")
    args = parser.parse_args()
    if args.quick:
        args.no_tor, args.no_others, args.sizes = True, True, [0]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("stem").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        results = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["bench_wall_s"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "performance.json").write_text(json.dumps(results, indent=1) + "\n")
    chart.draw(results, args.out / "performance.png")
    table = render_table(results)
    update_markdown(args.out / "performance.md", table)
    print(table)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run the benches against one app server where they share it; return every figure."""
    content = coldstart.corpus(work / "content", 0)
    types = pages.page_types(content)
    results: dict[str, Any] = {"machine": _machine(), "command": " ".join(["python -m bench", *sys.argv[1:]]),
                               "page_types": {t.name: t.path for t in types}}
    with Gunicorn(content, work / "data", log_path=work / "app.log").start(timeout=180) as app:
        results["wire_bytes"] = pages.wire_sizes(app.port, types)
        if not args.no_browser:
            results["browser_requests"] = _guard(lambda: pages.browser_requests(app.url, types))
        results["ceilings"] = ceilings.run(app, types, work, args.seconds, args.rounds)
        if not args.no_others:
            results["load_mix"] = _guard(lambda: _load_mix(app.url))
        results["rss_after_load_mib"] = {"workers": [round(rss_mib(p), 1) for p in app.worker_pids()],
                                         "master": round(rss_mib(app.process.pid), 1) if app.process else 0.0}
        if not args.no_tor:
            from bench import tor_path

            results["tor_path"] = _guard(lambda: tor_path.run(app, types))
    results["in_process_us"] = _guard(lambda: ceilings.in_process(content, work / "data", types, work / "bare.json"))
    results["coldstart"] = _guard(lambda: coldstart.run(work / "cold", tuple(args.sizes)))
    if not args.no_others:
        results["others"] = {name: _other(argv, TIMEOUTS.get(name, 600)) for name, argv in OTHERS.items()}
    return results


def _guard(step: Any) -> Any:
    """Run one optional step; a failure is recorded in the results rather than losing the whole run."""
    try:
        return step()
    except Exception as exc:  # one optional part must not lose the other figures of a 10-minute run
        log.exception("bench step failed")
        return {"error": f"{type(exc).__name__}: {exc}"}


def _load_mix(url: str) -> dict[str, Any]:
    """Run bench.load's reader+agent mix (search and MCP p99 included) against the same server."""
    done = subprocess.run([sys.executable, "-m", "bench.load", "--url", url, "--seconds", "10", "--connections",
                           "16"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout)


def _other(argv: list[str], timeout: float = 600) -> dict[str, Any]:
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "argv": argv}
    return {"argv": argv, "returncode": done.returncode, "wall_s": round(time.monotonic() - start, 1),
            "stdout": done.stdout[-6000:], "stderr": done.stderr[-1500:] if done.returncode else ""}


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_start": os.getloadavg(),
            "worker_class": os.environ.get("BLOG_WORKER_CLASS", "production default")}


def render_table(r: dict[str, Any]) -> str:
    """Return every figure as one plain-text table."""
    lines = [f"load generator: {r['ceilings']['load_generator']}", "",
             f"{'page':8} {'case':6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   c/b    c/a"]
    cases = r["ceilings"]["cases"]
    for page in cases["app"]:
        ratio = r["ceilings"]["ratios"][page]
        for case in ("nginx", "bare", "app"):
            f = cases[case][page]
            tail = f"  {ratio['c_over_b']:5.2f}  {ratio['c_over_a']:5.2f}" if case == "app" else ""
            lines.append(f"{page:8} {case:6} {f['rps']:9.0f} {f['p50_ms']:8.2f} {f['p99_ms']:8.2f}{tail}")
    f = cases["app_304"]["entry"]
    lines += [f"{'entry':8} {'304':6} {f['rps']:9.0f} {f['p50_ms']:8.2f} {f['p99_ms']:8.2f}", ""]
    timed = r.get("in_process_us", {})
    if timed and "error" not in timed:
        lines.append(f"{'page':8} {'bare µs':>9} {'app µs':>9} {'Flask only µs':>14} {'added µs':>9}  (in-process)")
        for page, t in timed.items():
            lines.append(f"{page:8} {t['bare']:9.1f} {t['app']:9.1f} {t['app_flask_only']:14.1f} {t['added_us']:9.1f}")
        lines.append("")
    browser = r.get("browser_requests", {})
    lines.append(f"{'page':8} {'plain B':>9} {'gzip B':>9} {'wire plain':>11} {'wire gzip':>10} {'browser req':>12}")
    for page, s in r["wire_bytes"].items():
        lines.append(f"{page:8} {s['plain_body']:9} {s['gzip_body']:9} {s['plain_wire']:11} {s['gzip_wire']:10} "
                     f"{browser.get(page, '-')!s:>12}")
    tor = r.get("tor_path")
    if tor and "error" not in tor:
        lines += ["", f"{'page':8} {'path':9} {'TTFB ms':>9} {'total ms':>9}   (median of {tor['samples']}, warm)"]
        for page in ("home", "entry"):
            for path in ("loopback", "tor"):
                t = tor[page][path]
                lines.append(f"{page:8} {path:9} {t['ttfb_ms']:9.1f} {t['total_ms']:9.1f}")
    elif tor:
        lines += ["", f"tor path: {tor['error']}"]
    lines += ["", f"{'content':14} {'entries':>7} {'build s':>8} {'cold s':>7} {'reload cmd s':>13} "
                  f"{'served after s':>15} {'RSS/worker MiB':>15}"]
    for name, c in r["coldstart"].items():
        if not isinstance(c, dict):
            lines.append(f"cold start: {c}")
            continue
        lines.append(f"{name:14} {c['entries']:7.0f} {c['first_build_s']:8.1f} {c['cold_start_s']:7.2f} "
                     f"{c['reload_command_s']:13.2f} {c['served_after_reload_s']:15.2f} "
                     f"{c['rss_per_worker_mib']:15.1f}")
    rss = r["rss_after_load_mib"]
    lines.append(f"RSS after the load run: workers {rss['workers']} MiB, master {rss['master']} MiB")
    mix = r.get("load_mix")
    if mix:
        lines += ["", f"load mix (bench.load, same server, after the wrk runs): {json.dumps(mix)[:600]}"]
    for other in r.get("others", {}).values():
        lines += ["", f"--- python {' '.join(other.get('argv', []))} ---", other.get("stdout", other.get("error", ""))
                  .strip()[-1500:]]
    return "\n".join(lines)


def update_markdown(path: Path, table: str) -> None:
    """Replace the generated figures block in docs/performance.md, keeping everything else."""
    block = f"{BEGIN}\n```text\n{table}\n```\n{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + f"\n\n## Latest figures\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
