"""The self-contained HTML viewer: the SVG flowchart with pan and zoom, and a side panel.

One file, no network: the SVG from `dot`, the viewer's CSS and JS (render/assets/), and the
protocol's data as JSON in `<script type="application/json">` with `<`, `>` and `&` written
as \\u003c, \\u003e, \\u0026. The viewer puts protocol text into the page with `textContent`
only. A Content-Security-Policy allows no network at all and no script but the viewer's own
(by its hash), so markup that got into the page could not run anyway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from html import escape
from importlib import resources

from rxwatch.compiler.diagnostics import sanitize

from . import panelform
from .missing import blocking_text
from .plan import Decision, Plan
from .tone import LEVELS
from .trace import Overlay


class UnsafeSvg(Exception):
    """The SVG from `dot` holds something active (a script, an event handler): never embedded."""


def page(graph, plan: Plan, overlay: Overlay | None, svg: bytes) -> bytes:
    """The viewer page for `plan` (drawn as `svg`), with `overlay`'s steps when given."""
    data = _data(graph, plan, overlay)
    css = _asset("viewer.css")
    js = _asset("viewer.js")
    script_hash = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    form_js, form_data = panelform.data(graph, plan, overlay.to_dict() if overlay is not None else None)  # own script, hashed too
    form_hash = base64.b64encode(hashlib.sha256(form_js.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{script_hash}' 'sha256-{form_hash}'; style-src 'unsafe-inline'; "
           "img-src data:")
    title = f"{plan.title} ({plan.name} {plan.version})".strip()
    doc = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{escape(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(sanitize(title, newlines=False))}</title>
<style>
{css}
</style>
</head>
<body>
<header id="bar">
  <span id="title"></span>
  <span id="settings"></span>
  <span id="tools">
    <button type="button" id="zoom-in" title="Zoom in (+)">+</button>
    <button type="button" id="zoom-out" title="Zoom out (-)">&#8722;</button>
    <button type="button" id="zoom-fit" title="Fit the chart (0)">fit</button>
  </span>
</header>
{_labchart(graph, overlay)}
<main>
  <section id="chart" tabindex="0" aria-label="Flowchart: drag to pan, wheel or +/- to zoom, click a state or an arrow">
{_inline_svg(svg)}
  </section>
  <aside id="panel" aria-live="polite">
    <div id="trace"></div>
    <details id="panelform"><summary>Ask about a panel: which rule fires, what to do</summary></details>
    <div id="details"><p class="hint">Click a state, a frame, a track, a rule block, a shared-rules box or an arrow to see its rules, actions, time windows and sources.</p></div>
  </aside>
</main>
<script type="application/json" id="rxwatch-data">{_json_for_script(data)}</script>
<script>{js}</script>
<script type="application/json" id="rxwatch-panelform">{_json_for_script(form_data)}</script>
<script>{form_js}</script>
</body>
</html>
"""
    return doc.encode("utf-8")


def _labchart(graph, overlay: Overlay | None) -> str:
    """The patient's lab chart (render/labchart.py, drawn by labchart_svg.py) when the page
    carries a trace: inline SVG, hover boxes by CSS, no script."""
    if overlay is None:
        return ""
    from . import labchart, labchart_svg

    return labchart_svg.fragment(labchart.build(graph, overlay.to_dict()))


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(data) -> str:
    """JSON that cannot end its <script> element or open markup: <, >, & as \\u escapes, and
    every character outside ASCII too (a lone surrogate of a graph file included)."""
    text = json.dumps(data, ensure_ascii=True, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)


def _inline_svg(svg: bytes) -> str:
    """The SVG element of `dot`'s output, checked to hold nothing active."""
    text = svg.decode("utf-8")
    root = ET.fromstring(text.encode("utf-8"))
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1].lower()
        if tag in ("script", "foreignobject", "iframe", "object", "embed"):
            raise UnsafeSvg(f"<{tag}> in the SVG")
        for attr, value in el.attrib.items():
            name = attr.rsplit("}", 1)[-1].lower()
            if name.startswith("on") or (name == "href" and value.strip().lower().startswith("javascript:")):
                raise UnsafeSvg(f"attribute {name} in the SVG")
    return _PROLOG.sub("", text, count=1)


# ------------------------------------------------------------ the data the panel shows


_TOKEN_CLASS = (("Comment", "c"), ("Literal.String", "s"), ("Literal.Number", "n"), ("Keyword", "k"),
                ("Name.Builtin", "b"), ("Operator.Word", "k"), ("Operator", "o"), ("Name", "v"))


def _source_tokens(path: str, limit: int = 2_000_000) -> list | None:
    """The protocol file's lines as [[class, text], ...] from the `rxw` lexer (editor/highlight.py),
    or None (no such file, unreadable, or larger than `limit` bytes): the viewer builds text
    nodes from them, so no protocol text ever reaches the page as markup."""
    import os

    try:
        if not path or os.path.getsize(path) > limit:
            return None
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    from rxwatch.editor.highlight import RxwLexer

    lines: list[list] = [[]]
    for kind, value in RxwLexer().get_tokens(text):
        name = str(kind).removeprefix("Token.")
        cls = next((c for prefix, c in _TOKEN_CLASS if name == prefix or name.startswith(prefix + ".")), "")
        for i, part in enumerate(value.split("\n")):
            if i:
                lines.append([])
            if part:
                lines[-1].append([cls, part])
    return lines


def _data(graph, plan: Plan, overlay: Overlay | None) -> dict:
    L = plan.labels
    g = graph.graph
    edges = plan.edges

    def lines(actions) -> list[dict]:
        return [line.to_dict() for line in L.action_lines(actions, full=True)]

    def decision(dec: Decision) -> dict:
        rows = []
        for row in dec.rows:
            _, _, d = edges[row.rules[0]]
            rows.append({
                "number": row.number,
                "guard": row.guard,
                "because": "" if row.block else d.get("because", ""),
                "target": row.target,
                "stay": row.stay,
                "reenter": row.reenter,
                "actions": [] if row.block else [x.to_dict() for x in row.actions] if row.alternatives else lines(d.get("actions", [])),
                "sources": list(row.sources),
                "citations": list(row.citations),
                "rules": list(row.rules),
                "lines": [edges[k][2].get("span", {}).get("line") for k in row.rules],
                "arrow": plan.arrow_of_rule.get(row.rules[0]),
                # a rule block used here ("uses ..."): its rules are on the block's box
                "block": f"block_{row.block}" if row.block else None,
                "alternatives": [
                    {"text": a.text, "effect": a.effect, "target": a.target, "stay": a.stay, "reenter": a.reenter,
                     "default": a.default, "actions": [x.to_dict() for x in a.actions], "rules": list(a.rules),
                     "sources": list(a.sources), "citations": list(a.citations),
                     "arrow": plan.arrow_of_rule.get(a.rules[0])}
                    for a in row.alternatives
                ],
            })
        out = {"trigger": dec.trigger, "ordered": dec.ordered, "rows": rows, "missing": None}
        if dec.missing is not None:
            m = dec.missing
            out["missing"] = {**m.to_dict(), "text": blocking_text(m) if m.blocking != () else ""}
        return out

    states = {}
    for b in plan.boxes:
        node = graph.nodes[b.state]
        states[b.state] = {
            "title": b.title,
            "kind": b.kind,
            "severity": LEVELS[b.severity],
            "entry": lines(node.get("entry", [])),
            "decisions": [decision(d) for d in b.decisions],
            "group": b.group,
            "line": node.get("span", {}).get("line"),
            "type": b.type,  # compound, parallel: its rules apply in every state inside
            "parent": b.parent,  # the state or track it is in
            "end": node.get("span", {}).get("end_line"),
        }
    groups = {
        grp.id: {"letter": grp.letter, "states": grp.states, "decisions": [decision(d) for d in grp.decisions]}
        for grp in plan.groups
    }
    blocks = {
        blk.id: {"name": blk.name, "title": blk.title, "users": blk.users, "decisions": [decision(d) for d in blk.decisions],
                 "line": (g.get("blocks", {}).get(blk.name) or {}).get("span", {}).get("line")}
        for blk in plan.blocks
    }
    clusters = {
        c.id: {"state": c.state, "kind": c.kind, "title": c.title, "parent": c.parent,
               "states": [x for x in plan.tree.get(c.id, ()) if x != c.header],
               "line": graph.nodes[c.state].get("span", {}).get("line")}
        for c in plan.clusters
    }
    arrows = {
        a.id: {"from": a.tail, "to": a.head, "rules": a.rules, "row": plan.row_of_rule.get(a.rules[0])}
        for a in plan.arrows
    }
    rules = {}
    for key, (u, v, d) in edges.items():
        rules[key] = {
            "from": u,
            "to": v,
            "trigger": L.trigger(d),
            "guard": L.expr(d["guard"]) if d.get("guard") else (d.get("otherwise_name") or "none of the above"),
            "because": d.get("because", ""),
            "stay": bool(d.get("stay")),
            "actions": lines(d.get("actions", [])),
            "sources": list(d.get("sources", [])),
            "citations": list(d.get("citations") or []),
            "line": d.get("span", {}).get("line"),
            "arrow": plan.arrow_of_rule.get(key),
            "block": d.get("block"),
            "alternative": d.get("alternative"),
        }
    sources = []
    for sid in plan.references:
        src = g["sources"][sid]
        mark, unreviewed = L.marks([sid])[0]
        sources.append({
            "id": sid,
            "mark": mark,
            "title": src.get("title") or sid,
            "kind": src.get("kind") or "",
            "kind_text": L.kind_text(sid),
            "unreviewed": unreviewed,
            "url": src.get("url"),
            "doi": src.get("doi"),
            "note": src.get("note"),
        })
    definitions = [
        {"name": d.name, "description": d.description, "lines": d.lines, "sources": d.sources,
         "text": g.get("lets", {}).get(d.name, {}).get("text", "")}
        for d in plan.definitions
    ]
    return {
        "protocol": {
            "name": plan.name, "title": plan.title, "version": plan.version, "status": plan.status,
            "description": plan.description, "path": g.get("path", ""),
            "severity_declared": plan.severity_declared,
            # protocol-wide: how long results stay valid, how often overdue orders are flagged again
            "settings": [{"text": st.text, "sources": st.sources, "declared": st.declared, "citations": st.citations}
                         for st in plan.settings],
        },
        "orders": [
            {"name": o.name, "description": o.description, "labs": o.labs, "fulfilled_by": o.fulfilled_by,
             "sources": o.sources}
            for o in plan.orders
        ],
        "states": states,
        # the protocol's own text, as the highlighter's tokens per line (never HTML): the panel
        # shows a state's lines under its rules; absent when the text cannot be read
        "source": _source_tokens(g.get("path", "")),
        "groups": groups,
        "blocks": blocks,
        "clusters": clusters,
        "drugs": [line.to_dict() for line in plan.drugs],
        "arrows": arrows,
        "rules": rules,
        "sources": sources,
        "definitions": definitions,
        # the warnings the authors reviewed and accepted, with their reasons (`accept CODE "..."`)
        "accepts": [
            {"code": a["code"], "reason": a["reason"], "state": a.get("state"), "line": a.get("span", {}).get("line")}
            for a in g.get("accepts", [])
        ],
        "trace": overlay.to_dict() if overlay is not None else None,
    }
