"""Static analysis of JavaScript modules for script libraries (pure Python, no I/O).

Libraries are loaded *before* a run (``require`` is synchronous and the sandbox has
no file system), so the service must know which ones a program needs without
running it. :func:`prepare` tokenises a job script or a library source once and

* lists every module it names with a string literal: ``require('x')``,
  ``import … from 'x'``, ``import 'x'``, ``export … from 'x'``;
* rewrites ES module syntax into CommonJS, because the runtime evaluates job scripts
  as global scripts and libraries as CommonJS function bodies (the ``quickjs``
  binding offers ``Context.module`` but no module loader hook):

  - ``import`` declarations become ``const`` bindings of ``require(...)``; all of a
    program's imports run where its first import stood (imports are hoisted).
    Named imports are copied when the import runs, like ``const {a} = require(…)``
    (not live bindings); ``import * as ns`` gives the exports object itself, which
    is live. A default import of a CommonJS module is its ``module.exports``.
  - In libraries only, ``export`` declarations become live getters on ``exports``
    (defined before the body runs, so a cycle sees them; reading one before its
    declaration ran throws, as in ES modules), ``export default`` sets
    ``exports.default``, and the library is marked ``__esModule`` (and is strict).

Line numbers are kept (rewritten statements keep their line breaks), so errors and
stack traces point at the line the user wrote. Dynamic ``import()`` is not
rewritten; ``require`` with a computed argument cannot be resolved before the run.

The tokenizer knows comments, strings, template literals (with nested ``${}``)
and regular expression literals (told from division by the previous token, as
parsers do). Code it cannot make sense of is left as it is: QuickJS reports the
syntax error when the code runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterator

ID_START = re.compile(r"[A-Za-z_$\u0080-\uffff]")
IDENT = re.compile(r"[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*")
NUMBER = re.compile(r"(?:0[xXoObB][0-9a-fA-F_]+n?|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?n?)")
SPACE = re.compile(r"[ \t\f\v\u00a0\ufeff\u1680\u2000-\u200a\u202f\u205f\u3000]+")
NEWLINES = "\n\r\u2028\u2029"
PUNCT = [
    ">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=",
    "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=",
    "&=", "|=", "^=", "<<", ">>", "**",
]  # fmt: skip
#: After these keywords a ``/`` starts a regular expression.
_CONDITIONS = frozenset(("if", "while", "for", "with"))
REGEX_AFTER_WORDS = frozenset(
    "return typeof instanceof in of new delete void throw case do else yield await".split()
)


@dataclass(slots=True)
class Token:
    #: id | str | num | regex | punct | tpl (a template without ``${}``) | tpl_head (`` `…${ ``),
    #: tpl_mid (``}…${``) | tpl_tail (``}…` ``)
    kind: str
    start: int
    end: int
    value: str  # identifier name, decoded string, template text (tpl only) or punctuator
    nl: bool  # a line break comes before it
    simple: bool = True  # False for the parts of a template with substitutions


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.n = len(src)

    def tokens(self) -> Iterator[Token]:
        src, n = self.src, self.n
        i = 0
        nl = False
        braces: list[str] = []  # "{" or "`" (a template's ${ … })
        parens: list[bool] = []  # per open "(": whether it follows if/while/for/with
        cond = False  # the last ")" closed such a condition: a "/" after it starts a regex
        prev: Token | None = None
        while i < n:
            c = src[i]
            if c in NEWLINES:
                nl = True
                i += 1
                continue
            if c in " \t" or c in "\f\v\u00a0\ufeff" or (c > "\u1600" and SPACE.match(c)):
                m = SPACE.match(src, i)
                i = m.end() if m else i + 1
                continue
            if c == "/" and i + 1 < n and src[i + 1] == "/":
                j = i + 2
                while j < n and src[j] not in NEWLINES:
                    j += 1
                i = j
                continue
            if c == "/" and i + 1 < n and src[i + 1] == "*":
                j = src.find("*/", i + 2)
                j = n if j < 0 else j + 2
                if any(ch in src[i:j] for ch in NEWLINES):
                    nl = True
                i = j
                continue
            start = i
            if c == "'" or c == '"':
                j, value = self._string(i, c)
                tok = Token("str", start, j, value, nl)
            elif c == "`":
                j, text, closed = self._template(i + 1)
                if closed:
                    tok = Token("tpl", start, j, text, nl)
                else:
                    braces.append("`")
                    tok = Token("tpl_head", start, j, "", nl, False)
            elif c == "}" and braces and braces[-1] == "`":
                braces.pop()
                j, text, closed = self._template(i + 1)
                if closed:
                    tok = Token("tpl_tail", start, j, "", nl, False)
                else:
                    braces.append("`")
                    tok = Token("tpl_mid", start, j, "", nl, False)
            elif ID_START.match(c) or c == "\\":
                m = IDENT.match(src, i)
                j = m.end() if m else i + 1
                tok = Token("id", start, j, src[i:j], nl)
            elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
                m = NUMBER.match(src, i)
                j = m.end() if m and m.end() > i else i + 1
                tok = Token("num", start, j, src[i:j], nl)
            elif c == "/" and (self._regex_allowed(prev) or (cond and prev is not None and prev.value == ")")):
                j = self._regex(i + 1)
                tok = Token("regex", start, j, src[i:j], nl)
            else:
                for p in PUNCT:
                    if src.startswith(p, i):
                        j = i + len(p)
                        break
                else:
                    j = i + 1
                tok = Token("punct", start, j, src[i:j], nl)
                if c == "(":
                    parens.append(prev is not None and prev.kind == "id" and prev.value in _CONDITIONS)
                elif c == ")":
                    cond = parens.pop() if parens else False
                if c == "{":
                    braces.append("{")
                elif c == "}" and braces:
                    braces.pop()
            nl = False
            prev = tok
            i = j
            yield tok

    @staticmethod
    def _regex_allowed(prev: Token | None) -> bool:
        if prev is None or prev.kind in ("tpl_head", "tpl_mid"):
            return True
        if prev.kind == "punct":
            return prev.value not in (")", "]", "}", "++", "--")
        if prev.kind == "id":
            return prev.value in REGEX_AFTER_WORDS
        return False

    def _string(self, i: int, quote: str) -> tuple[int, str]:
        src, n = self.src, self.n
        j = i + 1
        escaped = False
        while j < n:
            ch = src[j]
            if ch == "\\":
                escaped = True
                j += 2
                continue
            if ch == quote:
                j += 1
                break
            if ch in "\n\r":  # unterminated: stop at the line end
                break
            j += 1
        raw = src[i + 1 : j - 1] if j <= n and src[j - 1 : j] == quote else src[i + 1 : j]
        return min(j, n), _decode(raw) if escaped else raw

    def _template(self, j: int) -> tuple[int, str, bool]:
        """Scan template text from ``j`` to its closing backtick or to a ``${``."""
        src, n = self.src, self.n
        start = j
        while j < n:
            ch = src[j]
            if ch == "\\":
                j += 2
                continue
            if ch == "`":
                return j + 1, src[start:j], True
            if ch == "$" and j + 1 < n and src[j + 1] == "{":
                return j + 2, "", False
            j += 1
        return n, src[start:n], True

    def _regex(self, j: int) -> int:
        src, n = self.src, self.n
        in_class = False
        while j < n:
            ch = src[j]
            if ch == "\\":
                j += 2
                continue
            if ch in NEWLINES:
                return j  # not a regex after all; leave the rest to QuickJS
            if in_class:
                if ch == "]":
                    in_class = False
            elif ch == "[":
                in_class = True
            elif ch == "/":
                j += 1
                while j < n and (src[j].isalnum() or src[j] in "_$"):
                    j += 1
                return j
            j += 1
        return n


_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r\n|[\s\S])")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _decode(raw: str) -> str:
    """The value of a JS string literal's body."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "u" and len(e) > 1:
            return chr(int(e[2:-1] if e[1] == "{" else e[1:], 16))
        if e[0] == "x" and len(e) > 1:
            return chr(int(e[1:], 16))
        if e in ("\r\n", "\n", "\r", "\u2028", "\u2029"):
            return ""  # line continuation
        return _SIMPLE_ESCAPES.get(e, e)

    try:
        return _ESCAPE.sub(one, raw)
    except (ValueError, OverflowError):
        return raw


def tokenize(source: str) -> list[Token]:
    return list(_Lexer(source).tokens())


# --------------------------------------------------------------------------- analysis


class _Unsupported(Exception):
    """A declaration this rewriter does not handle: left for QuickJS to report."""


@dataclass(slots=True)
class _Edit:
    start: int
    end: int
    text: str  # replacement, line breaks of the replaced range are appended
    hoist: str = ""  # code moved to the first import's place


@dataclass(frozen=True, slots=True)
class Prepared:
    """A program ready to run: its code (rewritten when it used ES module syntax) and
    the modules it names statically, in order of first mention."""

    code: str
    specifiers: tuple[str, ...]
    esm: bool


def _string_value(tok: Token | None) -> str | None:
    if tok is None:
        return None
    if tok.kind == "str" or (tok.kind == "tpl" and tok.simple):
        return tok.value
    return None


def prepare(source: str, *, library: bool = False) -> Prepared:
    """Scan ``source`` and rewrite its ES module syntax (see the module docstring).

    ``library``: the code is a library body (``export`` allowed, strict, ``exports``
    and ``__t_esm`` in scope); otherwise a job script (``import`` only)."""
    if "require" not in source and "import" not in source and "export" not in source:
        return Prepared(source, (), False)
    toks = tokenize(source)
    specs: dict[str, None] = {}
    edits: list[_Edit] = []
    getters: list[tuple[str, str]] = []  # (exported name, JS expression of the getter body)
    n = len(toks)
    temp = [0]
    i = 0
    depth = 0  # brace/paren/bracket depth: declarations live at depth 0
    while i < n:
        tok = toks[i]
        kind, value = tok.kind, tok.value
        if kind == "punct" or kind == "tpl_head" or kind == "tpl_tail":
            depth = max(0, depth + _DEPTH.get(value if kind == "punct" else kind, 0))
            i += 1
            continue
        if kind != "id":
            i += 1
            continue
        before = toks[i - 1] if i else None
        member = before is not None and before.kind == "punct" and before.value in (".", "?.")
        nxt = toks[i + 1] if i + 1 < n else None
        if value == "require" and not member and nxt is not None and nxt.value == "(":
            spec = _string_value(toks[i + 2] if i + 2 < n else None)
            after = toks[i + 3] if i + 3 < n else None
            if spec is not None and after is not None and after.value in (")", ","):
                specs.setdefault(spec, None)
            i += 1
            continue
        statement_start = before is None or tok.nl or before.value in (";", "}", "{")
        if value == "import" and not member and depth == 0 and statement_start and nxt is not None:
            if nxt.value in ("(", "."):  # dynamic import() / import.meta: left alone
                i += 1
                continue
            try:
                end, spec, edit = _import(source, toks, i, temp)
            except _Unsupported:
                i += 1
                continue
            specs.setdefault(spec, None)
            edits.append(edit)
            i = end
            continue
        if value == "export" and library and not member and depth == 0 and statement_start and nxt is not None:
            try:
                end, spec, edit, names = _export(source, toks, i, temp)
            except _Unsupported:
                i += 1
                continue
            if spec is not None:
                specs.setdefault(spec, None)
            edits.append(edit)
            getters.extend(names)
            i = end
            continue
        i += 1
    if not edits:
        return Prepared(source, tuple(specs), False)
    return Prepared(_apply(source, edits, getters, library), tuple(specs), True)


#: How a token changes the bracket depth.
_DEPTH = {"{": 1, "(": 1, "[": 1, "tpl_head": 1, "}": -1, ")": -1, "]": -1, "tpl_tail": -1}


def _expect(toks: list[Token], i: int, value: str) -> int:
    if i >= len(toks) or toks[i].value != value or toks[i].kind not in ("id", "punct"):
        raise _Unsupported
    return i + 1


def _name(toks: list[Token], i: int) -> tuple[int, str]:
    if i >= len(toks) or toks[i].kind != "id":
        raise _Unsupported
    return i + 1, toks[i].value


def _module_name(toks: list[Token], i: int) -> tuple[int, str]:
    spec = _string_value(toks[i] if i < len(toks) else None)
    if spec is None:
        raise _Unsupported
    return i + 1, spec


def _end_of_statement(toks: list[Token], i: int) -> tuple[int, int]:
    """Skip an optional ``with {…}`` attributes clause and ``;``: (next index, end offset)."""
    end = toks[i - 1].end
    if i < len(toks) and toks[i].value in ("with", "assert") and not toks[i].nl and i + 1 < len(toks) \
            and toks[i + 1].value == "{":
        j = i + 1
        while j < len(toks) and toks[j].value != "}":
            j += 1
        i = j + 1
        end = toks[j].end if j < len(toks) else end
    if i < len(toks) and toks[i].value == ";":
        end = toks[i].end
        i += 1
    return i, end


def _specifiers(toks: list[Token], i: int, *, export: bool = False) -> tuple[int, list[tuple[str, str]]]:
    """``{ a, b as c, 'x' as d }`` → (next index, [(imported, local)])."""
    i = _expect(toks, i, "{")
    pairs = []
    while i < len(toks) and toks[i].value != "}":
        tok = toks[i]
        if tok.kind == "id":
            first = tok.value
        elif tok.kind == "str":
            first = tok.value
        else:
            raise _Unsupported
        i += 1
        second = first
        if i < len(toks) and toks[i].kind == "id" and toks[i].value == "as":
            tok2 = toks[i + 1] if i + 1 < len(toks) else None
            if tok2 is None or tok2.kind not in ("id", "str") or (tok2.kind == "str" and not export):
                raise _Unsupported
            second = tok2.value
            i += 2
        elif tok.kind == "str":
            raise _Unsupported
        pairs.append((first, second))
        if i < len(toks) and toks[i].value == ",":
            i += 1
        elif i < len(toks) and toks[i].value != "}":
            raise _Unsupported
    return _expect(toks, i, "}"), pairs


def _default_of(ref: str) -> str:
    return f"({ref} && {ref}.__esModule ? {ref}.default : {ref})"


def _import(source: str, toks: list[Token], i: int, temp: list[int]) -> tuple[int, str, _Edit]:
    start = toks[i].start
    j = i + 1
    tok = toks[j]
    if _string_value(tok) is not None:  # import 'x'
        j, spec = _module_name(toks, j)
        j, end = _end_of_statement(toks, j)
        return j, spec, _Edit(start, end, "", f"require({json.dumps(spec)});")
    default = namespace = None
    named: list[tuple[str, str]] = []
    if tok.kind == "id":
        j, default = _name(toks, j)
        if j < len(toks) and toks[j].value == ",":
            j += 1
    if j >= len(toks):
        raise _Unsupported
    if toks[j].value == "*":
        j = _expect(toks, j + 1, "as")
        j, namespace = _name(toks, j)
    elif toks[j].value == "{":
        j, named = _specifiers(toks, j)
    if default is None and namespace is None and toks[j - 1].value != "}":
        raise _Unsupported
    j = _expect(toks, j, "from")
    j, spec = _module_name(toks, j)
    j, end = _end_of_statement(toks, j)
    ref = f"__t_i{temp[0]}"
    temp[0] += 1
    parts = [f"{ref} = require({json.dumps(spec)})"]
    if default is not None:
        parts.append(f"{default} = {_default_of(ref)}")
    if namespace is not None:
        parts.append(f"{namespace} = {ref}")
    for imported, local in named:
        if imported == "default":
            parts.append(f"{local} = {_default_of(ref)}")
        else:
            parts.append(f"{local} = {ref}[{json.dumps(imported)}]")
    return j, spec, _Edit(start, end, "", "const " + ", ".join(parts) + ";")


_DECLARATORS = frozenset(("const", "let", "var"))
_STATEMENT_WORDS = frozenset(
    "export import const let var function class if for while do switch try return throw break continue".split()
)


def _declared_names(toks: list[Token], j: int) -> tuple[int, list[str]]:
    """Names bound by ``const a = …, b = …`` (identifiers only) starting after the keyword."""
    names = []
    while True:
        tok = toks[j] if j < len(toks) else None
        if tok is None or tok.kind != "id":
            raise _Unsupported  # destructuring patterns are not rewritten
        names.append(tok.value)
        j += 1
        depth = 0
        while j < len(toks):
            t = toks[j]
            if t.kind == "punct" and depth == 0 and t.value in (",", ";"):
                break
            if t.kind in ("punct", "tpl_head", "tpl_tail"):
                depth += _DEPTH.get(t.value if t.kind == "punct" else t.kind, 0)
            if depth == 0 and t.nl and t.kind == "id" and t.value in _STATEMENT_WORDS:
                return j, names
            j += 1
        if j < len(toks) and toks[j].value == ",":
            j += 1
            continue
        return j, names


def _export(
    source: str, toks: list[Token], i: int, temp: list[int]
) -> tuple[int, str | None, _Edit, list[tuple[str, str]]]:
    start = toks[i].start
    j = i + 1
    tok = toks[j]
    value = tok.value
    if value == "default":
        nxt = toks[j + 1] if j + 1 < len(toks) else None
        if nxt is None:
            raise _Unsupported
        name_tok = None
        if nxt.value == "function" or (nxt.value == "async" and j + 2 < len(toks) and toks[j + 2].value == "function"):
            k = j + 2 if nxt.value == "function" else j + 3
            if k < len(toks) and toks[k].value == "*":
                k += 1
            name_tok = toks[k] if k < len(toks) and toks[k].kind == "id" else None
        elif nxt.value == "class":
            name_tok = toks[j + 2] if j + 2 < len(toks) and toks[j + 2].kind == "id" and toks[j + 2].value != "extends" else None
        if name_tok is not None:  # a named declaration: keep it, export it live
            return j + 1, None, _Edit(start, nxt.start, ""), [("default", name_tok.value)]
        # an expression (or an anonymous function/class): exports.default = <expression>
        return j + 1, None, _Edit(start, nxt.start, "exports.default = "), []
    if value in _DECLARATORS:
        end, names = _declared_names(toks, j + 1)
        return j, None, _Edit(start, tok.start, ""), [(n, n) for n in names]
    if value in ("function", "class") or (value == "async" and toks[j + 1].value == "function"):
        k = j + 1 if value != "async" else j + 2
        if value != "class" and k < len(toks) and toks[k].value == "*":
            k += 1
        k, name = _name(toks, k)
        return j, None, _Edit(start, tok.start, ""), [(name, name)]
    if value == "*":
        j += 1
        alias = None
        if toks[j].value == "as":
            tok2 = toks[j + 1]
            if tok2.kind not in ("id", "str"):
                raise _Unsupported
            alias = tok2.value
            j += 2
        j = _expect(toks, j, "from")
        j, spec = _module_name(toks, j)
        j, end = _end_of_statement(toks, j)
        call = f"require({json.dumps(spec)})"
        text = f"__t_e.star(exports, {call});" if alias is None else \
            f"__t_e.from(exports, {call}, {{{json.dumps(alias)}: null}});"
        return j, spec, _Edit(start, end, text), []
    if value == "{":
        j, pairs = _specifiers(toks, j, export=True)
        if (
            j + 1 < len(toks)
            and toks[j].kind == "id"
            and toks[j].value == "from"
            and _string_value(toks[j + 1]) is not None
        ):
            j, spec = _module_name(toks, j + 1)
            j, end = _end_of_statement(toks, j)
            mapping = ", ".join(f"{json.dumps(exported)}: {json.dumps(local)}" for local, exported in pairs)
            return j, spec, _Edit(start, end, f"__t_e.from(exports, require({json.dumps(spec)}), {{{mapping}}});"), []
        j, end = _end_of_statement(toks, j)
        return j, None, _Edit(start, end, ""), [(exported, local) for local, exported in pairs]
    raise _Unsupported


def _lines(text: str) -> str:
    """The line breaks of ``text`` (what a rewritten range keeps)."""
    return "".join(ch for ch in text if ch in "\n\u2028\u2029" or ch == "\r")


def _apply(source: str, edits: list[_Edit], getters: list[tuple[str, str]], library: bool) -> str:
    out = []
    pos = 0
    hoisted = "".join(e.hoist for e in edits if e.hoist)
    first_import = next((e for e in edits if e.hoist), None)
    for edit in edits:
        out.append(source[pos : edit.start])
        if edit is first_import:
            out.append(hoisted)
        out.append(edit.text)
        out.append(_lines(source[edit.start : edit.end]))
        pos = edit.end
    out.append(source[pos:])
    code = "".join(out)
    if library:
        header = [ESM_HEADER, "__t_e.mark(exports);"]
        if getters:
            body = ", ".join(f"{json.dumps(name)}: () => {local}" for name, local in getters)
            header.append(f"__t_e.live(exports, {{{body}}});")
        code = "".join(header) + code
    return code


# --------------------------------------------------------------------------- libraries in a run

#: How a library rewritten from ES module syntax starts: strict, and with the helpers
#: (``mark``, ``live``, ``from``, ``star``: the prelude's ``esm`` part) that its
#: ``__t_esm()`` parameter returns. The worker looks for it to load that part up front.
ESM_HEADER = '"use strict";const __t_e = __t_esm();'


def library_key(name: str, version: int) -> str:
    return f"{name}@{int(version)}"


def define_script(name: str, version: int, code: str) -> str:
    """The global script that defines (does not run) one library version in a run's
    context: its body becomes a CommonJS wrapper function registered under
    ``name@version``. Everything added stays on the first line, so line numbers in
    stack traces are the library's own."""
    key = json.dumps(library_key(name, version))
    if "\0" in code:  # the binding takes C strings; same meaning inside literals
        code = code.replace("\0", "\\u0000")
    return (
        f"(__t_K.defs || (__t_K.defs = {{}}))[{key}] = function (exports, require, module, __t_esm) {{"
        f"{code}\n}};"
    )


def thrower(error: str) -> str:
    """A library body that throws ``error`` (a SyntaxError found before the run)."""
    return f"throw new SyntaxError({json.dumps(error)});"


_LOCATION = re.compile(r"at [^\n]*?:(\d+):(\d+)")


def syntax_error(code: str, *, library: bool = True) -> tuple[str, int, int] | None:
    """QuickJS's syntax error for ``code`` as ``(message, line, column)``, or ``None``.

    Only parses (the code is compiled inside a function that is never called), in
    this process, under a memory and a stack cap."""
    import quickjs

    ctx = quickjs.Context()
    ctx.set_memory_limit(256 << 20)
    ctx.set_max_stack_size(1 << 20)
    prefix = "(function (exports, require, module, __t_esm) {" if library else "(function () {"
    try:
        ctx.eval(prefix + code.replace("\0", "\\u0000") + "\n})")
    except quickjs.StackOverflow:
        return ("the code is nested too deeply to parse", 1, 1)
    except quickjs.JSException as exc:
        text = str(exc)
        head = text.partition("\n")[0]
        if not head.startswith("SyntaxError"):
            return (head or "the code could not be compiled", 1, 1)
        match = _LOCATION.search(text)
        line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
        if line == 1:
            column = max(1, column - len(prefix))
        return (head.removeprefix("SyntaxError: "), line, column)
    return None
