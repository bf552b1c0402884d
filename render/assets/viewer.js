// rxwatch flowchart viewer: pan and zoom over the SVG, a side panel for what is clicked,
// and one patient's steps when the page carries a trace.
//
// Protocol text only ever reaches the page through textContent (the `el` helper below) and
// setAttribute on href for http(s) links: never innerHTML.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("rxwatch-data").textContent);
  var chart = document.getElementById("chart");
  var svg = chart.querySelector("svg");
  var details = document.getElementById("details");
  var traceBox = document.getElementById("trace");
  var sourcesById = {};
  data.sources.forEach(function (s) { sourcesById[s.id] = s; });

  // ------------------------------------------------------------ DOM helpers (text only)

  function el(tag, cls, children) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === "") return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function link(text, href) {
    if (!/^https?:\/\//i.test(href || "")) return el("span", null, [text]);
    var a = el("a", null, [text]);
    a.setAttribute("href", href);
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noopener noreferrer");
    return a;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // ------------------------------------------------------------ title bar

  var p = data.protocol;
  document.getElementById("title").appendChild(
    el("span", null, [el("strong", null, [p.title]), " · version " + (p.version || "?") + " · status: " + (p.status || "?")])
  );
  // protocol-wide settings: how long results stay valid, how often overdue orders are flagged again
  var settingsBox = document.getElementById("settings");
  (p.settings || []).forEach(function (st, i) {
    if (i) settingsBox.appendChild(document.createTextNode(" · "));
    settingsBox.appendChild(el("span", st.declared ? "setting declared" : "setting", [st.text, " ", marks(st.sources, st.citations)]));
  });

  // ------------------------------------------------------------ pan and zoom

  var box0 = svg.viewBox.baseVal;
  var home = { x: box0.x, y: box0.y, w: box0.width, h: box0.height };
  var view = { x: home.x, y: home.y, w: home.w, h: home.h };
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");

  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
  }

  function zoom(factor, cx, cy) {
    // keep the point (cx, cy), in SVG units, where it is on the screen
    var w = Math.min(Math.max(view.w / factor, home.w / 40), home.w * 4);
    var k = w / view.w;
    if (cx === undefined) { cx = view.x + view.w / 2; cy = view.y + view.h / 2; }
    view.x = cx - (cx - view.x) * k;
    view.y = cy - (cy - view.y) * k;
    view.w = w;
    view.h = view.h * k;
    apply();
  }

  function toSvg(clientX, clientY) {
    var m = svg.getScreenCTM();
    if (!m) return { x: view.x, y: view.y };
    var pt = svg.createSVGPoint();
    pt.x = clientX; pt.y = clientY;
    var r = pt.matrixTransform(m.inverse());  // screen -> the root's user units (the viewBox's)
    return { x: r.x, y: r.y };
  }

  function fit() {
    view = { x: home.x, y: home.y, w: home.w, h: home.h };
    apply();
  }

  chart.addEventListener("wheel", function (e) {
    e.preventDefault();
    var at = toSvg(e.clientX, e.clientY);
    zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, at.x, at.y);
  }, { passive: false });

  var drag = null;
  chart.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
  });
  window.addEventListener("pointermove", function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (!drag.moved) return;
    var rect = svg.getBoundingClientRect();
    var scale = Math.max(view.w / rect.width, view.h / rect.height);
    view.x = drag.vx - dx * scale;
    view.y = drag.vy - dy * scale;
    apply();
    chart.classList.add("dragging");
  });
  window.addEventListener("pointerup", function () {
    if (drag && drag.moved) chart.dataset.justDragged = "1";
    drag = null;
    chart.classList.remove("dragging");
  });

  document.getElementById("zoom-in").addEventListener("click", function () { zoom(1.25); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(1 / 1.25); });
  document.getElementById("zoom-fit").addEventListener("click", fit);
  chart.addEventListener("keydown", function (e) {
    if (e.key === "+" || e.key === "=") zoom(1.25);
    else if (e.key === "-") zoom(1 / 1.25);
    else if (e.key === "0") fit();
  });

  function centreOn(node) {
    // the element's centre in the root's user units (the viewBox's), then the view around it
    if (!node || !node.getBBox) return;
    var m = node.getCTM(), r = svg.getCTM();
    if (!m || !r) return;
    var b = node.getBBox();
    var pt = svg.createSVGPoint();
    pt.x = b.x + b.width / 2; pt.y = b.y + b.height / 2;
    var c = pt.matrixTransform(r.inverse().multiply(m));
    view.x = c.x - view.w / 2;
    view.y = c.y - view.h / 2;
    apply();
  }

  // ------------------------------------------------------------ what the panel shows

  // [3] per source; with citations ({source, locator}), each locator whole: [3: 4.4, "a sentence"]
  function marks(ids, citations) {
    var out = el("span", "marks");
    var where = {};
    var all = (ids || []).slice();
    (isList(citations) ? citations : []).forEach(function (c) {
      if (!c || typeof c.source !== "string") return;
      all.push(c.source);
      if (typeof c.locator === "string" && c.locator) (where[c.source] = where[c.source] || []).push(c.locator);
    });
    var seen = {};
    all.map(function (id) { return sourcesById[id]; }).filter(function (s) { return s && !seen[s.id] && (seen[s.id] = 1); })
      .sort(function (a, b) { return parseInt(a.mark, 10) - parseInt(b.mark, 10); })
      .forEach(function (s) {
        var loc = where[s.id] ? ": " + where[s.id].join(", ") : "";
        var m = el("span", s.unreviewed ? "mark unreviewed" : "mark", ["[" + s.mark + loc + "]"]);
        m.title = s.title + loc;
        out.appendChild(m);
      });
    return out;
  }

  function actionList(lines) {
    if (!lines || !lines.length) return null;
    var ul = el("ul", "actions");
    lines.forEach(function (line) {
      var li = el("li", line.kind);
      if (line.when) li.appendChild(el("span", "when", [line.when + ": "]));
      if (line.kind === "one_of") {
        line.options.forEach(function (o, i) {
          if (i) li.appendChild(el("strong", "or", [" OR "]));
          li.appendChild(el("span", null, [o + (i === 0 ? " (default)" : "")]));
        });
        var rest = line.text.slice(line.options.join(" OR ").length).replace(/^, /, "");
        if (rest) li.appendChild(el("span", null, [", " + rest]));
      } else {
        li.appendChild(el("span", null, [line.text]));
      }
      if (line.effect) li.appendChild(el("span", "effect", [" (" + line.effect + ")"]));
      if (line.fulfilled_by) li.appendChild(el("span", "fulfil", [" — fulfilled by " + line.fulfilled_by]));
      li.appendChild(marks(line.sources, line.citations));
      (isList(line.alternatives) ? line.alternatives : []).forEach(function (alt) {
        var sub = actionList(alt.lines);
        if (sub) li.appendChild(el("div", "alternative", [el("span", "when", [alt.text + ": "]), sub]));
      });
      ul.appendChild(li);
    });
    return ul;
  }

  function sourceList(ids) {
    var seen = {};
    var all = [];
    ids.forEach(function (id) { if (!seen[id] && sourcesById[id]) { seen[id] = 1; all.push(sourcesById[id]); } });
    all.sort(function (a, b) { return parseInt(a.mark, 10) - parseInt(b.mark, 10); });
    if (!all.length) return null;
    var ol = el("ul", "sources");
    all.forEach(function (s) {
      var li = el("li", s.unreviewed ? "unreviewed" : null, [
        el("span", "mark", ["[" + s.mark + "] "]),
        el("span", "source-title", [s.title]),
        " — ",
        el("span", "kind", [s.kind_text])
      ]);
      if (s.note) li.appendChild(el("div", "note", [s.note]));
      if (s.url) li.appendChild(el("div", "where", [link(s.url, s.url)]));
      if (s.doi) li.appendChild(el("div", "where", [link("doi:" + s.doi, "https://doi.org/" + encodeURI(s.doi))]));
      ol.appendChild(li);
    });
    return el("section", "source-block", [el("h3", null, ["Sources"]), ol]);
  }

  function where(line) {
    return line ? el("span", "where", [p.path + ":" + line]) : null;
  }

  function ruleRows(dec, collect) {
    var ol = el("ol", "rules");
    dec.rows.forEach(function (row) {
      var target = row.stay ? "stay (entry actions not repeated)" : row.reenter ? "again (entry actions repeat)" : "→ " + row.target;
      if (row.block) target = "the block's rules, in this place";
      if (row.alternatives && row.alternatives.length) target = "one of:";
      var li = el("li", null, [
        el("div", "rule-head", [
          row.number ? el("strong", "num", [row.number + " "]) : null,
          el("span", "guard", [row.guard || "always"]),
          " ", marks(row.sources, row.citations), " ",
          el("span", "target", [target])
        ])
      ]);
      if (row.because) li.appendChild(el("div", "because", ["as written: " + row.because]));
      var acts = actionList(row.actions);
      if (acts) li.appendChild(acts);
      if (row.block && data.blocks[row.block]) {
        var b = data.blocks[row.block];
        var open = el("button", "block-link", ["show the rule block: " + b.title]);
        open.type = "button";
        open.addEventListener("click", function () { showBlock(row.block); });
        li.appendChild(open);
      }
      if (row.alternatives && row.alternatives.length) {
        var alts = el("ol", "alternatives");
        row.alternatives.forEach(function (a) {
          var to = a.stay ? "stay" : a.reenter ? "again" : "→ " + a.target;
          var item = el("li", null, [el("span", null, [a.text + (a.default ? " (default)" : "")]),
            a.effect ? el("span", "effect", [" (" + a.effect + ")"]) : null, " ", marks(a.sources, a.citations), " ",
            el("span", "target", [to])]);
          (a.sources || []).forEach(function (x) { collect.push(x); });
          var sub = actionList(a.actions);
          if (sub) item.appendChild(sub);
          alts.appendChild(item);
        });
        li.appendChild(alts);
      }
      li.appendChild(el("div", "where", ["rule " + row.rules.join(", ") + (row.lines[0] ? " · " + p.path + ":" + row.lines.join(", ") : "")]));
      row.sources.forEach(function (s) { collect.push(s); });
      row.actions.forEach(function (a) { a.sources.forEach(function (s) { collect.push(s); }); });
      ol.appendChild(li);
    });
    var section = el("section", "decision", [el("h3", null, ["◇ " + dec.trigger + (dec.ordered ? " — in order, the first that holds applies" : "")]), ol]);
    var miss = missingBlock(dec.missing);
    if (miss) section.appendChild(miss);
    return section;
  }

  // what missing results do to a decision: the smallest sets that can leave it not assessable,
  // the labs its rules read, and those they check for themselves (known)
  function missingBlock(m) {
    if (!m) return null;
    var box = el("div", "missing");
    if (m.blocking === null) {
      box.appendChild(el("p", null, [el("strong", null, ["? Results missing: "]),
        "these rules read many labs (" + m.reads.join(", ") + "); a missing one can leave them not assessable."]));
    } else if (m.blocking.length) {
      box.appendChild(el("p", null, [el("strong", null, ["? Results missing: " + m.text + " → not assessable"])]));
      box.appendChild(el("p", "explain", ["Without these results, a rule that needs them cannot be decided: unless a rule " +
        "before it holds, nothing changes (no move, no action) and the patient's record names the missing labs."]));
    } else {
      box.appendChild(el("p", null, [el("strong", null, ["? Results missing: "]), "always decided: the rules check for them."]));
    }
    var reads = "The rules read " + m.reads.join(", ");
    reads += m.checked.length ? "; they check for results of " + m.checked.join(", ") + " themselves (known)." : ".";
    box.appendChild(el("p", "explain", [reads]));
    return box;
  }

  function showState(name) {
    var s = data.states[name];
    if (!s) return;
    var collect = [];
    clear(details);
    details.appendChild(el("h2", "severity-" + s.severity, [s.title]));
    details.appendChild(el("p", "meta", [name + " · severity " + s.severity + (p.severity_declared ? "" : " (derived)") +
      (s.kind !== "normal" ? " · " + s.kind : "") +
      (s.type === "compound" ? " · holds states: its rules apply in each, after their own" : "") +
      (s.type === "parallel" ? " · holds tracks that run side by side: its rules apply in all of them" : "") +
      (s.parent ? " · inside " + s.parent : ""), " ", where(s.line)]));
    if (s.entry.length) {
      details.appendChild(el("h3", null, ["On entry"]));
      details.appendChild(actionList(s.entry));
      s.entry.forEach(function (a) { a.sources.forEach(function (x) { collect.push(x); }); });
    }
    s.decisions.forEach(function (d) { details.appendChild(ruleRows(d, collect)); });
    if (s.group) {
      var gid = "shared_" + s.group;
      var g = data.groups[gid];
      if (g) {
        details.appendChild(el("h3", null, ["Shared rules " + s.group + " (also apply here)"]));
        g.decisions.forEach(function (d) { details.appendChild(ruleRows(d, collect)); });
      }
    }
    var src = sourceList(collect);
    if (src) details.appendChild(src);
    var acc = acceptedList(name);
    if (acc) details.appendChild(acc);
    var text = protocolText(s.line, s.end);
    if (text) details.appendChild(text);
  }

  // the state's lines of the protocol, highlighted from the lexer's tokens (text nodes only)
  function protocolText(first, last) {
    var lines = data.source;
    if (!isList(lines) || typeof first !== "number" || typeof last !== "number" || first < 1 || last < first) return null;
    var pre = el("pre", "rxw");
    for (var n = first; n <= last && n <= lines.length; n++) {
      var row = el("span", "line", [el("span", "ln", [String(n)])]);
      (isList(lines[n - 1]) ? lines[n - 1] : []).forEach(function (tok) {
        if (isList(tok) && tok.length === 2) row.appendChild(el("span", tok[0] ? "t-" + tok[0] : null, [String(tok[1])]));
      });
      pre.appendChild(row);
      pre.appendChild(document.createTextNode("\n"));
    }
    var box = el("details", "protocol-text", [el("summary", null, ["Protocol text, lines " + first + "-" + Math.min(last, lines.length)]), pre]);
    return box;
  }

  // warnings of the verifier that the protocol accepts, for this state or the whole protocol
  function acceptedList(state) {
    var items = (data.accepts || []).filter(function (a) { return a.state === null || a.state === state; });
    if (!items.length) return null;
    var ul = el("ul", "accepts");
    items.forEach(function (a) {
      ul.appendChild(el("li", null, [el("strong", null, [a.code]), " " + a.reason + " ", where(a.line)]));
    });
    return el("section", "accepts", [el("h3", null, ["Reviewed warnings (accepted in the protocol)"]), ul]);
  }

  function showBlock(id) {
    var b = data.blocks[id];
    if (!b) return;
    var collect = [];
    clear(details);
    details.appendChild(el("h2", null, ["Rule block: " + b.title]));
    details.appendChild(el("p", "meta", [b.name + " · used by " + (b.users.length ? b.users.join(", ") : "no state") +
      " (its rules apply where the block is used, in that place)", " ", where(b.line)]));
    b.decisions.forEach(function (d) { details.appendChild(ruleRows(d, collect)); });
    var src = sourceList(collect);
    if (src) details.appendChild(src);
  }

  function showCluster(id) {
    var c = data.clusters[id];
    if (!c) return;
    if (c.kind !== "track") { showState(c.state); return; }
    clear(details);
    details.appendChild(el("h2", null, ["Track: " + c.title]));
    details.appendChild(el("p", "meta", [c.state + " · a track of " + c.parent + ": it runs beside the other tracks, " +
      "each in one of its own states, on the same results and events", " ", where(c.line)]));
    var ul = el("ul", "states");
    c.states.forEach(function (x) {
      var s = data.states[x] || (data.clusters[x] ? { title: data.clusters[x].title } : null);
      ul.appendChild(el("li", null, [x + (s ? " — " + s.title : "")]));
    });
    details.appendChild(ul);
  }

  function showGroup(id) {
    var g = data.groups[id];
    if (!g) return;
    var collect = [];
    clear(details);
    details.appendChild(el("h2", null, ["Shared rules " + g.letter]));
    details.appendChild(el("p", "meta", ["In every one of: " + g.states.join(", ")]));
    g.decisions.forEach(function (d) { details.appendChild(ruleRows(d, collect)); });
    var src = sourceList(collect);
    if (src) details.appendChild(src);
  }

  function showRules(keys, title) {
    clear(details);
    var collect = [];
    details.appendChild(el("h2", null, [title]));
    keys.forEach(function (key) {
      var r = data.rules[key];
      if (!r) return;
      var box = el("section", "decision", [
        el("h3", null, ["◇ " + r.trigger]),
        el("div", "rule-head", [el("span", "guard", [r.guard]), " ", marks(r.sources, r.citations), " ",
          el("span", "target", [r.stay ? "stay" : "→ " + r.to])])
      ]);
      if (r.because) box.appendChild(el("div", "because", ["as written: " + r.because]));
      var acts = actionList(r.actions);
      if (acts) box.appendChild(acts);
      box.appendChild(el("div", "where", ["rule " + key + " from " + r.from + (r.line ? " · " + p.path + ":" + r.line : "")]));
      r.sources.forEach(function (s) { collect.push(s); });
      r.actions.forEach(function (a) { a.sources.forEach(function (s) { collect.push(s); }); });
      details.appendChild(box);
    });
    var src = sourceList(collect);
    if (src) details.appendChild(src);
  }

  function showArrow(id) {
    var a = data.arrows[id];
    if (!a) return;
    showRules(a.rules, a.from + " → " + a.to);
  }

  // ------------------------------------------------------------ selection

  var selected = [];
  function select(nodes) {
    selected.forEach(function (n) { n.classList.remove("selected"); });
    selected = nodes.filter(Boolean);
    selected.forEach(function (n) { n.classList.add("selected"); });
  }

  function elementOf(id) {
    return id ? document.getElementById(id) : null;
  }

  chart.addEventListener("click", function (e) {
    if (chart.dataset.justDragged) { delete chart.dataset.justDragged; return; }
    var g = e.target.closest ? e.target.closest("g.node, g.edge, g.cluster") : null;
    if (!g || !g.id) return;
    if (g.id.indexOf("state_") === 0) { select([g]); showState(g.id.slice(6)); }
    else if (g.id.indexOf("shared_") === 0) { select([g]); showGroup(g.id); }
    else if (g.id.indexOf("block_") === 0) { select([g]); showBlock(g.id); }
    else if (g.id.indexOf("cluster_") === 0) { select([g]); showCluster(g.id); }
    else if (g.id.indexOf("arrow_") === 0) { select([g]); showArrow(g.id); }
  });

  // ------------------------------------------------------------ one patient's steps

  function isList(x) { return Array.isArray(x); }
  function isPair(x) { return Array.isArray(x) && x.length === 2; }

  // a number for a person: thousands separated, never in scientific notation (250,000; 0.00001)
  function plainNumber(v) {
    return isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: 20 }) : String(v);
  }
  // a decimal text with its thousands separated: "250000.5" -> "250,000.5"
  function groupedText(t) {
    var m = /^(-?)(\d+)(\.\d+)?$/.exec(t);
    return m ? m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (m[3] || "") : t;
  }

  // one result of a panel step: "ALT 160 U/L (4× ULN)", "TBIL 1.1 mg/dL (0.92× ULN) from 2025-03-01"
  function exactText(r, key) {
    var exact = r[key + "_exact"];
    // a short decimal as it is; a fraction (5/12) or a long decimal, rounded
    if (typeof exact === "string" && exact.length <= 8 && exact.indexOf("/") < 0) return groupedText(exact);
    var v = r[key];
    if (typeof v !== "number") return exact !== undefined ? String(exact) : "?";
    return exact !== undefined ? "≈" + plainNumber(Math.round(v * 100) / 100) : plainNumber(v);
  }

  function resultText(r) {
    if (!r || typeof r !== "object") return "?";
    var t = String(r.lab) + " " + exactText(r, "value") + (r.unit ? " " + r.unit : "");
    if (r.xuln !== undefined) t += " (" + exactText(r, "xuln") + "× ULN)";
    var from = r.from || r.date;
    if (from) t += " from " + from;
    return t;
  }

  function stepText(s) {
    if (s.type === "enter") return "enter " + s.state;
    if (s.type === "transition") return s.from + " → " + s.to + (s.because ? " (" + s.because + ")" : "") + " · " + s.trigger;
    if (s.type === "action") {
      var t = "do " + s.action + " in " + s.state;
      if (isList(s.options)) t += " (one of " + s.options.join(", ") + (s.preferred === true ? "; the preferred option, no choice recorded" : "") + ")";
      if (isPair(s.window)) t += ", due " + s.window[0] + " to " + s.window[1];
      return t;
    }
    if (s.type === "deviation") {
      var kind = { overdue: "overdue", still_overdue: "still overdue", incomplete: "incomplete" }[s.kind] || String(s.kind || "deviation");
      var d = kind + ": " + s.action + (isPair(s.window) ? " (window " + s.window[0] + " to " + s.window[1] + ")" : "");
      if (isList(s.missing) && s.missing.length) d += ", no " + s.missing.join(", ");
      return d;
    }
    if (s.type === "unassessable") {
      return "not assessable in " + s.state + " (" + (s.trigger === "panel" ? "lab results" : s.trigger) + ")" +
        (isList(s.missing) && s.missing.length ? ": no " + s.missing.join(", ") : "") + "; nothing changes";
    }
    if (s.type === "panel") {
      var res = (isList(s.results) ? s.results : []).map(resultText);
      var t2 = "results: " + (res.length ? res.join(", ") : "none");
      if (isList(s.replaced) && s.replaced.length) t2 += " (replaced: " + s.replaced.map(resultText).join(", ") + ")";
      return t2;
    }
    return String(s.type);
  }

  function highlightStep(s) {
    if (s.type === "transition") {
      var r = data.rules[s.rule];
      var arrow = r && r.arrow ? elementOf(r.arrow) : null;
      var nodes = [arrow || elementOf("state_" + s.from), elementOf("state_" + s.to)];
      select(nodes);
      if (arrow) showRules([s.rule], s.from + " → " + s.to + " on " + s.date);
      else showState(s.to);
      centreOn(nodes[0]);
    } else if (s.state) {
      var n = elementOf("state_" + s.state);
      select([n]);
      showState(s.state);
      centreOn(n);
    } else {
      select([]);
    }
  }

  // before anything is clicked: what each order asks for and what fulfils it
  if ((data.orders || []).length) {
    var ul = el("ul", "orders");
    data.orders.forEach(function (o) {
      ul.appendChild(el("li", null, [el("span", null, [o.description]), " ", marks(o.sources),
        el("div", "fulfil", ["orders " + o.labs.join(", ") + "; fulfilled by " + o.fulfilled_by])]));
    });
    details.appendChild(el("section", "orders", [el("h3", null, ["Orders"]), ul]));
  }

  if (data.trace) {
    var t = data.trace;
    traceBox.appendChild(el("h2", null, ["Patient " + t.patient]));
    traceBox.appendChild(el("p", "meta", [t.start + " to " + t.until + (t.final_state ? " · ends in " + t.final_state : "")]));
    var ol = el("ol", "steps");
    t.steps.forEach(function (s, i) {
      var b = el("button", "step step-" + s.type, [
        el("span", "date", [s.date]), " ",
        s.number ? el("strong", "num", [String(s.number) + " "]) : null,
        el("span", null, [stepText(s)])
      ]);
      b.type = "button";
      b.dataset.index = String(i);
      b.addEventListener("click", function () {
        Array.prototype.forEach.call(ol.querySelectorAll(".current"), function (x) { x.classList.remove("current"); });
        b.classList.add("current");
        highlightStep(s);
      });
      ol.appendChild(el("li", null, [b]));
    });
    traceBox.appendChild(ol);
  } else {
    traceBox.style.display = "none";
  }

  apply();
})();
