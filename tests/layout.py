"""A phone's width for tests: an entry as wide as entries get, and the check that a page does not scroll sideways."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PHONE_WIDTHS = (320, 360, 390)  # CSS pixels: small Android phones, common Android phones, recent iPhones
ONION = "pqvmwfyjugiqx5f7cxqv3twlpgfw2z4zrw7udy7bidfivxlwoqu4pbyd.onion"  # a well-formed v3 address
WIDE_SLUG = "wide-things"
LONG_CODE = "hs_ed25519_secret_key_of_the_service_restored_from_the_encrypted_backup_of_last_week"
LONG_URL = "https://gitlab.torproject.org/tpo/core/tor/-/blob/main/src/feature/hs/hs_service.c#L1234567890"
LONG_HASH = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SVG_ALT = "Three boxes in a row: reader, tor, the log's server; arrows from left to right"
DIAGRAM = ('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="80">'
           '<rect x="0" y="0" width="300" height="80" fill="#1e963c"/></svg>\n')

ENTRY = f"""---
title: "Long identifiers on a narrow screen"
date: 2026-11-26T09:00:00Z
tags: [layout]
summary: "Long inline code, a long URL, a long hash, a wide table, a wide code block and a diagram."
---

The key file is `{LONG_CODE}`, and nothing in that name gives a browser a place to break the line.

The source is at <{LONG_URL}>, which is one word to a browser.

The weights' SHA-256 is {LONG_HASH}, printed whole.

- a list item naming `{LONG_CODE}` again
- a list item with the hash {LONG_HASH}

| setting | value | where it is read | what it changes | who may change it |
|---|---|---|---|---|
| `HiddenServiceDir` | `/var/lib/tor/hidden_service_of_the_engineering_log/` | torrc | the key directory | root |
| `{LONG_CODE}` | {LONG_HASH} | the software | the address | the operator |

```console
$ sha256sum var/model/encoder.onnx var/model/tokenizer.json var/model/manifest.json  # every file, one line each
{LONG_HASH}  var/model/encoder.onnx
```

![{SVG_ALT}](diagram.svg)
"""


def add_wide_entry(content_dir: Path) -> Path:
    """Add a folder entry with the widest things prose holds, and an SVG diagram; return its folder."""
    folder = content_dir / "log" / f"2026-11-26-{WIDE_SLUG}"
    folder.mkdir(parents=True)
    (folder / "index.md").write_text(ENTRY)
    (folder / "diagram.svg").write_text(DIAGRAM)
    return folder


# What pushes the page wide: the outermost elements whose right edge passes the viewport, leaving out what
# sits in a box that scrolls or clips on its own (a code block, a table's wrapper).
_WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const clipped = el => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement)
      if (getComputedStyle(up).overflowX !== 'visible') return true;
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 && !clipped(el) && !out.some(o => o.el.contains(el)))
      out.push({el, right: box.right});
  }
  return out.slice(0, 6).map(o =>
    `${o.el.tagName.toLowerCase()}.${o.el.className}: ${o.el.textContent.slice(0, 40)} (${Math.round(o.right)} px)`);
}"""


@contextmanager
def phone(browser: Any, width: int) -> Iterator[Any]:
    """Yield a page of a phone's width with JavaScript off (the page's own scripts; Playwright's measuring runs
    in a world of its own), one browser context for every page it loads."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 800},
                                  device_scale_factor=1, is_mobile=True, has_touch=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def sideways(page: Any, url: str) -> tuple[int, int, list[str]]:
    """Load a page in a phone's tab; return its scrollWidth, clientWidth and what is wide."""
    page.goto(url, wait_until="load")
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    return scroll, client, page.evaluate(_WIDE) if scroll > client else []
