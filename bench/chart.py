"""Draw the load run as a small PNG: requests/s per page and case, and the app's share of the ceilings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CASES = [("nginx", "a: nginx, static files", "#9aa5b1"), ("bare", "b: bare WSGI, gunicorn", "#52606d"),
         ("app", "c: the app, gunicorn", "#c2410c")]
TARGET = 0.7


def draw(results: dict[str, Any], target: Path) -> Path:
    """Write the chart for a bench result (the `ceilings` part) to target and return target."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    ceilings = results["ceilings"]
    cases, ratios = ceilings["cases"], ceilings["ratios"]
    pages = list(cases["app"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    width = 0.27
    for i, (case, label, colour) in enumerate(CASES):
        values = [cases[case][p]["rps"] for p in pages]
        left.bar([x + (i - 1) * width for x in range(len(pages))], values, width, label=label, color=colour)
    left.set_yscale("log")
    left.set_xticks(range(len(pages)), pages)
    left.set_ylabel("requests/s (log)")
    left.set_title("One wrk run on 127.0.0.1", fontsize=10)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    share = [ratios[p]["c_over_b"] for p in pages]
    right.bar(range(len(pages)), share, color=["#c2410c" if s >= TARGET else "#f59e0b" for s in share])
    right.axhline(TARGET, color="#111827", linewidth=1, linestyle="--")
    right.text(len(pages) - 0.5, TARGET, f" target {TARGET:g}", va="bottom", ha="right", fontsize=7)
    right.set_xticks(range(len(pages)), pages)
    right.set_title("c / b: the app's share of bare WSGI", fontsize=10)
    for x, value in enumerate(share):
        right.text(x, value, f"{value:.2f}", ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target
