"""SVG made fit to serve: no script at all, no editor's metadata, no entities; refused otherwise.

An SVG is a document that can carry script. Shown through `<img>` a browser runs none of it, and opened at
its own URL it is answered with a policy that forbids script and sandboxes it (blog/web/files.py). An SVG
that carries script anyway is refused, so that no header lost behind a proxy could let it run.
"""

from __future__ import annotations

import io
import re

from lxml import etree

from blog.files.fileset import Cleaned, Unfit
from blog.files.links import script_url

__all__ = ["clean_svg", "svg_size"]

SVG = "http://www.w3.org/2000/svg"
KEPT_NAMESPACES = {SVG, "http://www.w3.org/1999/xlink", "http://www.w3.org/XML/1998/namespace"}
_SCRIPTY = {"script", "foreignObject", "handler", "listener"}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(px)?\s*$")
# A DOCTYPE with an internal subset: `<!DOCTYPE svg [ ... ]>` (quoted public and system ids skipped).
_SUBSET = re.compile(rb"<!DOCTYPE(?:[^\[>\"']|\"[^\"]*\"|'[^']*')*\[")
_FIX = "remove it (export a plain SVG, or a PNG): pages of this site run no script"


def _namespace(name: str) -> str:
    return name[1:].split("}", 1)[0] if name.startswith("{") else ""


def _local(name: str) -> str:
    return name.split("}", 1)[-1]


def clean_svg(raw: bytes) -> Cleaned:
    """Return the SVG without comments, metadata and other programs' markup; raise Unfit if it carries script."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_pis=True)
    try:
        tree = etree.parse(io.BytesIO(raw), parser)
    except etree.XMLSyntaxError as exc:
        raise Unfit(f"is not well-formed XML ({exc})", "export it again as a plain SVG") from exc
    dtd = tree.docinfo.internalDTD
    # A plain `<!DOCTYPE svg PUBLIC ... svg11.dtd>` (matplotlib, Graphviz) declares nothing: it is dropped with
    # the rest of the prologue. One with declarations of its own (entities, default attributes) is refused.
    if dtd is not None and (any(dtd.iterentities()) or any(dtd.iterelements()) or _SUBSET.search(raw) or
                            (tree.docinfo.encoding or "").lower() not in ("utf-8", "us-ascii", "ascii")):
        raise Unfit("declares a DOCTYPE with its own entities or declarations",
                    "remove the [...] part of the <!DOCTYPE ...>, or the whole DOCTYPE")
    root = tree.getroot()
    if root.tag != f"{{{SVG}}}svg":
        raise Unfit(f"is not an SVG image (its root is <{_local(str(root.tag))}>)", "link an SVG, PNG or JPEG")
    stripped: list[str] = []
    if any(not isinstance(node.tag, str) for node in [*root.itersiblings(preceding=True), *root.itersiblings()]):
        stripped.append("comments")  # before or after the root: not written out
    for element in list(root.iter()):
        if isinstance(element, etree._Entity):  # left unresolved: it would make the served copy unreadable
            raise Unfit(f"uses the entity {element.text}, which only a DTD defines",
                        "write the character itself, or its number: &#160; for &nbsp;")
        if not isinstance(element.tag, str):  # a comment
            stripped.append("comments")
            element.getparent().remove(element)
            continue
        if _namespace(element.tag) == SVG and _local(element.tag) in _SCRIPTY:
            raise Unfit(f"carries a <{_local(element.tag)}> element", _FIX)
        for name, value in element.attrib.items():
            if _local(name).lower().startswith("on") or script_url(value):
                raise Unfit(f"carries script in the attribute {_local(name)}", _FIX)
        if _namespace(element.tag) not in KEPT_NAMESPACES or _local(element.tag) == "metadata":
            stripped.append("metadata" if _local(element.tag) == "metadata" else "editor data")
            parent = element.getparent()
            if parent is not None:
                parent.remove(element)
            continue
        for name in list(element.attrib):
            if _namespace(name) not in KEPT_NAMESPACES | {""}:
                stripped.append("editor data")
                del element.attrib[name]
    etree.cleanup_namespaces(root)
    data = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    width, height = svg_size(root)
    return Cleaned(data, width, height, tuple(dict.fromkeys(stripped)))


def svg_size(root: etree._Element) -> tuple[int, int]:
    """Return an SVG's width and height in pixels from its attributes or its viewBox (0, 0 when unknown)."""
    width, height = _SIZE.match(root.get("width") or ""), _SIZE.match(root.get("height") or "")
    if width and height:
        return round(float(width[1])), round(float(height[1]))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    try:
        return (round(float(box[2])), round(float(box[3]))) if len(box) == 4 else (0, 0)
    except ValueError:
        return 0, 0
