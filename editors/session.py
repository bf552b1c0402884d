"""A real `rxwatch lsp` session, recorded: the transcript and the hover picture of docs/editors.md.

    .venv/bin/python editors/session.py transcript > docs/editors-session.txt    (or: print it)
    .venv/bin/python editors/session.py screenshot docs/img/editors-hover.png

`transcript` starts the server as an editor does (a subprocess over stdio), speaks JSON-RPC to
it byte for byte (Content-Length framing), and prints each message sent and received: open
editors/examples/formatted.rxw with a typo, the E202 diagnostic, the quick fix, a hover, a
definition, the formatting of the messy copy.

`screenshot` asks the server for the hover of a cited AI summary and of a derived value and
draws the protocol text (the Pygments lexer `rxw`) with the server's hover popup under the
word, in headless Chromium: the picture shows the server's real reply, drawn by us, not by
an editor.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "editors" / "examples" / "formatted.rxw"
MESSY = REPO / "editors" / "examples" / "messy.rxw"


class Wire:
    """A JSON-RPC connection to `rxwatch lsp`, keeping every message."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "rxwatch.cli.main", "lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=REPO)
        self.next_id = 0
        self.log: list[tuple[str, dict]] = []

    def send(self, method: str, params, *, request: bool = True) -> int | None:
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        rid = None
        if request:
            self.next_id += 1
            rid = msg["id"] = self.next_id
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        self.log.append(("-->", msg))
        return rid

    def read(self) -> dict:
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        msg = json.loads(self.proc.stdout.read(length))
        self.log.append(("<--", msg))
        return msg

    def until(self, pred) -> dict:
        while True:
            msg = self.read()
            if pred(msg):
                return msg

    def request(self, method: str, params) -> dict:
        rid = self.send(method, params)
        return self.until(lambda m: m.get("id") == rid)

    def close(self) -> None:
        self.request("shutdown", None)
        self.send("exit", None, request=False)
        self.proc.wait(timeout=10)


def _uri(path: Path) -> str:
    return "file:///work/editors-demo/" + path.name  # a fixed address: the transcript does not depend on the checkout


def _pos(text: str, needle: str, nth: int = 0) -> dict:
    k = -1
    for _ in range(nth + 1):
        k = text.index(needle, k + 1)
    line = text.count("\n", 0, k)
    return {"line": line, "character": k - (text.rfind("\n", 0, k) + 1)}


def session() -> Wire:
    w = Wire()
    text = EXAMPLE.read_text(encoding="utf-8")
    uri = _uri(EXAMPLE)
    w.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    w.send("initialized", {}, request=False)
    typo = text.replace("when tx > 5", "when tx_ > 5", 1)
    w.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "rxw", "version": 1, "text": typo}}, request=False)
    diags = w.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    d = diags["params"]["diagnostics"][0]
    w.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": d["range"], "context": {"diagnostics": [d]}})
    w.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": text}]}, request=False)
    w.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    w.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, "ai-note", 1)})
    w.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, 'ctcae-v5 "ALT increased: grade 3"')})
    w.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, "tx >")})
    w.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, "2..4 weeks")})
    w.request("textDocument/definition", {"textDocument": {"uri": uri}, "position": _pos(text, "stopped cite")})
    messy = MESSY.read_text(encoding="utf-8")
    w.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": messy}]}, request=False)
    w.request("textDocument/formatting", {"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": True}})
    w.close()
    return w


def transcript() -> str:
    w = session()
    out = []
    for direction, msg in w.log:
        if msg.get("method") == "initialize" or ("result" in msg and isinstance(msg["result"], dict) and "capabilities" in msg["result"]):
            brief = dict(msg)
            if "result" in brief:
                caps = sorted(brief["result"]["capabilities"])
                brief["result"] = {"capabilities": f"<{len(caps)} capabilities: {', '.join(caps)}>", "serverInfo": brief["result"].get("serverInfo")}
            msg = brief
        if msg.get("method") in ("textDocument/didOpen", "textDocument/didChange"):
            msg = json.loads(json.dumps(msg))
            td = msg["params"].get("textDocument", {})
            if "text" in td:
                td["text"] = f"<{td['text'].count(chr(10))} lines>"
            for ch in msg["params"].get("contentChanges", []):
                ch["text"] = f"<{ch['text'].count(chr(10))} lines>"
        if "result" in msg and isinstance(msg["result"], list) and msg["result"] and "newText" in msg["result"][0]:
            msg = json.loads(json.dumps(msg))
            for e in msg["result"]:
                e["newText"] = f"<the formatted text: {e['newText'].count(chr(10))} lines>"
        if msg.get("method") == "window/logMessage":
            continue
        out.append(f"{direction} {json.dumps(msg, indent=None, ensure_ascii=False)}")
    return "\n".join(out) + "\n"


def _markdown(md: str) -> str:
    """Enough Markdown for a hover: code blocks, `code`, **bold**, <links>, paragraphs."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    from rxwatch.editor.highlight import RxwLexer

    parts = []
    for k, chunk in enumerate(re.split(r"```rxw\n(.*?)\n```", md, flags=re.S)):
        if k % 2:  # a code block
            parts.append(highlight(chunk, RxwLexer(), HtmlFormatter(cssclass="hl")))
            continue
        for block in chunk.split("\n\n"):
            if not block.strip():
                continue
            s = html.escape(block)
            s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
            s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
            s = re.sub(r"&lt;(https?://[^&]+)&gt;", r"<a>\1</a>", s)
            parts.append(f"<p>{s}</p>")
    return "\n".join(parts)


def screenshot(out: Path) -> None:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from rxwatch.editor.highlight import RxwLexer

    w = Wire()
    text = EXAMPLE.read_text(encoding="utf-8")
    uri = _uri(EXAMPLE)
    w.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    w.send("initialized", {}, request=False)
    w.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "rxw", "version": 1, "text": text}}, request=False)
    w.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    at = _pos(text, "ai-note", 1)
    hover = w.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": at})["result"]
    w.close()
    lines = text.split("\n")
    first = max(0, at["line"] - 3)
    shown = "\n".join(lines[first : at["line"] + 12])
    code = highlight(shown, RxwLexer(), HtmlFormatter(nowrap=True))
    row = at["line"] - first
    css = HtmlFormatter(style="default").get_style_defs(".code") + HtmlFormatter(style="default").get_style_defs(".hl")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; font: 14px/20px "DejaVu Sans Mono", monospace; }}
.editor {{ position: relative; padding: 12px 16px; width: 1100px; height: 470px; background: #fbfbfb; }}
.code {{ white-space: pre; }}
.mark {{ position: absolute; top: {12 + row * 20}px; left: {16 + at['character'] * 8.43}px; width: {7 * 8.43}px; height: 20px; background: rgba(255, 200, 0, .35); }}
.hover {{ position: absolute; top: {12 + (row + 1) * 20 + 4}px; left: {16 + max(0, at['character'] - 60) * 8.43}px; width: 700px;
  background: #f3f3f3; border: 1px solid #c8c8c8; box-shadow: 0 2px 8px rgba(0,0,0,.25); padding: 4px 12px;
  font: 13px/18px "DejaVu Sans", sans-serif; }}
.hover code {{ font: 12px "DejaVu Sans Mono", monospace; background: #e4e4e4; padding: 0 2px; }}
.hover pre {{ font: 12px/16px "DejaVu Sans Mono", monospace; white-space: pre-wrap; }}
.caption {{ font: 11px "DejaVu Sans", sans-serif; color: #777; padding: 0 16px 8px; }}
{css}
</style></head><body><div class="editor"><div class="mark"></div><div class="code">{code}</div>
<div class="hover">{_markdown(hover['contents']['value'])}</div></div>
<div class="caption">The reply of rxwatch lsp to textDocument/hover on a cited source (editors/examples/formatted.rxw), drawn with the rxw Pygments lexer.</div>
</body></html>"""
    tmp = out.with_suffix(".html")
    tmp.write_text(page, encoding="utf-8")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1140,560", "--hide-scrollbars"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(tmp.resolve().as_uri())
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        os.unlink(tmp)


if __name__ == "__main__":
    if sys.argv[1:2] == ["transcript"]:
        sys.stdout.write(transcript())
    elif sys.argv[1:2] == ["screenshot"] and len(sys.argv) == 3:
        screenshot(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
