"""Pull and merge request URLs of GitHub, GitLab and Gitea/Forgejo (Codeberg), and their API answers."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from blog.honesty import HonestyError

# Shapes, not host names, tell the forges apart: a self-hosted GitLab or Forgejo works like the big ones.
_GITHUB = re.compile(r"^https://(?P<host>github\.com)/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/pull/(?P<number>\d+)/?$")
_GITLAB = re.compile(r"^https://(?P<host>[\w.-]+)/(?P<project>[\w.-]+(?:/[\w.-]+)+)/-/merge_requests/(?P<number>\d+)/?$")
_GITEA = re.compile(r"^https://(?P<host>[\w.-]+)/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/pulls/(?P<number>\d+)/?$")
STATES = ("merged", "open", "closed")


@dataclass(frozen=True)
class PullRequest:
    """One pull or merge request on one forge, and where its public API describes it."""

    url: str
    forge: str  # github | gitlab | gitea
    host: str
    api_path: str

    def api_url(self, overrides: dict[str, str]) -> str:
        """Return the API URL, with the forge host's API base replaced when overrides name it."""
        default = "https://api.github.com" if self.forge == "github" else f"https://{self.host}"
        return overrides.get(self.host, default).rstrip("/") + self.api_path


def parse_url(url: str) -> PullRequest:
    """Recognise a pull or merge request URL, or raise HonestyError saying which shapes are known."""
    url = url.strip()
    if match := _GITHUB.match(url):
        path = f"/repos/{match['owner']}/{match['repo']}/pulls/{match['number']}"
        return PullRequest(url, "github", match["host"], path)
    if match := _GITLAB.match(url):
        path = f"/api/v4/projects/{quote(match['project'], safe='')}/merge_requests/{match['number']}"
        return PullRequest(url, "gitlab", match["host"], path)
    if match := _GITEA.match(url):
        path = f"/api/v1/repos/{match['owner']}/{match['repo']}/pulls/{match['number']}"
        return PullRequest(url, "gitea", match["host"], path)
    raise HonestyError(
        f"{url!r} is not a pull or merge request URL this log knows: use https://github.com/OWNER/REPO/pull/N, "
        "https://GITLAB-HOST/GROUP/PROJECT/-/merge_requests/N or https://GITEA-HOST/OWNER/REPO/pulls/N "
        "(Forgejo, Codeberg)")


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)


def parse_state(pull: PullRequest, data: Any) -> tuple[str, dt.datetime | None]:
    """Return (merged | open | closed, merge time) from a forge's JSON answer."""
    if not isinstance(data, dict) or "state" not in data:
        raise HonestyError(f"{pull.forge} answered for {pull.url} without a state: is the API base right?")
    try:
        merged_at = _time(data.get("merged_at"))
    except ValueError as exc:
        raise HonestyError(f"{pull.forge} gave an unreadable merged_at for {pull.url}: {exc}") from exc
    state = str(data["state"]).lower()
    if pull.forge == "gitlab":
        # GitLab says merged outright; "locked" is a merge in progress, still open to readers.
        if state == "merged":
            return "merged", merged_at
        return ("open" if state in ("opened", "locked") else "closed"), None
    if data.get("merged") or merged_at is not None:
        return "merged", merged_at
    return ("open" if state == "open" else "closed"), None
