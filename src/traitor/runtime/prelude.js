// Traitor prelude: the JS side of a run, evaluated in every fresh QuickJS context
// before the job's script. See sandbox.py for the host side.
//
// It is split into parts ("//@part name" lines). The worker compiles each part to
// bytecode once (file name "prelude"); a run reads only the small `core` eagerly. The
// other parts load on first use: the core raises a host signal (below) and the host
// evaluates the part's bytecode in this context, synchronously, before the signal
// returns. Without the native hooks every part is evaluated up front from source.
// Every closure and object made here costs each run (≈ 0.5 µs apiece on a small VM, and
// reading its bytecode about as much again), so the core keeps to what the host needs and
// to stubs; even its console section is left out, and loaded on first use, when the
// script's text does not name `console`.
//
// Globals for scripts: console, setTimeout/setInterval/setImmediate and their clear*,
// require, and fetch (only when an `http` host module with a fetch export exists).
//
// Host → JS: the global function __t_api(op, arg):
//   __t_api(0)        tick: drain the outbox → 0 when the run is idle with nothing to
//                     report, else a JSON string [flags, nextTimerAt, lines, calls, failure]
//                     flags: 1 timers pending, 2 host calls in flight, 4 output truncated
//                     lines: [[ms, level, text]...]; calls: [[id, module, fn, argsJSON]...]
//                     failure: [kind ("error" | "memory"), "message\n stack"] or null
//   __t_api(1)        fire the earliest due timer → 1 if one fired (drain jobs, call again)
//   __t_api(2, json)  settle host calls: [[id, ok, value or error message], ...]
//   __t_api(3, json)  the run's script libraries: {"lib/x": "x@5", "lib/gone": null, ...}
//                     (the host evaluated each "x@5" definition before: __t_K.defs[key])
// JS → host: no Python callable is involved (none may be called while the binding's
// time limit is set, and a call costs more than this). A rejected promise that nobody
// handles reaches the host's rejection tracker, which calls __t_K.rej(p, reason,
// handled); when the reason is the private SIG object the return value is a signal
// code: 1 = stop this run now (output truncated), 2 + n = load part n now.
//
// Error stacks are cut at the first prelude frame ("(prelude:" or a __t_ name).

//@part core
(function (G, LIMIT, HOOKS, FETCH, LAZY_CONSOLE) {
  "use strict";
  var P = Promise, now = Date.now, SIG = {}, sig = 0, rejections = null;
  var K = {
    lines: [], calls: [], failure: null, out: 0, truncated: false, waiting: 0, has: [], mods: {},
    LIMIT: LIMIT, now: now, P: P, MapC: Map, stringify: JSON.stringify, parse: JSON.parse,
  };
  // n >= 0: make sure part n is loaded (0 fmt, 1 timers, 2 require, 3 libs, 4 esm, 5 console,
  // 6... module sources);
  // n < 0: stop the run.
  function load(n) {
    if (n < 0) {
      if (HOOKS) {
        sig = 1;
        P.reject(SIG);
        for (;;) {}
      }
      throw new Error("output truncated");
    }
    if (!K.has[n]) {
      sig = 2 + n;
      P.reject(SIG);
      sig = 0;
      if (!K.has[n]) throw new Error("internal error: runtime part " + n + " did not load");
    }
  }
  K.load = load;
  K.rej = function (p, reason, handled) {
    if (reason === SIG) return sig;
    if (handled) {
      if (rejections) rejections.delete(p);
    } else (rejections || (rejections = new K.MapC())).set(p, reason);
    return 0;
  };
  // The console section (between the //@console lines) is the core's when the script's
  // text names `console`; otherwise the host cuts it out, and it becomes part 5 (see
  // Prelude in sandbox.py), and `console` is an accessor until first use: reading it
  // loads the part, assigning it replaces it unread. The section may use K, G, load,
  // LIMIT and now only.
  if (LAZY_CONSOLE) Object.defineProperty(G, "console", {
    get: function () { load(5); return G.console; },
    set: function (v) { Object.defineProperty(G, "console", { value: v, writable: true, enumerable: true, configurable: true }); },
    enumerable: true, configurable: true,
  });
//@console
  // console.<level>(...args): plain strings, numbers and booleans inline; the rest via fmt.
  var NA = /[^\x00-\x7f]/;
  function emit(level, args) {
    var n = args.length, s = "", i = 0;
    for (; i < n; i++) {
      var a = args[i], t = typeof a;
      if (t === "string") {
        if (i === 0 && n > 1 && a.indexOf("%") >= 0) break;
      } else if (t === "number" || t === "boolean" || a == null) a = String(a);
      else break;
      s = i ? s + " " + a : a;
    }
    if (i < n) {
      load(0);
      s = K.format(args);
    }
    if (K.truncated) load(-1);
    var size = s.length + 1;
    if (size > 1 && NA.test(s)) {
      load(0);
      size = K.bytes(s) + 1;
    }
    if (K.out + size > LIMIT) {
      load(0);
      K.truncate(level, s);
    }
    K.out += size;
    var l = K.lines;
    l[l.length] = [now(), level, s];
  }
  K.emit = function (level, s) { emit(level, [s]); };
  function level(name) { return function () { emit(name, arguments); }; }
  function extra(name) { return function () { load(0); return K.extra(name, arguments); }; }
  var c = G.console = {
    log: level("log"), info: level("info"), warn: level("warn"), error: level("error"), debug: level("debug"),
    trace: extra("trace"), assert: extra("assert"), count: extra("count"), time: extra("time"), timeEnd: extra("timeEnd"),
  };
  c.dir = c.log;
//@console
  function timer(kind) { return function () { load(1); return K.timer(kind, arguments); }; }
  G.setTimeout = timer(0);
  G.setInterval = timer(1);
  G.setImmediate = timer(2);
  G.clearTimeout = G.clearInterval = G.clearImmediate = function (id) { if (K.has[1]) K.clear(id); };
  G.require = function require(name) {
    if (K.lib && typeof name === "string" && name.lastIndexOf("lib/", 0) === 0) return K.lib(name);
    load(2);
    return K.require(name);
  };
  // fetch(input, init): the `http` host module's fetch, when that module is installed
  if (FETCH) G.fetch = function fetch(input, init) {
    try {
      load(2);
      return K.require("http").fetch(input, init);
    } catch (e) {
      return P.reject(e);
    }
  };
  Object.defineProperty(G, "__t_K", { value: K });
  // read by the host before the script runs (with the hooks: the core's completion value);
  // the script may overwrite it harmlessly
  return (G.__t_api = function (op, arg) {
    if (op === 1) return K.has[1] ? K.fire() : 0;
    if (op === 2) return K.has[2] ? K.settle(arg) : 0;
    if (op === 3) { K.links = K.parse(arg); return 0; }
    if (rejections && rejections.size && !K.failure) {
      var reason = rejections.values().next().value;
      rejections.clear();
      load(0);
      K.fail(reason, "Unhandled promise rejection: ");
    }
    var at = K.has[1] ? K.peek() : 0;
    var flags = (at ? 1 : 0) | (K.waiting ? 2 : 0) | (K.truncated ? 4 : 0);
    if (!flags && !K.failure && !K.lines.length && !K.calls.length) return 0;
    var out = K.stringify([flags, at, K.lines, K.calls, K.failure]);
    K.lines = [];
    K.calls = [];
    return out;
  });
})(globalThis, @@LIMIT@@, @@HOOKS@@, @@FETCH@@, @@LAZY_CONSOLE@@);

//@part fmt
(function (K) {
  "use strict";
  var stringify = K.stringify, now = K.now, counts = {}, started = {};
  var hasOwn = Object.prototype.hasOwnProperty, slice = Array.prototype.slice;
  function __t_stack(e) {
    var s = e && e.stack;
    if (typeof s !== "string") return "";
    // drop prelude frames at the top (console.trace), keep the script's, stop at the next
    var lines = s.split("\n"), keep = [], i = 0;
    function ours(line) { return line.indexOf("(prelude:") >= 0 || line.indexOf(" at __t_") >= 0; }
    while (i < lines.length && ours(lines[i])) i++;
    for (; i < lines.length && !ours(lines[i]); i++) keep.push(lines[i]);
    return keep.join("\n").replace(/\s+$/, "");
  }
  function __t_describe(e) {
    try {
      if (e instanceof Error || (e && typeof e === "object" && typeof e.stack === "string")) {
        var head = String(e), st = __t_stack(e);
        return st ? head + "\n" + st : head;
      }
      return "Uncaught " + __t_show(e);
    } catch (err) {
      return "Uncaught exception (could not be described)";
    }
  }
  function __t_json(v) {
    try {
      var s = stringify(v);
      if (s !== undefined) return s;
    } catch (e) {
      var seen = [];
      try {
        return stringify(v, function (k, x) {
          if (typeof x === "bigint") return x.toString() + "n";
          if (x && typeof x === "object") {
            if (seen.indexOf(x) >= 0) return "[Circular]";
            seen.push(x);
          }
          return x;
        });
      } catch (e2) {}
    }
    return String(v);
  }
  function __t_show(v) {
    switch (typeof v) {
      case "string": return v;
      case "undefined": return "undefined";
      case "function": return "[Function: " + (v.name || "anonymous") + "]";
      case "bigint": return v.toString() + "n";
      case "symbol": return v.toString();
      case "object":
        if (v === null) return "null";
        if (v instanceof Error) return __t_describe(v);
        if (v instanceof Date) return isNaN(v) ? "Invalid Date" : v.toISOString();
        if (v instanceof RegExp) return String(v);
        return __t_json(v);
    }
    return String(v);
  }
  function __t_format(args) {
    var n = args.length, i = 1, out;
    if (!n) return "";
    var first = args[0];
    if (typeof first === "string" && n > 1 && first.indexOf("%") >= 0) {
      out = first.replace(/%([sdifjoOc%])/g, function (m, c) {
        if (c === "%") return "%";
        if (i >= n) return m;
        var a = args[i++];
        switch (c) {
          case "s": return typeof a === "string" ? a : __t_show(a);
          case "d": case "i":
            if (typeof a === "bigint") return a + "n";
            return String(c === "i" ? parseInt(a) : Number(a));
          case "f": return String(parseFloat(a));
          case "c": return "";
          default: return __t_json(a);
        }
      });
    } else {
      out = __t_show(first);
    }
    for (; i < n; i++) out += " " + __t_show(args[i]);
    return out;
  }
  function __t_cut(s, max) { // the longest prefix of s whose UTF-8 size is <= max
    var b = 0, i = 0, n = s.length;
    for (; i < n; i++) {
      var c = s.charCodeAt(i), w = c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? 4 : 3;
      if (b + w > max) break;
      b += w;
      if (w === 4) i++;
    }
    return s.slice(0, i);
  }
  K.truncate = function __t_truncate(level, text) {
    var l = K.lines, room = K.LIMIT - K.out - 1;
    if (room > 0) l[l.length] = [now(), level, __t_cut(text, room)];
    K.truncated = true;
    l[l.length] = [now(), "error", "\u2026 output truncated at " + K.LIMIT + " bytes"];
    K.load(-1);
  };
  K.bytes = function __t_bytes(s) {
    var n = s.length, b = 0;
    for (var i = 0; i < n; i++) {
      var c = s.charCodeAt(i);
      if (c < 0x80) b += 1;
      else if (c < 0x800) b += 2;
      else if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) { b += 4; i++; }
      else b += 3;
    }
    return b;
  };
  K.fail = function __t_fail(e, prefix) {
    if (K.failure) return;
    var kind = e instanceof InternalError && e.message === "out of memory" ? "memory" : "error";
    K.failure = [kind, (prefix || "") + __t_describe(e)];
  };
  K.format = __t_format;
  K.extra = function __t_extra(name, args) {
    var label = args[0] === undefined ? "default" : String(args[0]);
    switch (name) {
      case "trace":
        var st = __t_stack(new Error());
        K.emit("debug", "Trace" + (args.length ? ": " + __t_format(args) : "") + (st ? "\n" + st : ""));
        return;
      case "assert":
        if (!args[0]) K.emit("error", "Assertion failed" + (args.length > 1 ? ": " + __t_format(slice.call(args, 1)) : ""));
        return;
      case "count":
        counts[label] = (counts[label] || 0) + 1;
        K.emit("log", label + ": " + counts[label]);
        return;
      case "time":
        started[label] = now();
        return;
      case "timeEnd":
        if (hasOwn.call(started, label)) {
          K.emit("log", label + ": " + (now() - started[label]) + "ms");
          delete started[label];
        }
        return;
    }
  };
  K.has[0] = true;
})(__t_K);

//@part timers
(function (K) {
  "use strict";
  var now = K.now, timers = new K.MapC(), heap = [], seq = 0, slice = Array.prototype.slice;
  function __t_less(a, b) { return a.at < b.at || (a.at === b.at && a.id < b.id); }
  function __t_push(t) {
    var i = heap.length;
    heap[i] = t;
    while (i > 0) {
      var p = (i - 1) >> 1;
      if (!__t_less(heap[i], heap[p])) break;
      var x = heap[i]; heap[i] = heap[p]; heap[p] = x; i = p;
    }
  }
  function __t_pop() {
    var top = heap[0], last = heap.pop(), n = heap.length;
    if (n) {
      heap[0] = last;
      var i = 0;
      for (;;) {
        var l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && __t_less(heap[l], heap[m])) m = l;
        if (r < n && __t_less(heap[r], heap[m])) m = r;
        if (m === i) break;
        var x = heap[i]; heap[i] = heap[m]; heap[m] = x; i = m;
      }
    }
    return top;
  }
  function __t_first() { // the earliest live timer, dropping cleared ones
    while (heap.length) {
      var t = heap[0];
      if (timers.get(t.id) === t) return t;
      __t_pop();
    }
    return null;
  }
  K.timer = function __t_timer(kind, args) { // 0 timeout, 1 interval, 2 immediate
    var fn = args[0];
    if (typeof fn !== "function") throw new TypeError('The "callback" argument must be of type function');
    var min = kind === 2 ? 0 : 1, ms = kind === 2 ? 0 : +args[1];
    if (!(ms >= min) || ms > 2147483647) ms = min;
    var t = { id: ++seq, at: now() + ms, fn: fn, args: slice.call(args, kind === 2 ? 1 : 2), every: kind === 1 ? ms : 0 };
    timers.set(t.id, t);
    __t_push(t);
    return t.id;
  };
  K.clear = function __t_clear(id) {
    if (id && typeof id === "object") id = id.id;
    timers.delete(+id);
  };
  K.peek = function __t_peek() {
    var t = __t_first();
    return t ? t.at : 0;
  };
  K.fire = function __t_fire() {
    var t = __t_first(), at = now();
    if (!t || t.at > at) return 0;
    __t_pop();
    if (t.every) { t.at = at + t.every; __t_push(t); }
    else timers.delete(t.id);
    try {
      if (t.args.length) t.fn.apply(undefined, t.args);
      else t.fn();
    } catch (e) {
      K.load(0);
      K.fail(e);
    }
    return 1;
  };
  K.has[1] = true;
})(__t_K);

//@part require
(function (K, G, MODULES) {
  "use strict";
  var P = K.P, stringify = K.stringify, parse = K.parse, waiting = new K.MapC(), seq = 0, cache = {};
  var hasOwn = Object.prototype.hasOwnProperty, slice = Array.prototype.slice, MAX = 1000;
  function __t_hostfn(mod, name) {
    return function () {
      var args;
      try {
        args = stringify(slice.call(arguments));
      } catch (e) {
        return P.reject(new TypeError(mod + "." + name + ": arguments must be JSON values (" + e.message + ")"));
      }
      if (waiting.size >= MAX) return P.reject(new Error("too many host calls in flight"));
      return new P(function (resolve, reject) {
        var id = ++seq, c = K.calls;
        waiting.set(id, [resolve, reject]);
        K.waiting = waiting.size;
        c[c.length] = [id, mod, name, args];
      });
    };
  }
  K.settle = function __t_settle(json) {
    var batch = parse(json);
    for (var i = 0; i < batch.length; i++) {
      var r = batch[i], w = waiting.get(r[0]);
      if (!w) continue;
      waiting.delete(r[0]);
      if (r[1]) w[0](r[2]);
      else w[1](new Error(r[2]));
    }
    K.waiting = waiting.size;
    return 0;
  };
  K.require = function __t_require(name) {
    name = String(name);
    if (name.lastIndexOf("lib/", 0) === 0) {
      K.load(3);
      return K.lib(name);
    }
    if (hasOwn.call(cache, name)) return cache[name].exports;
    if (!hasOwn.call(MODULES, name)) {
      var err = new Error("Cannot find module '" + name + "'");
      err.code = "MODULE_NOT_FOUND";
      throw err;
    }
    var spec = MODULES[name], host = {}; // spec: [function names, part number of its source or -1]
    for (var i = 0; i < spec[0].length; i++) host[spec[0][i]] = __t_hostfn(name, spec[0][i]);
    var module = { exports: spec[1] < 0 ? host : {} };
    cache[name] = module;
    if (spec[1] >= 0) {
      try {
        K.load(spec[1]);
        K.mods[name](module, module.exports, G.require, host);
      } catch (e) {
        delete cache[name];
        throw e;
      }
    }
    return module.exports;
  };
  K.has[2] = true;
})(__t_K, globalThis, @@MODULES@@);

//@part libs
// Script libraries (require('lib/x'), require('lib/x@3')). The host evaluates this part
// before the script when the run has libraries (otherwise it loads on first use, through
// the signal, like the others), after it defined each library version's CommonJS
// wrapper (K.defs, by "name@version"); __t_api(3) set K.links, which maps every
// specifier the code names to one of them, or to null when there is no such library.
(function (K) {
  "use strict";
  var hasOwn = Object.prototype.hasOwnProperty, libs = {};
  function __t_librequire(name) {
    name = String(name);
    if (name.lastIndexOf("lib/", 0) === 0) return __t_lib(name);
    K.load(2);
    return K.require(name);
  }
  function __t_esm() {
    K.load(4);
    return K.esm;
  }
  function __t_lib(spec) {
    var links = K.links, key = links && hasOwn.call(links, spec) ? links[spec] : undefined;
    if (!key) {
      var err = new Error(key === null ? "Cannot find library '" + spec + "'" : "Cannot find library '" + spec +
        "': only libraries named in the code as string literals (require('lib/name'), import ... from 'lib/name') are loaded for a run");
      err.code = "MODULE_NOT_FOUND";
      throw err;
    }
    if (hasOwn.call(libs, key)) return libs[key].exports;
    var define = K.defs && K.defs[key];
    if (typeof define !== "function") throw new Error("internal error: library " + key + " was not loaded");
    var module = { id: "lib/" + key, exports: {}, loaded: false };
    libs[key] = module;
    try {
      define.call(module.exports, module.exports, __t_librequire, module, __t_esm);
    } catch (e) {
      delete libs[key];
      throw e;
    }
    module.loaded = true;
    return module.exports;
  }
  K.lib = __t_lib;
  K.has[3] = true; // this part's number (PARTS in sandbox.py)
})(__t_K);

//@part esm
// Helpers of libraries rewritten from ES module syntax (runtime/jsmodules.py): a library
// gets them from its __t_esm() parameter. Evaluated before the script by the host when
// the run has such a library.
(function (K) {
  "use strict";
  var hasOwn = Object.prototype.hasOwnProperty, define = Object.defineProperty;
  function __t_getter(m, name) {
    if (name === null) return function () { return m; };
    if (name === "default") return function () { return m && m.__esModule ? m["default"] : m; };
    return function () { return m[name]; };
  }
  K.esm = {
    mark: function __t_mark(e) { define(e, "__esModule", { value: true }); },
    live: function __t_live(e, getters) {
      for (var k in getters) if (hasOwn.call(getters, k)) define(e, k, { enumerable: true, get: getters[k] });
    },
    from: function __t_from(e, m, names) {
      for (var k in names) if (hasOwn.call(names, k)) define(e, k, { enumerable: true, get: __t_getter(m, names[k]) });
    },
    star: function __t_star(e, m) {
      for (var k in m) if (hasOwn.call(m, k) && k !== "default" && !hasOwn.call(e, k)) define(e, k, { enumerable: true, get: __t_getter(m, k) });
    },
  };
  K.has[4] = true; // this part's number (PARTS in sandbox.py)
})(__t_K);
