"""BFCL's Java and JavaScript call text -> decoded calls, as BFCL's tree-sitter parsers read it.

`parse_calls` is the decoding step of the Java / JavaScript categories (the type reading is
java_js.py): a recursive-descent parser over BFCL's call format, with BFCL's results, quirks
included (see java_js.py's docstring for the list), and no tree-sitter, never eval. Text that
BFCL cannot decode raises DecodeError; where tree-sitter repairs broken text (a missing bracket
inserted, a stray word skipped), or the text holds statements other than expressions, `return`
and labels, or a comment inside a Java value, this raises DecodeError though BFCL may decode
something: the one way the two differ (tests/test_bfcl_java_js.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from imaginarium.evaluation.bfcl.java_js import DecodeError, Language

_DIGITS, _INT = r"\d(?:_?\d)*", r"(?:0|[1-9](?:_?\d)*)"  # tree-sitter's literals: single `_`s between digits
_EXP, _HEX, _BIN = rf"[eE][+-]?{_DIGITS}", r"0[xX][\da-fA-F](?:_?[\da-fA-F])*", r"0[bB][01](?:_?[01])*"
_ESCAPE = r"\\(?:[^xu]|x[\da-fA-F]{2}|u[\da-fA-F]{4}|u\{[\da-fA-F]+\})"
_TOKENS = {  # per language (True: Java), in the order tried; spaces and comments are skipped
    True: {"num": rf"{_HEX}(?:[lL]|(?:\.[\da-fA-F]*)?[pP][+-]?\d+[fFdD]?)?|{_BIN}[lL]?"
                  rf"|(?:{_DIGITS}\.(?:{_DIGITS})?|\.{_DIGITS})(?:{_EXP})?[fFdD]?|{_INT}{_EXP}[fFdD]?|{_INT}[fFdD]"
                  rf"|0[oO]?[0-7](?:_?[0-7])*[lL]?|{_INT}[lL]?",
           "str": rf'"""[\s\S]*?"""|"(?:[^"\\]|{_ESCAPE})*"', "chr": r"'(?:[^'\\\n]|\\.)+'",
           "op": r">>>=|<<=|>>=|>>>|\.\.\.|->|::|\+\+|--|&&|\|\||[=!<>+\-*/%&|^]=|<<|>>|[(){}\[\];,.@=<>!~?:+\-*/&|^%]"},
    False: {"num": rf"(?:{_HEX}|{_BIN}|0[oO][0-7](?:_?[0-7])*)n?|(?:(?:0|0?[1-9](?:_?\d)*)\.(?:{_DIGITS})?|\.{_DIGITS})(?:{_EXP})?"
                   rf"|(?:0|0?[1-9](?:_?\d)*){_EXP}|{_DIGITS}n?",
            "str": rf'"(?:[^"\\\n]|{_ESCAPE})*"|' + rf"'(?:[^'\\\n]|{_ESCAPE})*'",
            "tpl": rf"`(?:[^`\\$]|{_ESCAPE}|\$(?!\{{)|\$\{{[^{{}}`]*\}})*`",
            "op": r">>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|&&=|\|\|=|\?\?=|=>|\?\.(?!\d)|\?\?|\*\*|\+\+|--|&&|\|\||[=!<>+\-*/%&|^]=|<<|>>"
                  r"|[(){}\[\];,.=<>!~?:+\-*/&|^%]"},
}
_LEXERS = {java: re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in {
    "space": r"\s+|//[^\n]*|/\*.*?\*/", "num": tokens["num"], "str": tokens["str"], "chr": tokens.get("chr", "(?!)"),
    "tpl": tokens.get("tpl", "(?!)"), "id": r"(?:[^\W\d]|\$)[\w$]*", "op": tokens["op"]}.items()), re.DOTALL)
    for java, tokens in _TOKENS.items()}
_ASSIGN = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=", ">>>=", "**=", "&&=", "||=", "??="}
_BINARY = {"||", "&&", "|", "^", "&", "==", "!=", "===", "!==", "<", ">", "<=", ">=", "<<", ">>", ">>>", "+", "-", "*", "/", "%",
           "**", "??"}
_PRIMITIVE = {"int", "long", "short", "byte", "char", "boolean", "float", "double", "void"}
# tree-sitter reads any other word as a name where a name fits (`foo(a=if)` decodes); these start something else
_NOT_NAMES = {True: {"new", "super", "switch", "this", "true", "false", "null", *_PRIMITIVE},
              False: {"class", "delete", "function", "import", "new", "typeof", "void", "await", "this", "super", "true", "false", "null",
                      "undefined"}}
# words that begin a statement other than an expression there (not read here: a DecodeError)
_STATEMENT_WORDS = {True: {"abstract", "assert", "break", "class", "continue", "default", "do", "enum", "final", "for", "if", "import",
                           "interface", "native", "package", "private", "protected", "public", "static", "strictfp", "switch",
                           "synchronized", "throw", "transient", "try", "volatile", "while"},
                    False: {"break", "class", "const", "continue", "debugger", "do", "for", "function", "if", "switch", "throw", "try",
                            "var", "while", "with"}}
_BRACKETS = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


class _Token(NamedTuple):
    kind: str  # num, str, chr (Java), tpl (JS template), id (any word), op, eof
    start: int
    end: int
    newline: bool  # a line break before it (JS's automatic semicolons)


@dataclass
class _Node:
    """A token (kind as its token's; kw for this, true, null ...) or a construct BFCL treats apart."""

    kind: str  # ... or call, assign, member, index, paren, class (Java class literal), new[], new(), group
    start: int
    end: int
    parts: list[_Node] = field(default_factory=list)  # all below, in source order: Java's text, the search for the call
    args: list[_Node] = field(default_factory=list)  # call, new(): the arguments
    head: _Node | None = None  # call: the object (Java) or the callee (JS); assign: the target; new: the type
    tail: _Node | None = None  # call: the method's name (Java); assign: the value; new[]: the initializer
    op: str = ""  # assign: the operator; call: "?." for JS's optional call


class _Parser:
    """Recursive descent over the statements and expressions of BFCL's call format: calls with
    `name=value` arguments, literals, arrays, maps, objects, lambdas, casts, operators. What it does
    not know raises DecodeError (a statement other than an expression, `return` or a label, too)."""

    def __init__(self, src: str, java: bool) -> None:
        self.src, self.java, self.at, self.tokens = src, java, 0, []
        self.comments: list[tuple[int, int]] = []  # tree-sitter keeps them as nodes, and BFCL counts nodes
        position, newline = 0, False
        while position < len(src):
            if not (found := _LEXERS[java].match(src, position)):
                raise DecodeError(f"unexpected {src[position]!r} at offset {position}")
            if found.lastgroup == "space":
                newline = newline or "\n" in found.group()
                self.comments += [(position, found.end())] if found.group().startswith("/") else []
            else:
                self.tokens.append(_Token(found.lastgroup or "", position, found.end(), newline))
                newline = False
            position = found.end()
        self.tokens.append(_Token("eof", len(src), len(src), newline))
        self.split: list[tuple[int, _Token]] = []  # `>>` tokens split in two by a type, to undo when a cast is not one
        self.closes: dict[int, int] = {}  # token index of a bracket -> that of the bracket closing it (of any kind)
        opened: list[int] = []
        for index, token in enumerate(self.tokens):
            step = _BRACKETS.get(src[token.start:token.end], 0) if token.kind == "op" else 0
            if step > 0:
                opened.append(index)
            elif step < 0 and opened:
                self.closes[opened.pop()] = index

    # -- tokens
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def text(self, ahead: int = 0) -> str:
        return self.src[self.peek(ahead).start:self.peek(ahead).end]

    def is_(self, *texts: str, ahead: int = 0) -> bool:
        return self.peek(ahead).kind in ("op", "id") and self.text(ahead) in texts

    def is_name(self, ahead: int = 0) -> bool:
        return self.peek(ahead).kind == "id" and self.text(ahead) not in _NOT_NAMES[self.java]

    def fail(self) -> DecodeError:
        return DecodeError(f"unexpected {self.text() or 'end of text'!r} at offset {self.peek().start}")

    def take(self) -> _Node:
        if self.peek().kind == "eof":
            raise self.fail()
        self.at += 1
        return _Node(self.peek(-1).kind, self.peek(-1).start, self.peek(-1).end)

    def expect(self, *texts: str) -> _Node:
        if not self.is_(*texts):
            raise self.fail()
        return self.take()

    def name(self) -> _Node:
        if not self.is_name():
            raise self.fail()
        return self.take()

    def group(self, parts: list[_Node], kind: str = "group") -> _Node:
        return _Node(kind, parts[0].start, parts[-1].end, parts)

    def closing(self) -> int:
        """How many tokens ahead the bracket here closes (-1: never)."""
        return self.closes[self.at] - self.at if self.at in self.closes else -1

    # -- statements
    def statements(self, top: bool) -> list[_Node]:
        """Statements up to the end, or up to `}` in a block; their `;` kept."""
        found: list[_Node] = []
        while not (self.peek().kind == "eof" if top else self.is_("}")):
            found += self.statement(top)
        return found

    def statement(self, top: bool) -> list[_Node]:
        """`;`, `label: statement` (one node, so not an expression statement), `return ..` or an expression."""
        first = self.peek()
        if self.is_(";"):
            return [self.take()]
        if first.kind == "id" and self.text() in _STATEMENT_WORDS[self.java]:
            raise self.fail()
        if self.is_name() and not self.is_("return", "yield") and self.is_(":", ahead=1):
            return [self.group([self.take(), self.take(), *self.statement(top and not self.java)])]
        node = self.group([self.take(), self.expression()]) if self.is_("return") else self.expression()
        if self.is_(";"):
            return [node, self.take()]
        at_end = self.peek().kind == "eof" or (not top and self.is_("}"))
        if self.java:  # tree-sitter inserts a missing `;` after a call, at the end or before another call,
            span = self.src[first.start:self.peek(-1).end]  # unless dropping the program's first statement costs it less
            small = first == self.tokens[0] and len(span.encode()) + 30 * span.count("\n") <= 10
            if not top or node.kind != "call" or small or not (at_end or (self.is_name() and self.is_("(", ahead=1))):
                raise self.fail()
        elif not (at_end or self.is_("}") or self.automatic_semicolon()):
            raise self.fail()
        return [node]

    def automatic_semicolon(self) -> bool:
        """tree-sitter-javascript's rule: a line break ends a statement unless what follows continues it."""
        rest = self.src[self.peek().start:self.peek().start + 11]
        if not self.peek().newline or rest[0] in ",.:;*%><=[(?^|&/":
            return False
        if rest[0] in "+-!":
            return rest[:2] in ("++", "--") if rest[0] != "!" else rest[:2] != "!="
        return not re.match(r"in(stanceof)?(?![^\W\d_])", rest)

    def block(self) -> _Node:
        return self.group([self.expect("{"), *self.statements(top=False), self.expect("}")])

    # -- expressions, loosest first
    def expression(self) -> _Node:
        parts = [self.assignment()]
        while not self.java and self.is_(","):
            parts += [self.take(), self.assignment()]
        return parts[0] if len(parts) == 1 else self.group(parts)

    def assignment(self) -> _Node:
        if self.is_("(") or self.is_name():  # a lambda: `x -> ..`, `(a, b) -> ..` (JS: `=>`)
            close = self.closing() if self.is_("(") else 0
            if close >= 0 and self.is_("->" if self.java else "=>", ahead=close + 1):
                parts = [*(self.params() if close else [self.take()]), self.take()]
                return self.group([*parts, self.block() if self.is_("{") else self.assignment()])
        return self.assigned(self.conditional())

    def assigned(self, target: _Node) -> _Node:
        """`target = value` when an assignment operator follows (tree-sitter takes one as an operand too: `-a = 1`)."""
        if self.peek().kind != "op" or self.text() not in _ASSIGN:
            return target
        if target.kind not in ("id", "member", "index") and not (target.kind == "paren" and not self.java):
            raise self.fail()
        operator, value = self.take(), self.assignment()
        return _Node("assign", target.start, value.end, [target, operator, value], head=target, tail=value,
                     op=self.src[operator.start:operator.end])

    def params(self) -> list[_Node]:
        """`(a, b)`; Java: `(int a, String... b)` too; JS: defaults, `...rest`, `[a, b]` and `{a, b}` patterns."""
        parts, typed = [self.expect("(")], self.java and not self.is_(",", ")", ahead=1)
        while not self.is_(")"):
            if typed:
                parts += [*([self.take()] if self.is_("final") else []), self.java_type(dims=True)]
                parts += [*([self.take()] if self.is_("...") else []), self.name()]
            elif self.java:
                parts.append(self.name())
            else:
                parts += [self.take()] if self.is_("...") else []
                parts.append(self.array_literal() if self.is_("[") else self.object_literal() if self.is_("{") else self.name())
                parts += [self.take(), self.assignment()] if self.is_("=") else []
            if not self.is_(")"):
                parts.append(self.expect(","))
                if self.java and self.is_(")"):
                    raise self.fail()
        return [*parts, self.take()]

    def conditional(self) -> _Node:
        test = self.binary()
        if not self.is_("?"):
            return test
        return self.group([test, self.take(), self.assignment(), self.expect(":"), self.assignment()])

    def binary(self) -> _Node:
        parts = [self.unary()]  # operators' precedence changes no text BFCL keeps, so the operands stay flat
        while True:
            if self.peek().kind == "op" and self.text() in _BINARY:
                parts += [self.take(), self.assigned(self.unary())]
            elif self.is_("instanceof") or (not self.java and self.is_("in")):
                parts += [self.take(), self.java_type(dims=True) if self.java else self.unary()]
            else:
                return parts[0] if len(parts) == 1 else self.group(parts)

    def unary(self) -> _Node:
        if self.is_("+", "-", "!", "~", "++", "--") or (not self.java and self.is_("typeof", "void", "delete", "await")):
            return self.group([self.take(), self.assigned(self.unary())])
        if self.java and self.is_("(") and (cast := self.cast()):
            return cast
        return self.postfix()

    def cast(self) -> _Node | None:
        """Java's `(Type) value`, told from a parenthesized expression by what follows the `)`."""
        start, splits = self.at, len(self.split)
        try:
            parts = [self.take(), self.java_type(dims=True), self.expect(")")]
            primitive = self.src[parts[1].start:parts[1].parts[0].end] in _PRIMITIVE
            if (primitive or self.peek().kind in ("num", "str", "chr") or self.is_name() or self.is_("(", "!", "~", "this", "new")) \
                    and not self.is_("instanceof"):
                return self.group([*parts, self.assigned(self.unary())])
        except DecodeError:
            pass
        while len(self.split) > splits:
            index, token = self.split.pop()
            self.tokens[index] = token
        self.at = start
        return None

    def java_type(self, dims: bool) -> _Node:
        """`int`, `a.b.C<D, ? extends E<F>>`, with `[]`s when `dims`."""
        primitive = self.text() in _PRIMITIVE
        parts = [self.take() if primitive and self.peek().kind == "id" else self.name()]
        while not primitive:
            if self.is_("<"):
                parts.append(self.take())
                more = not self.text().startswith(">")  # `<>` has no types
                while more:
                    if self.is_("?"):  # a wildcard, bounded or not
                        parts.append(self.take())
                        parts += [self.take(), self.java_type(dims=True)] if self.is_("extends", "super") else []
                    else:
                        parts.append(self.java_type(dims=True))
                    more = not self.text().startswith(">")
                    parts += [self.expect(",")] if more else []
                token = self.peek()  # `>>` closes two lists: take its first `>` only
                self.split.append((self.at, token))
                self.tokens[self.at] = token._replace(start=token.start + 1)
                self.at += token.end == token.start + 1
                parts.append(_Node("op", token.start, token.start + 1))
            if not (self.is_(".") and self.is_name(ahead=1)):
                break
            parts += [self.take(), self.take()]
        while dims and self.is_("[") and self.is_("]", ahead=1):
            parts += [self.take(), self.take()]
        return self.group(parts)

    def postfix(self) -> _Node:
        node = self.primary()
        while True:
            if self.java and self.is_(".") and self.is_("class", ahead=1):
                node = self.group([node, self.take(), self.take()], "class")
            elif self.is_("?.") and self.is_("(", "[", ahead=1):  # JS's optional call or index
                dot = self.take()
                node = self.call(node, "?.") if self.is_("(") else self.group([node, dot, *self.index()], "index")
            elif self.is_(".", "?."):
                dot = self.take()
                if self.peek().kind != "id" or (self.java and self.is_("new", "super", "this")):
                    raise self.fail()
                name = self.take()
                node = self.call(node, name=name) if self.java and self.is_("(") else self.group([node, dot, name], "member")
            elif self.is_("(") and (not self.java or node.kind == "id"):
                node = self.call(None, name=node) if self.java else self.call(node)
            elif self.is_("["):
                node = self.group([node, *self.index()], "index")
            elif self.java and self.is_("::"):
                node = self.group([node, self.take(), self.take() if self.is_("new") else self.name()])
            elif self.is_("++", "--") and (self.java or not self.peek().newline):
                node = self.group([node, self.take()])
            else:
                return node

    def index(self) -> list[_Node]:
        return [self.take(), self.expression(), self.expect("]")]

    def call(self, head: _Node | None, op: str = "", name: _Node | None = None) -> _Node:
        """`(args)` after a callee (JS), an object and a method name (Java), or a bare method name (Java)."""
        args, parts = [], [self.expect("(")]
        while not self.is_(")"):
            args.append(self.group([self.take(), self.assignment()]) if not self.java and self.is_("...") else self.assignment())
            parts += [args[-1], *([] if self.is_(")") else [self.expect(",")])]
            if self.java and self.is_(")") and parts[-1].kind == "op":
                raise self.fail()  # Java has no trailing comma
        parts.append(self.take())
        first = head or name
        assert first is not None
        return _Node("call", first.start, parts[-1].end, [first, *parts], args, head, name, op)

    def primary(self) -> _Node:
        token, text = self.peek(), self.text()
        if token.kind in ("num", "str", "chr"):
            return self.take()
        if self.is_("("):
            return self.group([self.take(), self.expression(), self.expect(")")], "paren")
        if token.kind == "tpl":  # each `${..}` must hold one expression
            for inner in re.findall(r"\$\{([^{}`]*)\}", text):
                parser = _Parser(inner, java=False)
                parser.expression()
                if parser.peek().kind != "eof":
                    raise parser.fail()
            return self.take()
        if self.is_("this", "super", "true", "false", "null") or (not self.java and self.is_("undefined")):
            if self.java and self.is_("super") and not self.is_(".", "::", ahead=1):
                raise self.fail()
            self.at += 1
            return _Node("kw", token.start, token.end)
        if self.is_("new"):
            return self.new()
        if self.java and token.kind == "id" and (text in _PRIMITIVE or (self.is_("[", ahead=1) and self.is_("]", ahead=2))):
            kind = self.java_type(dims=True)  # int.class, String[].class
            if not (self.is_(".") and self.is_("class", ahead=1)):
                raise self.fail()
            return self.group([kind, self.take(), self.take()], "class")
        if not self.java and self.is_("function"):  # function [name](params) {body}
            return self.group([self.take(), *([self.name()] if self.is_name() else []), *self.params(), self.block()])
        if not self.java and self.is_("["):
            return self.array_literal()
        if not self.java and self.is_("{"):
            return self.object_literal()
        return self.name()
    def new(self) -> _Node:
        new = self.take()
        if not self.java:  # new Member.expression[..](args)
            parts = [new, self.primary()]
            while self.is_(".", "["):
                if self.is_(".") and self.peek(1).kind != "id":
                    raise self.fail()
                parts += [self.take(), self.take()] if self.is_(".") else self.index()
            return self.group([*parts, self.call(parts[-1])] if self.is_("(") else parts)
        kind = self.java_type(dims=False)
        if not self.is_("["):
            call = self.call(kind)
            body = self.class_body() if self.is_("{") else []
            return _Node("new()", new.start, (body or [call])[-1].end, [new, kind, *call.args, *body], call.args, kind)
        parts, sized = [new, kind], False
        while self.is_("["):
            parts.append(self.take())
            if not self.is_("]"):
                parts.append(self.expression())
                sized = True
            parts.append(self.expect("]"))
        if not sized and not self.is_("{"):
            raise self.fail()
        initializer = None if sized else self.initializer()
        return _Node("new[]", new.start, (initializer or parts[-1]).end, [*parts, *([initializer] if initializer else [])],
                     head=kind, tail=initializer)

    def initializer(self) -> _Node:
        parts = [self.expect("{")]
        while not self.is_("}"):
            parts.append(self.initializer() if self.is_("{") else self.assignment())
            if not self.is_("}"):
                parts.append(self.expect(","))
        return self.group([*parts, self.take()])

    def class_body(self) -> list[_Node]:
        """An anonymous class body of instance initializers (`{{ put(..); }}`); BFCL drops it from the text."""
        parts = [self.expect("{")]
        while not self.is_("}"):
            parts.append(self.take() if self.is_(";") else self.block())
        return [*parts, self.take()]

    def array_literal(self) -> _Node:
        parts = [self.take()]
        while not self.is_("]"):
            if self.is_(","):
                parts.append(self.take())
                continue
            parts.append(self.group([self.take(), self.assignment()]) if self.is_("...") else self.assignment())
            if not self.is_("]"):
                parts.append(self.expect(","))
        return self.group([*parts, self.take()])

    def object_literal(self) -> _Node:
        parts = [self.take()]
        while not self.is_("}"):
            if self.is_("..."):
                parts += [self.take(), self.assignment()]
            elif self.is_("[") or self.peek().kind in ("id", "str", "num"):  # key: value, [key]: value, method() {..}, name
                key = self.index() if self.is_("[") else [self.take()]
                if self.is_(":"):
                    parts += [*key, self.take(), self.assignment()]
                elif self.is_("("):
                    parts += [*key, *self.params(), self.block()]
                elif key[0].kind == "id":
                    parts += key
                else:
                    raise self.fail()
            else:
                raise self.fail()
            if not self.is_("}"):
                parts.append(self.expect(","))
        return self.group([*parts, self.take()])


def _walk(nodes: list[_Node]) -> Iterator[_Node]:
    for node in nodes:
        yield node
        yield from _walk(node.parts)


def _java_text(src: str, node: _Node, nested: bool = True) -> str:
    """BFCL's text of a Java argument: tokens joined without spaces, except that calls, class literals
    and names keep their source, a top-level string or char literal loses its quotes, and `new`
    expressions are rewritten (one `[]`, no anonymous class body)."""
    if node.kind in ("str", "chr") and not nested:
        return src[node.start + 1:node.end - 1]
    if node.kind == "new[]":
        if node.tail is None or node.head is None:
            raise DecodeError("an array created without its elements (BFCL cannot read it)")
        return f"new {_java_text(src, node.head)}[]{_java_text(src, node.tail)}"
    if node.kind == "new()" and node.head is not None:
        return f"new {_java_text(src, node.head)}({', '.join(_java_text(src, arg) for arg in node.args)})"
    if node.kind in ("call", "class") or not node.parts:
        return src[node.start:node.end]
    return "".join(_java_text(src, part) for part in node.parts)


def _arguments(src: str, call: _Node, java: bool, comments: list[tuple[int, int]]) -> dict[str, str]:
    """BFCL's `name=value` arguments. Its tree has comments as nodes, and it picks nodes by position:
    a comment between a JS callee and its `(` leaves the call no arguments; one inside `name = value`
    makes the `=` or the comment the value (BFCL's "third child")."""
    if not java and any(call.parts[0].end <= start < call.parts[1].start for start, _ in comments):
        return {}
    arguments: dict[str, str] = {}
    for arg in call.args:
        if arg.kind in ("id", "class") or (not java and arg.kind == "kw" and src[arg.start:arg.end] == "true"):
            raise DecodeError(f"positional argument {src[arg.start:arg.end]!r}: BFCL keeps it under no name, which no function takes")
        if arg.kind != "assign" or (not java and arg.op != "="):
            continue  # BFCL ignores every other positional argument
        target, operator, value = arg.parts
        children = [(target.start, target.end), *[c for c in comments if target.end <= c[0] < operator.start],
                    (operator.start, operator.end), *[c for c in comments if operator.end <= c[0] < value.start]]
        if len(children) > 2:
            text = src[children[2][0]:children[2][1]]
        elif java and value.kind not in ("call", "class") and any(value.start < start < value.end for start, _ in comments):
            raise DecodeError("a comment inside a Java value (BFCL keeps it in the text, where its tree puts it)")
        else:
            text = _java_text(src, value, nested=False) if java else src[value.start:value.end]
        if not java and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        name = src[target.start:target.end]
        if name in arguments:
            raise DecodeError(f"argument {name!r} given twice")
        arguments[name] = text
    return arguments


def parse_calls(text: str, language: Language) -> list[dict[str, dict[str, str]]]:
    """Raw model text holding Java/JS calls (BFCL's prompt format for these categories) -> the decoded
    call list, argument values as source-text strings, exactly as BFCL's decoder produces them: backticks,
    newlines and spaces stripped around, one pair of enclosing brackets dropped, then one call, `name=value`
    arguments only. Raises DecodeError (never anything else) where BFCL raises or returns no call list;
    also for a positional variable argument (BFCL files it under None, which its checker always rejects)
    and where tree-sitter would repair broken text (but for the Java `;` the module docstring describes)."""
    text = text.strip("`\n ")
    text = ("" if text.startswith("[") else "[") + text + ("" if text.endswith("]") else "]")
    src, java = text[1:-1], language == "java"
    try:
        parser = _Parser(src, java)
        statements = parser.statements(top=True)
        call = next((node for node in (_walk(statements) if java else statements) if node.kind == "call"), None)
    except RecursionError as exc:
        raise DecodeError("the text nests too deeply to read") from exc
    if call is None:  # BFCL returns {} (Java) or None (JS): no call list
        raise DecodeError("no call in the text")
    parts = [call.head, call.tail] if java else [call.head]  # Java: object and method name; JS: the callee
    name = ".".join(src[part.start:part.end] for part in parts if part is not None)
    return [{name: {} if call.op == "?." else _arguments(src, call, java, parser.comments)}]
