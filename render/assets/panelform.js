// rxwatch viewer: "Ask about a panel". The protocol's rules, compiled to JavaScript by
// render/panelform.py (F: guards, conditions and values; LET: the lets), decided by the
// simulator's semantics (docs/simulation.md): exact rationals on BigInt, Kleene's
// three-valued logic, strict first match, inherited rules, the wider exit winning a
// conflict. Protocol text reaches the page through textContent only.
(function () {
  "use strict";

  var D = JSON.parse(document.getElementById("rxwatch-panelform").textContent);
  var K = D.consts.map(function (k) {
    if (k.q) return Q(BigInt(k.q[0]), BigInt(k.q[1]));
    if (k.dur) return { dur: k.dur };
    if (k.set) return k.set;
    if (k.ops) return k.ops;
    return k.s;
  });

/*@GENERATED@*/

  // ------------------------------------------------------------ exact numbers

  function gcd(a, b) {
    if (a < 0n) a = -a;
    if (b < 0n) b = -b;
    while (b) { var t = a % b; a = b; b = t; }
    return a;
  }
  function Q(n, d) {
    if (d < 0n) { n = -n; d = -d; }
    var g = gcd(n, d);
    if (g > 1n) { n /= g; d /= g; }
    return { n: n, d: d };
  }
  function isQ(x) { return x !== null && typeof x === "object" && typeof x.n === "bigint"; }
  function qcmp(a, b) {
    var l = a.n * b.d, r = b.n * a.d;
    return l < r ? -1 : l > r ? 1 : 0;
  }
  // a decimal as typed ("2.4", "1e3", ".5"): exact, or null when it is not a number >= 0
  function parseDecimal(text) {
    var m = /^\s*(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,3}))?\s*$/.exec(text || "");
    if (!m || (m[1] === "" && (m[2] === undefined || m[2] === ""))) return null;
    var frac = m[2] || "";
    var n = BigInt((m[1] || "0") + frac), d = 10n ** BigInt(frac.length);
    var e = m[3] ? parseInt(m[3], 10) : 0;
    if (e > 0) n *= 10n ** BigInt(e); else if (e < 0) d *= 10n ** BigInt(-e);
    return Q(n, d);
  }
  function qText(q) {
    if (q.d === 1n) return q.n.toString();
    var neg = q.n < 0n, n = neg ? -q.n : q.n;
    var scaled = (n * 1000n + q.d / 2n) / q.d;
    var s = scaled.toString().padStart(4, "0");
    var text = (s.slice(0, -3) + "." + s.slice(-3)).replace(/\.?0+$/, "");
    return (neg ? "-" : "") + (n * 1000n % q.d === 0n ? "" : "\u2248") + text;
  }
  function fromJson(v) {
    if (v !== null && typeof v === "object" && v.q) return Q(BigInt(v.q[0]), BigInt(v.q[1]));
    return v === undefined ? null : v;
  }

  // ------------------------------------------------------------ the calendar (ISO dates as day numbers)

  function daysFromCivil(y, m, d) {
    y -= m <= 2 ? 1 : 0;
    var era = Math.floor(y / 400), yoe = y - era * 400;
    var doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
    var doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
    return era * 146097 + doe - 719468;
  }
  function civilFromDays(z) {
    z += 719468;
    var era = Math.floor(z / 146097), doe = z - era * 146097;
    var yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
    var y = yoe + era * 400, doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    var mp = Math.floor((5 * doy + 2) / 153), d = doy - Math.floor((153 * mp + 2) / 5) + 1;
    var m = mp + (mp < 10 ? 3 : -9);
    return [y + (m <= 2 ? 1 : 0), m, d];
  }
  var MIN_DAY = daysFromCivil(1, 1, 1), MAX_DAY = daysFromCivil(9999, 12, 31);
  function parseDay(iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    if (!m) return null;
    var y = +m[1], mo = +m[2], d = +m[3];
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > monthDays(y, mo)) return null;
    return daysFromCivil(y, mo, d);
  }
  function isoDay(n) {
    var c = civilFromDays(n);
    return String(c[0]).padStart(4, "0") + "-" + String(c[1]).padStart(2, "0") + "-" + String(c[2]).padStart(2, "0");
  }
  function monthDays(y, m) {
    return [31, (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
  }
  // day + amount unit: days and weeks exactly, months and years by the calendar (clipped to the
  // month's last day), past the calendar's end its last day (simulator/expr.py, `shift`)
  function shift(day, amount, unit) {
    var out;
    if (unit === "days" || unit === "day") out = day + amount;
    else if (unit === "weeks" || unit === "week") out = day + 7 * amount;
    else {
      var months = (unit === "years" || unit === "year") ? 12 * amount : amount;
      var c = civilFromDays(day), total = c[0] * 12 + (c[1] - 1) + months;
      var y = Math.floor(total / 12), m = total - 12 * y + 1;
      if (y < 1 || y > 9999) return amount >= 0 ? MAX_DAY : MIN_DAY;
      out = daysFromCivil(y, m, Math.min(c[2], monthDays(y, m)));
    }
    if (out > MAX_DAY || out < MIN_DAY) return amount >= 0 ? MAX_DAY : MIN_DAY;
    return out;
  }

  // ------------------------------------------------------------ the runtime of the generated code

  function $g(o, k) { var v = o[k]; return v === undefined ? null : v; }
  // a fact or variable: unknown, and noted as history the answer needs, when not given
  function $hist(c, o, k, kind) {
    if (Object.prototype.hasOwnProperty.call(o, k)) return o[k];
    c.needs[kind + " " + k] = 1;
    return null;
  }
  // known(X): never unknown; when X is unknown because history was left blank, the answer
  // depends on that history (known() is the one read that unknown does not propagate through)
  function $known(c, f) {
    var before = Object.keys(c.needs).length;
    var v = f();
    if (v === null && Object.keys(c.needs).length > before) {
      Object.keys(c.needs).forEach(function (n) { c.fragile[n] = 1; });
    }
    return v !== null;
  }
  function $let(c, i) {
    if (Object.prototype.hasOwnProperty.call(c.m, i)) return c.m[i];
    var v = LET[i](c);
    c.m[i] = v;
    return v;
  }
  function $sinceEntry(c) {
    if (c.entered === null) { c.needs["entry " + (c.state ? c.state.name : "")] = 1; return null; }
    return { since: c.entered };
  }
  function $since(c, a) {
    if (!Object.prototype.hasOwnProperty.call(c.L, a)) { c.needs["since " + a] = 1; return null; }
    return c.L[a] === null ? null : { since: c.L[a] };
  }
  function $fulfilled(c, a) {
    // in a track: the track's own order, or the top level's (another track's does not count);
    // outside the tracks: any region's (simulator/engine.py, _regions)
    var f = c.fulfilled, own = function (r) { return !!f[r] && Object.prototype.hasOwnProperty.call(f[r], a); };
    if (c.region === null ? Object.keys(f).some(own) : own(c.region) || own("")) return true;
    // not given whether an order of `a` is open: unknown, when the panel could fulfil one
    if (c.ordersUnknown.indexOf(a) >= 0 && fulfils(c, a)) { c.needs["order " + a] = 1; return null; }
    return false;
  }
  function fulfils(c, a) {
    var act = D.actions[a], labs = Object.keys(c.P);
    return !!act && act.orders.some(function (l) { return labs.indexOf(l) >= 0; }) &&
      act.fulfil.some(function (alt) { return alt.every(function (l) { return labs.indexOf(l) >= 0; }); });
  }
  function $drug(c, func, name) {
    var d = c.drugs[name];
    if (d === undefined) {
      c.needs["drug " + name] = 1;
      return func === "dose" ? null : false;
    }
    if (func === "held") return Object.keys(d.holds).length > 0 && d.started && !d.stopped;
    if (func === "stopped") return d.stopped;
    if (func === "started") return d.started;
    if (!d.started || d.stopped) return null;
    return fromJson(D.drugs[name].levels[drugLevel(d)]);
  }
  function drugLevel(d) {
    var lv = 0;
    Object.keys(d.asks).forEach(function (r) { if (d.asks[r] > lv) lv = d.asks[r]; });
    return lv;
  }
  function $uln(c, lab) {
    if (Object.prototype.hasOwnProperty.call(c.U, lab)) return c.U[lab];
    var u = D.labs[lab] && D.labs[lab].uln;
    return u ? fromJson({ q: u }) : null;
  }
  function $xuln(c, lab) {
    var v = $g(c.P, lab);
    if (v === null) return null;
    var u = $uln(c, lab);
    if (u === null || u.n === 0n) return null;
    return Q(v.n * u.d, v.d * u.n);
  }
  function $add(a, b) { return a === null || b === null ? null : Q(a.n * b.d + b.n * a.d, a.d * b.d); }
  function $sub(a, b) { return a === null || b === null ? null : Q(a.n * b.d - b.n * a.d, a.d * b.d); }
  function $mul(a, b) { return a === null || b === null ? null : Q(a.n * b.n, a.d * b.d); }
  function $div(a, b) { return a === null || b === null || b.n === 0n ? null : Q(a.n * b.d, a.d * b.n); }
  function $neg(a) { return a === null ? null : Q(-a.n, a.d); }
  function $max(xs) {
    var best = null;
    xs.forEach(function (x) { if (x !== null && (best === null || qcmp(x, best) > 0)) best = x; });
    return best;
  }
  function $min(xs) {
    var best = null;
    xs.forEach(function (x) { if (x !== null && (best === null || qcmp(x, best) < 0)) best = x; });
    return best;
  }
  function test(op, r) {
    return op === "<" ? r < 0 : op === "<=" ? r <= 0 : op === ">" ? r > 0 : op === ">=" ? r >= 0 : op === "==" ? r === 0 : r !== 0;
  }
  function compareValues(op, x, y) {
    if (isQ(x) && isQ(y)) return test(op, qcmp(x, y));
    if (op === "==") return x === y;
    if (op === "!=") return x !== y;
    return test(op, x < y ? -1 : x > y ? 1 : 0);
  }
  function kleeneAnd(xs) {
    if (xs.indexOf(false) >= 0) return false;
    return xs.indexOf(null) >= 0 ? null : true;
  }
  // Kleene's and/or over operands given as functions, read left to right until one decides
  function $and(fs) {
    var unknown = false;
    for (var i = 0; i < fs.length; i++) {
      var v = fs[i]();
      if (v === false) return false;
      if (v === null) unknown = true;
    }
    return unknown ? null : true;
  }
  function $or(fs) {
    var unknown = false;
    for (var i = 0; i < fs.length; i++) {
      var v = fs[i]();
      if (v === true) return true;
      if (v === null) unknown = true;
    }
    return unknown ? null : false;
  }
  function $not(x) { return x === null ? null : !x; }
  function $in(x, set) { return x === null ? null : set.indexOf(x) >= 0; }
  function $chain(ops, vals) {
    var links = ops.map(function (op, i) {
      var x = vals[i], y = vals[i + 1];
      return x === null || y === null ? null : compareValues(op, x, y);
    });
    return kleeneAnd(links);
  }
  // durations compared on calendar dates: since(A) < 6 months is today < last(A) + 6 months
  function $timeChain(c, ops, vals) {
    var today = c.today;
    var links = ops.map(function (op, i) {
      var x = vals[i], y = vals[i + 1];
      if (x === null || y === null) return null;
      var r;
      if (x.since !== undefined && y.dur) r = cmpNum(today, shift(x.since, y.dur[0], y.dur[1]));
      else if (x.dur && y.since !== undefined) r = cmpNum(shift(y.since, x.dur[0], x.dur[1]), today);
      else if (x.since !== undefined && y.since !== undefined) r = cmpNum(y.since, x.since);
      else if (x.dur && y.dur) r = cmpNum(shift(today, x.dur[0], x.dur[1]), shift(today, y.dur[0], y.dur[1]));
      else throw new Error("cannot compare a duration with a number");
      return test(op, r);
    });
    return kleeneAnd(links);
  }
  function cmpNum(a, b) { return a < b ? -1 : a > b ? 1 : 0; }

  // ------------------------------------------------------------ the machine (engine.py's semantics)

  var S = D.states, R = D.rules;
  Object.keys(S).forEach(function (name) { S[name].name = name; });
  var PROBES = [Q(0n, 1n), Q(1000000000n, 1n)];
  var MAX_TRANSITIONS = 1000;

  function value(c, i) { c.m = {}; return F[i](c); }

  function setEntered(c, day) {
    if (c.entered !== day) { c.entered = day; c.m = {}; }
  }

  // a handler's rules by strict first match (or `exclusive`); a selection, or an unassessable step
  function dispatch(c, h, trigger) {
    var rules = h.rules.map(function (k) { return R[k]; });
    c.m = {};
    var entry = function (r) { var e = c.entries[r.source]; return e === undefined ? (D.chart ? c.today : c.entered) : e; };
    if (h.exclusive) {
      if (D.chart && rules.length) setEntered(c, entry(rules[0]));
      var gs = rules.map(function (r) { return r.guard === null ? undefined : F[r.guard](c); });
      for (var i = 0; i < rules.length; i++) if (gs[i] === true) return select(c, rules[i], trigger);
      var und = [];
      gs.forEach(function (g, j) { if (g === null) und.push(j); });
      if (und.length) return unassessable(c, rules, und, trigger);
      for (var j = 0; j < rules.length; j++) if (rules[j].guard === null) return select(c, rules[j], trigger);
      return null;
    }
    for (var k = 0; k < rules.length; k++) {
      var r = rules[k];
      if (r.guard === null) return select(c, r, trigger);
      if (D.chart) setEntered(c, entry(r));
      var g = F[r.guard](c);
      if (g === true) return select(c, r, trigger);
      if (g === null) return unassessable(c, rules, [k], trigger);
    }
    return null;
  }

  function unassessable(c, rules, undecided, trigger) {
    var missing = [];
    undecided.forEach(function (i) {
      var r = rules[i];
      var absent = r.reads.filter(function (lab) { return $g(c.P, lab) === null; });
      var found = [];
      var saved = c.needs;
      c.needs = {};
      absent.forEach(function (lab) {
        for (var p = 0; p < PROBES.length; p++) {
          c.P[lab] = PROBES[p];
          c.m = {};
          var t = F[r.guard](c);
          delete c.P[lab];
          if (t !== null) { found.push(lab); break; }
        }
      });
      c.needs = saved;
      c.m = {};
      (found.length ? found : absent).forEach(function (lab) { if (missing.indexOf(lab) < 0) missing.push(lab); });
    });
    var rule = rules[undecided[0]];
    c.m = {};
    var s = { type: "unassessable", trigger: trigger, missing: missing, state: c.state.name, rule: rule.key };
    Object.defineProperty(s, "values", { value: valuesRead(c, rule), enumerable: false });
    if (c.state.track !== null) s.track = c.state.track;
    c.steps.push(s);
    return s;
  }

  function peek(c, options) {
    for (var i = 0; i < c.choices.length; i++) {
      if (options.indexOf(c.choices[i]) >= 0 && !c.used[i]) return c.choices[i];
    }
    return options[0];
  }
  function choose(c, options) {
    for (var i = 0; i < c.choices.length; i++) {
      if (options.indexOf(c.choices[i]) >= 0 && !c.used[i]) { c.used[i] = true; return c.choices[i]; }
    }
    return options[0];
  }

  function select(c, rule, trigger) {
    var chosen = rule, alternative = null;
    if (rule.alts) {
      var options = rule.alts.map(function (a) { return a[0]; });
      alternative = peek(c, options);
      chosen = R[rule.alts[options.indexOf(alternative)][1]];
    }
    for (var i = 0; i < c.sel.length; i++) if (c.sel[i].rule === chosen) return c.sel[i];
    var s = { type: "transition", from: rule.source, to: chosen.target, trigger: trigger, rule: chosen.key };
    if (chosen.stay) s.stay = true;
    if (rule.track !== null) s.track = rule.track;
    if (alternative !== null) s.alternative = alternative;
    var sel = { rule: chosen, base: rule, step: s, state: c.state, values: valuesRead(c, rule) };
    c.sel.push(sel);
    return sel;
  }

  // what the rule's guard read: its lets' values, as the trace's `values` shows them
  function valuesRead(c, rule) {
    var saved = c.needs;
    c.needs = {};
    var out = rule.lets.map(function (pair) { return [pair[0], $let(c, pair[1])]; });
    c.needs = saved;
    return out;
  }

  function ancestors(st) { return st.ancestors.map(function (n) { return S[n]; }); }

  function exits(c, rule) {
    if (rule.stay) return [];
    var out = [];
    c.config.forEach(function (atomic) {
      var chain = [], found = false, anc = ancestors(atomic);
      for (var i = 0; i < anc.length; i++) {
        if (anc[i].name === rule.domain) { found = true; break; }
        chain.push(anc[i].name);
      }
      if (!found && rule.domain !== null) return;
      chain.forEach(function (n) { out.push(n); });
    });
    return out;
  }

  function reactAll(c, cands, trigger) {
    c.sel = [];
    cands.forEach(function (pair) {
      c.state = pair[0];
      c.region = pair[0].track;
      c.needs = {};
      c.fragile = {};
      var got = dispatch(c, pair[1], trigger);
      c.regions.push({ state: pair[0].name, track: pair[0].track, trigger: trigger, got: got,
                       needs: Object.keys(c.needs), fragile: Object.keys(c.fragile) });
    });
    if (c.sel.length) execute(c, c.sel);
  }

  function execute(c, sel) {
    var kept = [];
    var order = sel.map(function (_, i) { return i; });
    order.sort(function (a, b) { return (sel[a].rule.depth - sel[b].rule.depth) || (a - b); });
    order.forEach(function (i) {
      var rule = sel[i].rule, ex = exits(c, rule);
      for (var j = 0; j < kept.length; j++) {
        var k = kept[j];
        var clash = ex.some(function (n) { return k.exits.indexOf(n) >= 0; }) ||
          (rule.stay && k.exits.indexOf(rule.source) >= 0) || (k.rule.stay && ex.indexOf(k.rule.source) >= 0);
        if (clash) { (k.step.preempted = k.step.preempted || []).push(rule.key); return; }
      }
      kept.push({ i: i, rule: rule, step: sel[i].step, exits: ex });
    });
    kept.sort(function (a, b) { return a.i - b.i; });
    kept.forEach(function (k) {
      c.fired += 1;
      if (c.fired > MAX_TRANSITIONS) throw new Error("zero-time loop: more than " + MAX_TRANSITIONS + " transitions in one day");
      c.steps.push(k.step);
      k.step.fired = true;
    });
    var leaving = [];
    kept.forEach(function (k) { k.exits.forEach(function (n) { if (leaving.indexOf(n) < 0) leaving.push(n); }); });
    if (leaving.length) {
      c.timers = c.timers.filter(function (t) { return leaving.indexOf(t.owner) < 0; });
      leaving.forEach(function (n) { delete c.entries[n]; });
      c.config = c.config.filter(function (st) { return leaving.indexOf(st.name) < 0; });
    }
    var entered = [];
    kept.forEach(function (k) { k.rule.entry.forEach(function (n) { entered.push(S[n]); }); });
    entered.forEach(function (st) {
      c.entries[st.name] = c.today;
      if (st.type === "atomic") c.config.push(st);
      c.steps.push(stepOf({ type: "enter", state: st.name }, st));
      // a flat replay counts `since entry` from the state just entered (simulator/engine.py)
      if (!D.chart) { c.state = st; setEntered(c, c.today); }
    });
    c.config.sort(function (a, b) { return a.doc - b.doc; });
    kept.forEach(function (k) {
      if (!k.rule.actions.length) return;
      // a statechart rule's actions count `since entry` from entering their own target state
      // (a stay rule's: the state it stays in), as _Run.execute does
      if (D.chart) { var e = c.entries[k.rule.target]; setEntered(c, e === undefined ? null : e); }
      run(c, k.rule.actions, S[k.rule.target]);
    });
    entered.forEach(function (st) {
      if (st.entry.length) {
        if (D.chart) setEntered(c, c.today);
        run(c, st.entry, st);
      }
      st.timers.forEach(function (t) {
        var base = t.since === null ? c.today : c.L[t.since];
        if (base === undefined) { c.needs["since " + t.since] = 1; return; }
        if (base === null) return;
        var due = shift(base, t.amount, t.unit);
        c.timers.push({ due: due > c.today ? due : c.today, handler: t.handler, owner: st.name });
      });
    });
    var names = entered.map(function (st) { return st.name; });
    entered.forEach(function (st) {
      if (st.type !== "atomic") return;
      var top = st.name;
      var anc = st.ancestors;
      for (var i = 0; i < anc.length; i++) {
        if (names.indexOf(anc[i]) < 0) break;
        top = anc[i];
      }
      var h = st.facts[top];
      if (h) c.pending.push([st, h]);
    });
  }

  function stepOf(s, st) {
    if (st.track !== null) s.track = st.track;
    return s;
  }

  // the actions of a rule or an entry, in `st`
  function run(c, prog, st) {
    c.region = st.track;  // what `fulfilled(...)` reads in its conditions
    prog.forEach(function (a) {
      if (a.k === "do") {
        var s = stepOf({ type: "action", action: a.action, state: st.name, text: a.text }, st);
        if (a.window) s.window = windowOf(c.today, a.window);
        drugAct(c, a.action, st, s);
        c.steps.push(s);
        c.L[a.action] = c.today;
      } else if (a.k === "one_of") {
        var taken = choose(c, a.options);
        var o = stepOf({ type: "action", action: taken, state: st.name, options: a.options.slice(), text: a.texts[taken] }, st);
        if (a.window) o.window = windowOf(c.today, a.window);
        drugAct(c, taken, st, o);
        c.steps.push(o);
        c.L[taken] = c.today;
        if (a.then[taken]) run(c, a.then[taken], st);
      } else if (a.k === "set") {
        c.needs = {};
        var v = value(c, a.value);
        c.V[a.var] = v;
        c.steps.push(stepOf({ type: "set", var: a.var, value: v, state: st.name, text: a.text, needs: Object.keys(c.needs) }, st));
      } else if (a.k === "if") {
        c.needs = {};
        var t = value(c, a.cond);
        if (t === null && Object.keys(c.needs).length) {
          // unknown only because history was left blank: both branches shown, neither taken
          var then = progTexts(a.then), other = progTexts(a["else"]);
          c.steps.push(stepOf({ type: "note", state: st.name, needs: Object.keys(c.needs),
            text: "if " + a.text + " (depends on the blank " + Object.keys(c.needs).join(", ") + "): " +
              (then.length ? then.join("; ") : "nothing") + (other.length ? "; otherwise: " + other.join("; ") : "") }, st));
          return;
        }
        run(c, t === true ? a.then : a["else"], st);
      }
    });
  }

  // what a list of actions would do, as text (an `if` it holds: its condition and both branches)
  function progTexts(prog) {
    var out = [];
    prog.forEach(function (a) {
      if (a.k === "do" || a.k === "one_of") out.push(a.text);
      else if (a.k === "if") {
        var t = progTexts(a.then), e = progTexts(a["else"]);
        if (t.length || e.length) out.push("if " + a.text + ": " + (t.join("; ") || "nothing") + (e.length ? ", otherwise " + e.join("; ") : ""));
      }
    });
    return out;
  }

  function windowOf(today, w) {
    var opens, last;
    if (w[3] === null) {
      last = shift(today, w[1], w[2]);
      opens = shift(today, w[0], w[2]);
    } else {
      opens = shift(shift(today, w[0], w[2]), -w[3][0], w[3][1]);
      last = shift(shift(today, w[1], w[2]), w[3][0], w[3][1]);
    }
    return [isoDay(opens), isoDay(last)];
  }

  function drugAct(c, action, st, s) {
    var eff = D.actions[action] && D.actions[action].effect;
    if (!eff) return;
    var kind = eff[0], name = eff[1], level = eff[2], region = st.track === null ? "" : st.track;
    var d = c.drugs[name];
    if (d === undefined) d = c.drugs[name] = { started: false, stopped: false, holds: {}, asks: {} };
    if (d.stopped) return;
    if (kind === "start") { d.started = true; if (level !== null) d.asks[region] = level; }
    else if (kind === "hold") { d.started = true; d.holds[region] = true; }
    else if (kind === "resume") { delete d.holds[region]; d.started = true; if (level !== null) d.asks[region] = level; }
    else if (kind === "dose") { d.started = true; d.asks[region] = level !== null ? level : 0; }
    else if (kind === "stop") d.stopped = true;
    var status = d.stopped ? "stopped" : !d.started ? "not_started" : Object.keys(d.holds).length ? "held" : "on";
    s.drug = { name: name, status: status, dose: status === "on" || status === "held" ? drugLevel(d) : null };
  }

  // `on fact` rules of the states entered, then timers due today, until nothing more happens
  function settle(c) {
    for (;;) {
      if (c.pending.length) {
        var cands = c.pending;
        c.pending = [];
        reactAll(c, cands, "fact");
        continue;
      }
      var t = null;
      for (var i = 0; i < c.timers.length; i++) if (c.timers[i].due <= c.today) { t = c.timers[i]; break; }
      if (t === null) return;
      c.timers.splice(c.timers.indexOf(t), 1);
      if (t.handler) reactAll(c, [[S[t.owner], t.handler]], "timer");
    }
  }

  // One question: `q` = {config: [atomic states], today: ISO, panel: {LAB: {value: "2.4", unit: "mg/L" or
  // null (the lab's own), uln: "1.2" or null}}, facts, vars: {NAME: value}, last: {ACTION: ISO or null
  // (never)}, entries: {STATE: ISO}, orders: [{action, opens: ISO or null, track}] (the open orders,
  // `track` null at the top level),
  // orders_unknown: [ACTION] (not given whether one is open), drugs: {D: {started, stopped, holds:
  // [regions], asks: {region: level}}}, choices: [ACTION]}; values are {q: [n, d]}, true/false, a member,
  // or null. A fact, variable, entry day, recommendation or drug left out is unknown. Returns {steps,
  // regions, unseen, config, error}.
  function evaluate(q) {
    var today = parseDay(q.today);
    var c = {
      P: {}, U: {}, F: {}, V: {}, L: {}, m: {}, needs: {}, fragile: {}, entries: {}, fulfilled: {}, drugs: {},
      region: null, answered: {},
      today: today, entered: null, state: null, steps: [], regions: [], sel: [], pending: [], timers: [],
      fired: 0, choices: q.choices || [], used: {}, ordersUnknown: q.orders_unknown || [],
      config: (q.config || []).map(function (n) { return S[n]; })
    };
    var bad = (q.config || []).filter(function (n) { return !S[n]; }).map(function (n) { return "'" + n + "' is not a state of this protocol"; });
    if (bad.length) return { steps: [], regions: [], unseen: [], error: bad.join("; ") };
    c.config.sort(function (a, b) { return a.doc - b.doc; });
    var HOW = " (digits with a decimal point, e.g. 1200 or 1.5: no thousands separator, no decimal comma)";
    Object.keys(q.panel || {}).forEach(function (lab) {
      var r = q.panel[lab];
      if (!D.labs[lab]) { bad.push(lab + " is not a lab of this protocol"); return; }
      var f = unitFactor(lab, r.unit);
      if (f === null) { bad.push(lab + ": the unit " + r.unit + " does not convert to " + (D.labs[lab].unit || "no unit")); return; }
      var v = parseDecimal(r.value);
      if (v === null) { bad.push(lab + ": " + r.value + " is not a number of 0 or more" + HOW); return; }
      c.P[lab] = $mul(v, f);
      if (r.uln !== undefined && r.uln !== null && r.uln !== "") {
        var u = parseDecimal(r.uln);
        if (u === null || u.n === 0n) { bad.push(lab + ": the ULN " + r.uln + " is not a number above 0" + HOW); return; }
        c.U[lab] = $mul(u, f);
      }
    });
    // a number fact or var typed as text ("70", "-1.5") read exactly; text that is no number is
    // an error, never a blank (a blank is unknown: the answer would ask for what was typed)
    [["facts", D.facts, c.F], ["vars", D.vars, c.V]].forEach(function (kind) {
      Object.keys(q[kind[0]] || {}).forEach(function (k) {
        var v = q[kind[0]][k], d = kind[1][k];
        if (d && d.type === "number" && typeof v === "string") {
          var x = /^\s*-/.test(v) ? parseDecimal(v.replace(/^\s*-/, "")) : parseDecimal(v);
          if (x === null) { bad.push(k + ": " + v + " is not a number" + HOW.replace(" e.g.", " e.g. -2,")); return; }
          kind[2][k] = /^\s*-/.test(v) ? Q(-x.n, x.d) : x;
          return;
        }
        kind[2][k] = fromJson(v);
      });
    });
    if (bad.length) return { steps: [], regions: [], unseen: [], error: bad.join("; ") };
    Object.keys(q.last || {}).forEach(function (k) { c.L[k] = q.last[k] === null ? null : parseDay(q.last[k]); });
    Object.keys(q.entries || {}).forEach(function (k) { c.entries[k] = parseDay(q.entries[k]); });
    Object.keys(q.drugs || {}).forEach(function (k) {
      var d = q.drugs[k], holds = {};
      (d.holds || []).forEach(function (r) { holds[r] = true; });
      c.drugs[k] = { started: !!d.started, stopped: !!d.stopped, holds: holds, asks: Object.assign({}, d.asks || {}) };
    });
    if (!D.chart && c.config.length) {
      var e = c.entries[c.config[0].name];
      c.entered = e === undefined ? null : e;
    }
    // the open orders today's results fulfil (before the rules run), by region ("": the top level)
    var labs = Object.keys(c.P);
    (q.orders || []).forEach(function (o) {
      var opens = o.opens ? parseDay(o.opens) : null;
      if (opens !== null && today < opens) return;
      if (!fulfils(c, o.action)) return;
      var r = o.track || "";
      (c.fulfilled[r] = c.fulfilled[r] || {})[o.action] = true;
      if (o.track) c.answered[o.track] = true;
    });
    try {
      if (today === null) throw new Error("no date for the panel");
      var cands = c.config.filter(function (st) {
        // a track reads the panel when it brings one of its labs, or fulfils the track's own order
        return st.panel && (st.about === null || st.about.some(function (l) { return labs.indexOf(l) >= 0; }) ||
                            (st.track !== null && c.answered[st.track] === true));
      });
      c.unseen = c.config.filter(function (st) { return st.panel && cands.indexOf(st) < 0; }).map(function (st) { return st.name; });
      reactAll(c, cands.map(function (st) { return [st, st.panel]; }), "panel");
      settle(c);
    } catch (err) {
      return { steps: c.steps, regions: c.regions, unseen: c.unseen || [], error: String(err.message || err) };
    }
    return { steps: c.steps, regions: c.regions, unseen: c.unseen, config: c.config.map(function (st) { return st.name; }) };
  }

  // the exact factor from `unit` (as written; null: the lab's own) to the lab's unit
  function unitFactor(lab, unit) {
    var decl = D.labs[lab];
    if (!decl) return null;
    if (unit === null || unit === undefined || unit === decl.unit) return Q(1n, 1n);
    for (var i = 0; i < decl.units.length; i++) {
      if (decl.units[i][0] === unit) return Q(BigInt(decl.units[i][1][0]), BigInt(decl.units[i][1][1]));
    }
    return null;
  }

  function toJson(v) {
    if (isQ(v)) return { q: [v.n.toString(), v.d.toString()] };
    return v;
  }
  // the answers as plain JSON (numbers as {q: [n, d]}), for a batch of questions
  function evaluateAll(questions) {
    return questions.map(function (q) {
      var out = evaluate(q);
      out.steps.forEach(function (s) { if (s.type === "set") s.value = toJson(s.value); });
      out.regions.forEach(function (r) { delete r.got; });
      return out;
    });
  }
  window.rxwatchPanelform = { evaluate: evaluateAll };

  // ------------------------------------------------------------ the form
  var box = document.getElementById("panelform");
  if (!box) return;  // a page without the form's place: the engine alone
  var viewData = document.getElementById("rxwatch-data");
  var view = viewData ? JSON.parse(viewData.textContent) : {};

  function el(tag, cls, children) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === "") return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function option(value, text, selected) {
    var o = el("option", null, [text]);
    o.value = value;
    if (selected) o.selected = true;
    return o;
  }
  function labelled(text, control, hint) {
    return el("label", "pf-field", [el("span", "pf-label", [text]), control, hint ? el("span", "pf-hint", [hint]) : null]);
  }
  function title(state) {
    var v = view.states && view.states[state];
    return (v && v.title) || (S[state] && S[state].title) || state;
  }
  function ruleText(key) {
    var r = R[key], v = view.rules && view.rules[key];
    var text = v && v.guard ? v.guard : r.text;
    var number = null;
    var st = view.states && view.states[r.source];
    (st ? st.decisions : []).forEach(function (dec) {
      dec.rows.forEach(function (row) { if (row.rules.indexOf(key.split("@")[0]) >= 0 && row.number) number = row.number; });
    });
    return (number ? "rule " + number + ": " : "") + text;
  }
  // a history value the answer needed and was not given, in words
  function needText(n) {
    var i = n.indexOf(" "), kind = n.slice(0, i), name = n.slice(i + 1);
    if (kind === "fact") return (D.facts[name] && D.facts[name].description || name) + " (" + name + ")";
    if (kind === "var") return (D.vars[name] && D.vars[name].description || name) + " (" + name + ")";
    if (kind === "since") return "the day \u201c" + ((D.actions[name] && D.actions[name].text) || name) + "\u201d was last recommended (" + name + ")";
    if (kind === "entry") return "the day " + title(name) + " was entered";
    if (kind === "drug") return "the status of " + name;
    if (kind === "order") return "whether this panel answers an open order: " + ((D.actions[name] && D.actions[name].text) || name) + " (" + name + ")";
    return n;
  }
  function readText(values) {
    if (!values || !values.length) return document.createTextNode("");
    return el("p", "pf-hint", ["read: " + values.map(function (v) {
      var x = v[1];
      var shown = x === null ? "unknown" : x === true ? "yes" : x === false ? "no" : isQ(x) ? qText(x) :
        x.since !== undefined ? "since " + isoDay(x.since) : String(x);
      return v[0] + " = " + shown;
    }).join(", ")]);
  }
  function regionName(track) {
    return track === null ? "" : (title(track) || track);
  }
  function today() {
    var d = new Date();
    return isoDay(daysFromCivil(d.getFullYear(), d.getMonth() + 1, d.getDate()));
  }

  // -- where the patient is: one choice per region (the top level, then each track of a parallel state chosen)
  function positions(region) {
    return Object.keys(S).filter(function (n) {
      var st = S[n];
      return (st.type === "atomic" || st.type === "parallel") && regionOf(st) === region;
    }).sort(function (a, b) { return S[a].doc - S[b].doc; });
  }
  function regionOf(st) {
    var p = st.parent;
    while (p !== null && S[p].type !== "track") p = S[p].parent;
    return p;
  }

  var form = el("form", "pf-form");
  form.setAttribute("autocomplete", "off");
  form.noValidate = true;
  var where = el("div", "pf-where");
  var selects = {};
  function placeSelect(region, holder) {
    var sel = el("select", "pf-state");
    sel.dataset.region = region === null ? "" : region;
    positions(region).forEach(function (n, i) {
      var st = S[n];
      var text = st.type === "parallel" ? title(n) + " (its tracks below)" : title(n) + (st.terminal ? " (end)" : "");
      sel.appendChild(option(n, text, i === 0));
    });
    var sub = el("div", "pf-tracks");
    selects[region === null ? "" : region] = sel;
    function changed() {
      while (sub.firstChild) sub.removeChild(sub.firstChild);
      Object.keys(selects).forEach(function (k) {
        if (k !== (region === null ? "" : region) && !document.body.contains(selects[k])) delete selects[k];
      });
      var st = S[sel.value];
      if (st && st.type === "parallel") {
        st.children.forEach(function (tr) { placeSelect(tr, sub); });
      }
      buildEntries();
    }
    sel.addEventListener("change", changed);
    holder.appendChild(labelled(region === null ? "State" : "Track " + regionName(region), sel));
    holder.appendChild(sub);
    changed();
  }
  function config() {
    var out = [];
    Object.keys(selects).forEach(function (k) {
      var sel = selects[k];
      if (!document.body.contains(sel)) return;
      if (S[sel.value] && S[sel.value].type === "atomic") out.push(sel.value);
    });
    return out;
  }

  // -- the panel
  var dateInput = el("input", "pf-date");
  dateInput.type = "date";
  dateInput.value = today();
  var labRows = {};
  var table = el("table", "pf-labs", [el("thead", null, [el("tr", null, [el("th", null, ["Lab"]), el("th", null, ["Result"]),
    el("th", null, ["Unit"]), el("th", null, ["ULN (optional)"])])])]);
  var tbody = el("tbody");
  table.appendChild(tbody);
  var labNames = Object.keys(D.labs);
  labNames.sort(function (a, b) { return (D.panel_labs.indexOf(a) < 0) - (D.panel_labs.indexOf(b) < 0); });
  labNames.forEach(function (lab) {
    var decl = D.labs[lab];
    var value = el("input", "pf-value");
    value.inputMode = "decimal";
    value.name = "value-" + lab;
    value.placeholder = "not measured";
    value.setAttribute("aria-label", lab + " result");
    var unit = el("select", "pf-unit");
    unit.name = "unit-" + lab;
    decl.units.forEach(function (u, i) { unit.appendChild(option(String(i), u[0] === null ? "(no unit)" : u[0], i === 0)); });
    if (!decl.units.length) unit.appendChild(option("-1", decl.unit || "(no unit)", true));
    var uln = el("input", "pf-uln");
    uln.inputMode = "decimal";
    uln.name = "uln-" + lab;
    uln.placeholder = decl.uln ? qText(fromJson({ q: decl.uln })) + " (declared)" : "none declared";
    uln.setAttribute("aria-label", lab + " ULN");
    var name = el("td", null, [el("strong", null, [lab]), " ", el("span", "pf-hint", [decl.description])]);
    tbody.appendChild(el("tr", null, [name, el("td", null, [value]), el("td", null, [unit]), el("td", null, [uln])]));
    labRows[lab] = { value: value, unit: unit, uln: uln };
  });

  // -- the patient's history: whatever a rule reads beyond the panel; blank is unknown, never assumed
  var history = el("details", "pf-history", [el("summary", null, ["The patient's history (what some rules read beyond the panel)"]),
    el("p", "pf-hint", ["Left blank, a value is unknown: a rule that needs it is reported as needing the patient's history, " +
      "never decided by a guess. Results of earlier days are not read: the panel is what is entered above."])]);
  var factInputs = {}, varInputs = {}, sinceInputs = {}, orderInputs = {}, drugInputs = {}, entryBox = el("div", "pf-entries"), entryInputs = {};
  function valueControl(decl, given) {
    var sel;
    if (decl.type === "bool") {
      sel = el("select");
      sel.appendChild(option("", "not given", !given));
      sel.appendChild(option("true", "yes", given && decl.default === true));
      sel.appendChild(option("false", "no", given && decl.default === false));
      return sel;
    }
    if (decl.type === "number") {
      sel = el("input");
      sel.inputMode = "decimal";
      sel.placeholder = "not given";
      if (given && decl.default && decl.default.q) sel.value = qText(fromJson(decl.default)).replace("\u2248", "");
      return sel;
    }
    sel = el("select");
    sel.appendChild(option("", "not given", !given));
    decl.members.forEach(function (m) { sel.appendChild(option(m, m, given && decl.default === m)); });
    return sel;
  }
  function readControl(decl, ctl) {
    if (ctl.value.trim() === "") return undefined;
    if (decl.type === "bool") return ctl.value === "true";
    if (decl.type === "number") { var q = parseDecimal(ctl.value); return q === null ? ctl.value : toJson(q); }  // text: evaluate says what is wrong
    return ctl.value;
  }
  var factNames = Object.keys(D.facts), varNames = Object.keys(D.vars);
  if (factNames.length) {
    history.appendChild(el("h4", null, ["Facts about the patient (the protocol's defaults filled in)"]));
    factNames.forEach(function (n) {
      var d = D.facts[n];
      factInputs[n] = valueControl(d, d.has_default);
      history.appendChild(labelled(d.description || n, factInputs[n], n + (d.has_default ? "" : " (no default)")));
    });
  }
  if (varNames.length) {
    history.appendChild(el("h4", null, ["What the protocol has recorded (its variables)"]));
    varNames.forEach(function (n) {
      var d = D.vars[n];
      varInputs[n] = valueControl(d, false);
      history.appendChild(labelled(d.description || n, varInputs[n], n + (d.has_default ? " (starts as " + String(d.default && d.default.q ? qText(fromJson(d.default)) : d.default) + ")" : "")));
    });
  }
  if (varNames.length) {
    var starts = el("button", "pf-starts", ["as at the start of the protocol"]);
    starts.type = "button";
    starts.addEventListener("click", function () {
      varNames.forEach(function (n) {
        var d = D.vars[n], ctl = varInputs[n];
        if (!d.has_default) return;
        ctl.value = d.type === "number" ? (d.default && d.default.q ? qText(fromJson(d.default)) : "") : String(d.default);
      });
    });
    history.appendChild(el("p", null, [starts, el("span", "pf-hint", [" fills in the variables' starting values"])]));
  }
  history.appendChild(el("h4", null, ["When the current states were entered"]));
  history.appendChild(entryBox);
  function buildEntries() {
    while (entryBox.firstChild) entryBox.removeChild(entryBox.firstChild);
    var seen = {};
    config().forEach(function (n) {
      S[n].ancestors.forEach(function (a) {
        if (seen[a] || S[a].type === "track") return;
        seen[a] = 1;
        var inp = entryInputs[a] || el("input");
        inp.type = "date";
        entryInputs[a] = inp;
        entryBox.appendChild(labelled(title(a), inp, a + ": since entry counts from this day"));
      });
    });
  }
  if (D.since.length) {
    history.appendChild(el("h4", null, ["When an action was last recommended"]));
    D.since.forEach(function (a) {
      var inp = el("input");
      inp.type = "date";
      var never = el("input");
      never.type = "checkbox";
      sinceInputs[a] = { day: inp, never: never };
      history.appendChild(labelled((D.actions[a] && D.actions[a].text) || a, el("span", null, [inp, " ", never, " never"]), a));
    });
  }
  var orderable = Object.keys(D.actions).filter(function (a) { return D.actions[a].orders.length; });
  if (orderable.length) {
    history.appendChild(el("h4", null, ["Is an order open that this panel answers (its window has opened)?"]));
    orderable.forEach(function (a) {
      var sel = el("select");
      sel.name = "order-" + a;
      sel.appendChild(option("", "not given", true));
      sel.appendChild(option("yes", "yes", false));
      sel.appendChild(option("no", "no", false));
      orderInputs[a] = sel;
      history.appendChild(labelled(D.actions[a].text, sel, a + ": fulfilled by " + D.actions[a].fulfil.map(function (x) { return x.join(" and "); }).join(" or ")));
    });
  }
  Object.keys(D.drugs).forEach(function (name) {
    var d = D.drugs[name];
    var status = el("select");
    [["", "not given"], ["not_started", "not started"], ["on", "on"], ["held", "held"], ["stopped", "stopped"]].forEach(function (o) {
      status.appendChild(option(o[0], o[1], o[0] === ""));
    });
    var dose = el("select");
    d.levels.forEach(function (lv, i) {
      var text = d.labels[i] || (lv.q ? qText(fromJson(lv)) + (d.unit ? " " + d.unit : "") : lv.s);
      dose.appendChild(option(String(i), text, i === 0));
    });
    drugInputs[name] = { status: status, dose: dose };
    history.appendChild(el("h4", null, ["Drug: " + d.description]));
    history.appendChild(labelled("status", status));
    history.appendChild(labelled("dose", dose));
  });

  var ask = el("button", "pf-ask", ["What does the protocol say?"]);
  ask.type = "submit";
  var answer = el("div", "pf-answer");
  answer.setAttribute("aria-live", "polite");

  box.appendChild(form);
  box.appendChild(answer);
  form.appendChild(el("p", "pf-hint", ["Pick where the patient is, enter the day's results, and read which rule fires and what to do, " +
    "decided by the protocol's own rules as the simulator decides them. The states picked are the patient's on the " +
    "panel's day (timers due before it are not run); after the panel, the timers and on-fact rules of the states " +
    "entered that day are."]));
  form.appendChild(where);
  form.appendChild(labelled("Date of the panel", dateInput));
  form.appendChild(table);
  form.appendChild(history);
  form.appendChild(ask);
  placeSelect(null, where);
  if (D.prefill && D.prefill.config.length) applyPrefill(D.prefill);

  // the viewer's patient (--trace): the states the trace ends in and the history its steps give
  function applyPrefill(p) {
    for (var round = 0; round < 8; round++) {
      var changed = false;
      Object.keys(selects).forEach(function (k) {
        var sel = selects[k];
        if (!document.body.contains(sel)) return;
        var values = Array.prototype.map.call(sel.options, function (o) { return o.value; });
        p.config.forEach(function (n) {
          var hit = (S[n] ? S[n].ancestors : []).filter(function (a) { return values.indexOf(a) >= 0; })[0];
          if (hit !== undefined && sel.value !== hit) {
            sel.value = hit;
            sel.dispatchEvent(new Event("change"));
            changed = true;
          }
        });
      });
      if (!changed) break;
    }
    varNames.forEach(function (n) {
      if (!Object.prototype.hasOwnProperty.call(p.vars, n)) return;
      var v = fromJson(p.vars[n]);
      varInputs[n].value = v === null ? "" : isQ(v) ? qText(v).replace("\u2248", "") : String(v);
    });
    Object.keys(entryInputs).forEach(function (n) { if (p.entries[n]) entryInputs[n].value = p.entries[n]; });
    Object.keys(sinceInputs).forEach(function (a) {
      if (!Object.prototype.hasOwnProperty.call(p.last, a)) return;
      if (p.last[a] === null) sinceInputs[a].never.checked = true; else sinceInputs[a].day.value = p.last[a];
    });
    Object.keys(drugInputs).forEach(function (name) {
      var d = p.drugs[name];
      if (!d) return;
      drugInputs[name].status.value = d.stopped ? "stopped" : !d.started ? "not_started" : d.holds.length ? "held" : "on";
      drugInputs[name].dose.value = String(drugLevel({ asks: d.asks }));
    });
    form.insertBefore(el("p", "pf-hint", ["Filled in from the patient's steps shown above: the states they end in, " +
      "the variables, the days states were entered and actions recommended, the drug. Facts and open orders are not in the " +
      "steps: check them under the patient's history."]), where);
  }

  // the question the form's fields ask (the same shape `evaluate` takes)
  function question() {
    var q = { config: config(), today: dateInput.value, panel: {}, facts: {}, vars: {}, last: {}, entries: {}, orders: [], drugs: {} };
    labNames.forEach(function (lab) {
      var row = labRows[lab];
      if (!row.value.value.trim()) return;
      var u = D.labs[lab].units[parseInt(row.unit.value, 10)];
      q.panel[lab] = { value: row.value.value.trim(), unit: u ? u[0] : null, uln: row.uln.value.trim() || null };
    });
    factNames.forEach(function (n) { var v = readControl(D.facts[n], factInputs[n]); if (v !== undefined) q.facts[n] = v; });
    varNames.forEach(function (n) { var v = readControl(D.vars[n], varInputs[n]); if (v !== undefined) q.vars[n] = v; });
    Object.keys(entryInputs).forEach(function (n) { if (entryInputs[n].value && document.body.contains(entryInputs[n])) q.entries[n] = entryInputs[n].value; });
    Object.keys(sinceInputs).forEach(function (a) {
      var x = sinceInputs[a];
      if (x.never.checked) q.last[a] = null; else if (x.day.value) q.last[a] = x.day.value;
    });
    q.orders_unknown = [];
    Object.keys(orderInputs).forEach(function (a) {
      var v = orderInputs[a].value;
      if (v === "yes") q.orders.push({ action: a, opens: null });
      else if (v === "") q.orders_unknown.push(a);
    });
    Object.keys(drugInputs).forEach(function (name) {
      var x = drugInputs[name], s = x.status.value;
      if (!s) return;
      var lv = parseInt(x.dose.value, 10);
      q.drugs[name] = { started: s !== "not_started", stopped: s === "stopped", holds: s === "held" ? [""] : [], asks: { "": lv } };
    });
    return q;
  }

  function show(res) {
    while (answer.firstChild) answer.removeChild(answer.firstChild);
    if (res.error) { answer.appendChild(el("p", "pf-error", [res.error])); return; }
    var list = el("div", "pf-regions");
    res.regions.forEach(function (r) {
      // after the panel, the on-fact rules and timers of the states entered: shown when they decide something
      if (r.trigger !== "panel" && !r.got) return;
      var head = (r.track ? regionName(r.track) + " · " : "") + "in " + title(r.state) + (r.trigger !== "panel" ? " (then, on " + r.trigger + ")" : "");
      var item = el("section", "pf-region", [el("h4", null, [head])]);
      var got = r.got, needs = r.needs;
      if (got && got.type !== "unassessable") {
        var rule = got.rule;
        var to = rule.stay ? "stays in " + title(rule.source) : "→ " + title(rule.target);
        if (got.base.alts && got.base.alts.length > 1) {
          to = "→ one of: " + got.base.alts.map(function (a) {
            var r2 = R[a[1]];
            return ((D.actions[a[0]] && D.actions[a[0]].text) || a[0]) + " → " + (r2.stay ? "stay" : title(r2.target));
          }).join("; ") + " (what to do below follows the first)";
        }
        item.appendChild(el("p", "pf-fires", [el("strong", null, ["Fires: "]), el("span", "pf-rule", [ruleText(got.base.key)]), " ", el("span", "pf-target", [to])]));
        item.appendChild(readText(got.values));
        if (got.step.preempted) item.appendChild(el("p", "pf-hint", ["It takes precedence over " + got.step.preempted.join(", ") + " (the wider exit wins)."]));
        if (!got.step.fired) item.appendChild(el("p", "pf-hint", ["Not acted on: a rule of another track that leaves more takes precedence."]));
      } else if (got && got.type === "unassessable") {
        var text = got.missing.length ? "unassessable: missing " + got.missing.join(", ") :
          needs.length ? "undecided without the patient's history" : "unassessable";
        item.appendChild(el("p", "pf-unassessable", [el("strong", null, [text]), " (", ruleText(got.rule), " cannot be decided; nothing is done)"]));
        item.appendChild(readText(got.values));
      } else {
        item.appendChild(el("p", null, ["No rule applies: nothing is done."]));
      }
      // a decided rule stays decided whatever the blank history is (three-valued logic), unless
      // known() read a blank: then the answer depends on it
      if (needs.length && (!got || got.type === "unassessable")) {
        item.appendChild(el("p", "pf-needs", ["Needs the patient's history: " + needs.map(needText).join("; ")]));
      } else if (r.fragile.length) {
        item.appendChild(el("p", "pf-needs", ["This answer reads as unknown what was left blank: " + r.fragile.map(needText).join("; ") +
          ". Fill it in: the answer may change."]));
      }
      list.appendChild(item);
    });
    (res.unseen || []).forEach(function (n) {
      var st = S[n];
      list.appendChild(el("section", "pf-region", [el("h4", null, [(st.track ? regionName(st.track) + " · " : "") + "in " + title(n)]),
        el("p", null, ["Does not look at this panel: it brings no result of " + (st.about || []).join(", ") + "."])]));
    });
    answer.appendChild(list);
    var todo = el("ul", "pf-todo");
    res.steps.forEach(function (s) {
      if (s.type === "action") {
        var li = el("li", null, [s.options ? s.options.map(function (o) { return (D.actions[o] && D.actions[o].text) || o; }).join(" OR ") : s.text]);
        if (s.window) li.appendChild(el("span", "pf-window", [" (" + s.window[0] + " to " + s.window[1] + ")"]));
        if (s.options) li.appendChild(el("span", "pf-hint", [" (one of them)"]));
        else if (s.drug) li.appendChild(el("span", "pf-hint", [" — " + s.drug.name + " " + s.drug.status.replace("_", " ")]));
        todo.appendChild(li);
      } else if (s.type === "enter" && S[s.state].type === "atomic") {
        todo.appendChild(el("li", "pf-enter", [el("strong", null, ["Now: " + title(s.state)])]));
      } else if (s.type === "note") {
        todo.appendChild(el("li", "pf-needs", [s.text]));
      }
    });
    if (todo.firstChild) answer.appendChild(el("div", null, [el("h4", null, ["What to do"]), todo]));
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    show(evaluate(question()));
  });
  window.rxwatchPanelform.question = question;
})();
