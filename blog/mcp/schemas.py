"""What the MCP tools return: pydantic models whose JSON schemas are the tools' output schemas."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UpdateNote(BaseModel):
    """One dated correction to a published entry."""

    date: str = Field(description="When the entry was corrected (ISO 8601, UTC).")
    reason: str = Field(description="Why it was corrected, in one line.")
    note: str = Field("", description="What changed, when the operator said more.")


class Pinned(BaseModel):
    """Which text a result was read from: enough to prove it later against the public revision log."""

    revision: int | None = Field(None, description="The entry's revision the text belongs to (1: as first "
                                                   "published; one more per dated update that changed it).")
    body_sha256: str | None = Field(None, description="SHA-256 of that revision's Markdown, as served at "
                                                      "/log/<slug>/revisions/<revision>.md and recorded in the log.")
    log_head: str | None = Field(None, description="The revision log's head (/revisions.json) this answer was "
                                                   "served under: a later log that extends it still holds the text.")


class CitedParagraph(Pinned):
    """One paragraph (or list item, code block, table, heading, summary, update note) that answers the query."""

    source: str = Field("entry", description="entry (a dated log entry) or page (a standing page such as about).")
    title: str = Field(description="Title of the entry or page the paragraph belongs to.")
    slug: str = Field(description="The entry's or page's slug; pass it to get_entry for the whole text.")
    date: str = Field(description="When the entry was published (ISO 8601, UTC); for a page, when this build "
                                  "was made.")
    url: str = Field(description="Link to this exact paragraph (with its #anchor): cite this URL.")
    onion_url: str | None = Field(None, description="The same link on the onion service, when it is known.")
    anchor: str = Field(description="The paragraph's stable anchor on the entry or page.")
    heading_path: list[str] = Field(description="The section headings above the paragraph, outermost first.")
    kind: str = Field(description="p (paragraph), li (list item), code, table, h (heading), summary (the "
                                  "entry's or page's summary) or update (a dated update note).")
    text: str = Field(description="The paragraph's full text.")
    score: float = Field(description="Relevance score: higher is better; only comparable within one answer.")
    updated: bool = Field(description="True when the entry was corrected after publication.")
    last_updated: str = Field(description="When the entry last changed (ISO 8601, UTC).")
    latest_update: str | None = Field(None, description="The reason given for the latest correction, if any.")
    paragraph_changed: str | None = Field(None, description=(
        "When this exact paragraph was last changed (ISO 8601, UTC): its publication, or the dated update that "
        "wrote it. Text an update replaced stays at its old anchor on the entry's revision pages."))


class SearchAnswer(BaseModel):
    """The paragraphs that best answer a query, best first."""

    query: str = Field(description="The query as it was run.")
    total: int = Field(description="How many paragraphs matched in all (more than returned when limited).")
    corrected: str | None = Field(None, description="A corrected spelling of the query, when one was used.")
    ranking: str = Field("words", description="'words+meaning' when the semantic ranker joined the ranking "
                                              "by words (their normalised scores combined), else 'words'.")
    ranking_note: str | None = Field(None, description="Why this answer is ranked by words only, when the "
                                                       "semantic ranker is switched on but could not rank it.")
    results: list[CitedParagraph]


class EntrySummary(BaseModel):
    """An entry's metadata, without its body."""

    slug: str
    title: str
    date: str = Field(description="Publication time (ISO 8601, UTC).")
    tags: list[str]
    summary: str
    url: str = Field(description="The entry page.")
    onion_url: str | None = Field(None, description="The entry page on the onion service, when known.")
    updated: bool = Field(description="True when the entry was corrected after publication.")
    last_updated: str = Field(description="When the entry last changed (ISO 8601, UTC).")


class Anchor(BaseModel):
    """A citable block of an entry or page, in document order."""

    anchor: str
    kind: str = Field(description="p, li, code, table, h, summary or update.")
    heading_path: list[str]
    url: str = Field(description="Link to the block: cite this URL.")


class EntryDetail(EntrySummary, Pinned):
    """A whole entry: metadata, Markdown body, its citable anchors and its update log."""

    kind: str = Field(description="entry, or page for a standing page such as start-here.")
    markdown: str = Field(description="The body as the operator wrote it (Markdown), with links to the files it "
                                      "shows made absolute.")
    anchors: list[Anchor]
    updates: list[UpdateNote] = Field(description="The update log, oldest first.")


class PageSummary(BaseModel):
    """A standing page (start here, the thesis, about, ...): undated, always shown."""

    slug: str = Field(description="Pass it to get_entry for the whole page.")
    title: str
    summary: str
    url: str
    onion_url: str | None = None


class EntryList(BaseModel):
    """One page of entries, newest first, and the standing pages."""

    entries: list[EntrySummary]
    total: int = Field(description="How many entries match the filters in all.")
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null at the end.")
    pages: list[PageSummary] = Field(default_factory=list, description=(
        "The standing pages, on the first page of a listing without tag or year (pages have neither)."))


class ReadingStep(BaseModel):
    """One page or entry in the order a first-time reader should take them."""

    kind: str = Field(description="page or entry.")
    slug: str
    title: str
    summary: str
    url: str
    onion_url: str | None = None
    note: str = Field("", description="Why this step comes here.")


class ReadingOrder(BaseModel):
    """Where a first-time reader should start, in order."""

    steps: list[ReadingStep]
