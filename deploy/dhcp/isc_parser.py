"""A parser for ISC dhcpd.conf as Cobbler, Foreman (OMAPI) and people write it.

Pure Python, no Django and no I/O: `parse(text)` returns a `Config` of dataclasses, or raises
`DhcpdConfigError` carrying every problem with its line (and column where one is known).

Three stages:
1. `tokenize`: words, quoted strings (ISC escapes), punctuation; `#` comments dropped.
2. `_build_tree`: statements ending in `;` or carrying a `{ ... }` block. Brace and semicolon
   mistakes stop here, at the first one, because nothing after them can be trusted.
3. `_Interpreter`: gives meaning to subnets, shared networks, pools, groups and hosts, with
   parameter inheritance (a host gets its groups' filename, next-server, options...). Errors in
   values (a bad MAC, a bad address) are collected so one run reports all of them.

Statements the inventory has no use for but that are valid (lease times, ddns-*, allow/deny...)
are kept as plain parameters. Statements this parser does not follow (include, class, if,
failover, key, zone...) are skipped with a warning, never a crash. Included files are never read:
the text given is all that is parsed.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "Config",
    "DhcpdConfigError",
    "FixedAddress",
    "Host",
    "Problem",
    "Range",
    "Subnet",
    "Token",
    "parse",
    "tokenize",
]

# Limits far beyond any real configuration (100k hosts are about 1.5 million tokens); refusing
# more keeps hostile input cheap in memory and time.
MAX_DEPTH = 64
MAX_TOKENS = 3_000_000


@dataclass(frozen=True)
class Problem:
    """An error or a warning about one place in the file."""

    line: int
    message: str
    column: int | None = None

    def __str__(self):
        where = f"line {self.line}" if self.column is None else f"line {self.line}:{self.column}"
        return f"{where}: {self.message}"


class DhcpdConfigError(ValueError):
    """The text is not a dhcpd.conf this parser can read; `problems` says where and why."""

    def __init__(self, problems):
        self.problems = sorted(problems, key=lambda p: (p.line, p.column or 0))
        super().__init__("; ".join(str(p) for p in self.problems))


# Tokens -----------------------------------------------------------------------------------------

WORD, STRING, PUNCT = "word", "string", "punct"


class Token(NamedTuple):
    kind: str  # word, string or punct
    value: str  # a string's value is unquoted and unescaped
    line: int
    column: int

    @property
    def text(self):
        """The token as a reader would recognise it in the file (strings quoted)."""
        return f'"{self.value}"' if self.kind == STRING else self.value

    def is_punct(self, char):
        return self.kind == PUNCT and self.value == char


# Blanks and comments are skipped inside the expression (one match per token, not three); the
# explicit end keeps blanks at the end of the text from being rescanned from every position.
_TOKEN_RE = re.compile(
    r"""
    (?:[ \t\r\n\f\v]+|\#[^\n]*)*
    (?:
     (?P<string>"[^"\\]*(?:\\.[^"\\]*)*")
    |(?P<punct>[{};,=()!~&|])
    |(?P<word>[^\x00-\x20\x7f{};,=()!~&|"\#]+)
    |(?P<bad>.)
    |(?P<end>\Z)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE_RE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "b": "\b"}


def _unescape(body):
    # ISC's lexer: \t \r \n \b, octal \NNN, hex \xNN; any other escaped character stands for
    # itself (so \" and \\).
    def replace(match):
        octal, hexa, char = match.groups()
        if octal is not None:
            return chr(int(octal, 8) & 0xFF)
        if hexa is not None:
            return chr(int(hexa, 16))
        return _SIMPLE_ESCAPES.get(char, char)

    return _ESCAPE_RE.sub(replace, body) if "\\" in body else body


def tokenize(text):
    """The tokens of `text`, each with its line and column (both counted from 1)."""
    tokens = []
    append = tokens.append
    line, line_start, counted = 1, 0, 0
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        if kind == "end":
            break
        start = match.start(kind)
        # Lines are counted up to each token (strings may hold newlines: dhcpd allows that).
        newlines = text.count("\n", counted, start)
        if newlines:
            line += newlines
            line_start = text.rindex("\n", counted, start) + 1
        counted = start
        column = start - line_start + 1
        value = match.group(kind)
        if kind == "word":
            append(Token(WORD, value, line, column))
        elif kind == "punct":
            append(Token(PUNCT, value, line, column))
        elif kind == "string":
            append(Token(STRING, _unescape(value[1:-1]), line, column))
        elif value == '"':
            raise DhcpdConfigError(
                [Problem(line, "unterminated string: the closing '\"' is missing", column)]
            )
        else:
            raise DhcpdConfigError(
                [Problem(line, f"unexpected character {value!r} (U+{ord(value):04X})", column)]
            )
        if len(tokens) > MAX_TOKENS:
            raise DhcpdConfigError(
                [Problem(line, f"more than {MAX_TOKENS} tokens: not a configuration file")]
            )
    return tokens


# The statement tree ------------------------------------------------------------------------------


@dataclass
class Statement:
    """Tokens up to a `;`, or up to a `{` that opens `block` (closed by `close`)."""

    tokens: list
    block: list | None = None
    close: Token | None = None

    @property
    def line(self):
        return self.tokens[0].line

    @property
    def column(self):
        return self.tokens[0].column

    @property
    def keyword(self):
        first = self.tokens[0]
        return first.value.lower() if first.kind == WORD else ""

    def describe(self):
        return " ".join(t.text for t in self.tokens[:3])


# A statement's first word that, met at the start of a line in the middle of another statement,
# shows that the `;` before it is missing (dhcpd would report the line after instead).
_STATEMENT_WORDS = frozenset(
    {
        *("option", "host", "subnet", "subnet6", "shared-network", "group", "pool", "pool6"),
        *("range", "range6", "prefix6", "hardware", "fixed-address", "fixed-address6"),
        *("filename", "next-server", "server-name", "default-lease-time", "max-lease-time"),
        *("min-lease-time", "include", "class", "subclass", "failover", "key", "zone"),
        *("authoritative", "allow", "deny", "ignore", "ddns-update-style", "ddns-updates"),
        *("supersede", "lease"),
    }
)
# Statements holding expressions, which may legitimately run over lines with any words, and the
# `case X:` / `default:` labels of a switch, which end in a colon.
_EXPRESSION_WORDS = frozenset(
    {"if", "elsif", "else", "match", "spawn", "set", "unset", "eval", "log", "execute", "return"}
    | {"on", "switch", "case", "default", "default:"}
)
_CONTINUATION_PUNCT = frozenset(",(=!~&|")


def _missing_semicolon(tokens, next_token):
    first, last = tokens[0], tokens[-1]
    return (
        next_token.kind == WORD
        and next_token.line > last.line
        and next_token.value.lower() in _STATEMENT_WORDS
        and first.kind == WORD
        and first.value.lower() not in _EXPRESSION_WORDS
        and not (last.kind == PUNCT and last.value in _CONTINUATION_PUNCT)
        and last.value.lower() not in ("and", "or", "not")
    )


def _after(token):
    return f"missing ';' after {token.text[:60]!r}"


def _build_tree(tokens):
    root = []
    stack = [(root, None)]  # (statements of the open block, the statement that opened it)
    closed = []  # statements whose block was closed, in order, to explain unbalanced braces
    indent = {}  # line -> column of its first token
    current = []
    previous = None
    for token in tokens:
        indent.setdefault(token.line, token.column)
        after, previous = previous, token
        if token.kind == PUNCT and token.value == ";":
            if not current and closed and closed[-1].close is after and closed[-1].keyword == "key":
                continue  # dhcpd allows `key NAME { ... };`, as Foreman's installer writes it
            if not current:
                message = "unexpected ';' with no statement before it"
                raise DhcpdConfigError([Problem(token.line, message, token.column)])
            stack[-1][0].append(Statement(current))
            current = []
        elif token.kind == PUNCT and token.value == "{":
            if not current:
                raise DhcpdConfigError(
                    [Problem(token.line, "'{' with no declaration before it", token.column)]
                )
            statement = Statement(current, block=[])
            stack[-1][0].append(statement)
            stack.append((statement.block, statement))
            current = []
            if len(stack) > MAX_DEPTH:
                raise DhcpdConfigError(
                    [Problem(token.line, f"blocks nested deeper than {MAX_DEPTH}", token.column)]
                )
        elif token.kind == PUNCT and token.value == "}":
            if current:
                last = current[-1]
                raise DhcpdConfigError([Problem(last.line, _after(last), last.column)])
            if len(stack) == 1:
                raise DhcpdConfigError(
                    [Problem(token.line, "unexpected '}': no block is open", token.column)]
                )
            statement = stack.pop()[1]
            statement.close = token
            closed.append(statement)
        else:
            if current and _missing_semicolon(current, token):
                last = current[-1]
                raise DhcpdConfigError(
                    [
                        Problem(
                            last.line,
                            f"{_after(last)} (the next statement, {token.value!r}, starts on "
                            f"line {token.line})",
                            last.column,
                        )
                    ]
                )
            current.append(token)
    if current:
        last = current[-1]
        raise DhcpdConfigError([Problem(last.line, f"{_after(last)} at end of file", last.column)])
    if len(stack) > 1:
        raise DhcpdConfigError([_unclosed(stack[-1][1], closed, indent)])
    return root


def _unclosed(innermost, closed, indent):
    """Which `{` lacks its `}`. Braces balance by count only, so the innermost open block at the
    end of the file is often not the culprit: a `}` that starts its line indented unlike the line
    of the statement it closes points at the block that really lost its brace."""
    for statement in closed:
        close = statement.close
        if indent[close.line] == close.column and close.column != indent[statement.line]:
            return Problem(
                statement.line,
                f"'{statement.describe()}' is never closed: the '}}' on line "
                f"{statement.close.line} is indented like an outer block (unbalanced braces)",
                statement.column,
            )
    return Problem(
        innermost.line,
        f"'{innermost.describe()}' is never closed: '}}' missing before the end of the file",
        innermost.column,
    )


# The model the parser returns --------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    start: ipaddress.IPv4Address | ipaddress.IPv6Address
    end: ipaddress.IPv4Address | ipaddress.IPv6Address
    line: int
    dynamic_bootp: bool = False
    in_pool: bool = False


@dataclass
class Subnet:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    line: int
    shared_network: str | None = None
    # Effective values: the subnet's own statements over those of its enclosing scopes.
    options: dict = field(default_factory=dict)  # name -> tuple of values
    parameters: dict = field(default_factory=dict)  # name -> tuple of values
    ranges: list = field(default_factory=list)

    @property
    def routers(self):
        return self.options.get("routers", ())

    @property
    def domain_name(self):
        return _first(self.options.get("domain-name"))

    @property
    def name_servers(self):
        key = "dhcp6.name-servers" if self.network.version == 6 else "domain-name-servers"
        return self.options.get(key, ())


@dataclass(frozen=True)
class FixedAddress:
    value: str  # an IP address (canonical text) or a host name as written
    line: int
    is_ip: bool


@dataclass
class Host:
    name: str
    line: int
    mac: str | None = None  # ethernet only, normalised aa:bb:cc:dd:ee:ff
    hardware_type: str | None = None
    hardware_line: int | None = None
    fixed_addresses: list = field(default_factory=list)  # FixedAddress, v4 and v6
    options: dict = field(default_factory=dict)  # effective, inherited from enclosing scopes
    parameters: dict = field(default_factory=dict)  # effective
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # declared inside
    shared_network: str | None = None
    dynamic: bool = False  # written through OMAPI

    @property
    def host_name(self):
        return _first(self.options.get("host-name"))

    @property
    def domain_name(self):
        return _first(self.options.get("domain-name"))

    @property
    def filename(self):
        return _first(self.parameters.get("filename"))

    @property
    def next_server(self):
        return _first(self.parameters.get("next-server"))

    @property
    def server_name(self):
        return _first(self.parameters.get("server-name"))


@dataclass
class Config:
    subnets: list
    hosts: list
    warnings: list  # Problem
    options: dict  # global
    parameters: dict  # global


def _first(values):
    return values[0] if values else None


# Values --------------------------------------------------------------------------------------

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_DOTTED_NUMBERS_RE = re.compile(r"^[0-9.]+$")
_COLON_HEX_RE = re.compile(r"^[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2})+$")
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}$")


class _ValueError(Exception):
    """A bad value in a statement; the interpreter records it and carries on."""

    def __init__(self, message, token=None):
        super().__init__(message)
        self.token = token


def _ipv4(token):
    try:
        return ipaddress.IPv4Address(token.value)
    except ValueError:
        raise _ValueError(f"{token.value!r} is not an IPv4 address", token) from None


def _ipv6(token):
    try:
        return ipaddress.IPv6Address(token.value)
    except ValueError:
        raise _ValueError(f"{token.value!r} is not an IPv6 address", token) from None


def _address_or_hostname(token, version=4):
    """(canonical text, is_ip). Digits and dots must make an address: 10.0.0.300 is a typo,
    not a host name; and colon-hex (how OMAPI writes an address) is decoded."""
    text = token.value
    if token.kind != WORD:
        raise _ValueError(f"expected an address or a host name, found {token.text}", token)
    if version == 6 or ":" in text:
        if version == 4 and _COLON_HEX_RE.match(text) and text.count(":") == 3:
            return str(ipaddress.IPv4Address(bytes(int(p, 16) for p in text.split(":")))), True
        if version == 4:
            raise _ValueError(f"{text!r} is not an IPv4 address (IPv6 needs the *6 form)", token)
        return str(_ipv6(token)), True
    if _DOTTED_NUMBERS_RE.match(text):
        return str(_ipv4(token)), True
    if _HOSTNAME_RE.match(text):
        return text, False
    raise _ValueError(f"{text!r} is neither an IP address nor a host name", token)


def _mac(token):
    if token.kind != WORD or not _MAC_RE.match(token.value):
        raise _ValueError(
            f"{token.text!r} is not an ethernet MAC address (six hex octets such as "
            "52:54:00:12:34:56)",
            token,
        )
    return ":".join(f"{int(part, 16):02x}" for part in token.value.split(":"))


def _text(token):
    """A text value: a string, a bare word, or colon-hex bytes (as OMAPI writes them)."""
    if token.kind == WORD and _COLON_HEX_RE.match(token.value):
        data = bytes(int(part, 16) for part in token.value.split(":"))
        return data.decode("utf-8", errors="replace").rstrip("\x00")
    return token.value


def _split_commas(tokens):
    """[[tokens of item 1], [tokens of item 2], ...] split on top-level commas."""
    items, current, depth = [], [], 0
    for token in tokens:
        if token.kind == PUNCT and token.value == "(":
            depth += 1
        elif token.kind == PUNCT and token.value == ")":
            depth -= 1
        if token.kind == PUNCT and token.value == "," and depth == 0:
            items.append(current)
            current = []
        else:
            current.append(token)
    items.append(current)
    return items


def _single_tokens(statement, tokens, what):
    """The one token of each comma-separated item; a second token means a missing comma or
    semicolon, which is the likelier typo in a list of addresses."""
    values = []
    for item in _split_commas(tokens):
        if not item:
            raise _ValueError(f"{what}: empty value in the list", statement.tokens[-1])
        if len(item) > 1:
            raise _ValueError(
                f"{what}: expected ',' or ';' after {item[0].text!r}, found {item[1].text!r}",
                item[1],
            )
        values.append(item[0])
    return values


# Options whose values the inventory reads, and how to check them.
_IPV4_LIST_OPTIONS = frozenset(
    {
        "routers",
        "domain-name-servers",
        "ntp-servers",
        "time-servers",
        "log-servers",
        "netbios-name-servers",
        "broadcast-address",
        "subnet-mask",
    }
)
_ADDRESS_ONLY_OPTIONS = frozenset({"subnet-mask", "broadcast-address"})
_IPV6_LIST_OPTIONS = frozenset({"dhcp6.name-servers", "dhcp6.sntp-servers"})
_TEXT_OPTIONS = frozenset({"host-name", "domain-name", "root-path", "tftp-server-name"})

# Not followed; skipped with a warning.
_UNSUPPORTED = {
    "include": "include is not supported: the included file is not read",
    "class": "class declarations are not imported",
    "subclass": "subclass declarations are not imported",
    "if": "conditional (if/elsif/else) statements are not evaluated; their contents are skipped",
    "switch": "conditional (switch) statements are not evaluated; their contents are skipped",
    "failover": "failover peer declarations are not imported",
    "key": "key declarations are not imported",
    "zone": "zone declarations are not imported",
    "on": "event (on commit/release/expiry) statements are not evaluated",
    "lease": "lease declarations (a leases file) are not imported",
    "ia-na": "IPv6 lease declarations are not imported",
    "ia-ta": "IPv6 lease declarations are not imported",
    "ia-pd": "IPv6 lease declarations are not imported",
    "prefix6": "prefix6 (prefix delegation) is not imported",
}
# Where each declaration may appear.
_ALLOWED_IN = {
    "host": {"global", "shared-network", "subnet", "group"},
    "subnet": {"global", "shared-network", "group"},
    "subnet6": {"global", "shared-network", "group"},
    "shared-network": {"global", "group"},
    "group": {"global", "shared-network", "subnet", "group"},
    "pool": {"subnet", "shared-network"},
    "pool6": {"subnet", "shared-network"},
    "range": {"subnet", "pool"},
    "range6": {"subnet", "pool"},
    "hardware": {"host"},
    "fixed-address": {"host"},
    "fixed-address6": {"host"},
    "dynamic": {"host"},
    "deleted": {"host"},
    "uid": {"host"},
    "host-identifier": {"host"},
}
_BLOCK_DECLARATIONS = frozenset(
    {"host", "subnet", "subnet6", "shared-network", "group", "pool", "pool6"}
)


# Interpretation ------------------------------------------------------------------------------


@dataclass
class _Scope:
    kind: str  # global, shared-network, subnet, pool, group, host
    parent: "_Scope | None"
    line: int = 0
    options: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    subnet: Subnet | None = None  # the nearest enclosing subnet declaration
    shared_network: str | None = None
    host: Host | None = None  # set on a host's own scope
    deleted: bool = False  # a host marked `deleted;`

    def effective(self, attr):
        # Order in a block does not matter to dhcpd (a group's filename after its hosts still
        # applies to them), so this runs once the whole file is read.
        chain = []
        scope = self
        while scope is not None:
            chain.append(getattr(scope, attr))
            scope = scope.parent
        merged = {}
        for values in reversed(chain):
            merged.update(values)
        return merged


class _Interpreter:
    def __init__(self):
        self.errors = []
        self.warnings = []
        self.subnets = []  # (Subnet, scope)
        self.hosts = []  # (Host, scope)
        self.pending_ranges = []  # (Range, shared-network name): pools outside any subnet
        self.root = _Scope("global", None)

    def error(self, line, message, column=None):
        self.errors.append(Problem(line, message, column))

    def warn(self, line, message, column=None):
        self.warnings.append(Problem(line, message, column))

    def run(self, statements):
        self.block(statements, self.root)
        self.place_pending_ranges()
        hosts = self.finish_hosts()
        subnets = []
        for subnet, scope in self.subnets:
            subnet.options = scope.effective("options")
            subnet.parameters = scope.effective("parameters")
            subnets.append(subnet)
        if self.errors:
            raise DhcpdConfigError(self.errors)
        return Config(
            subnets=subnets,
            hosts=hosts,
            warnings=sorted(self.warnings, key=lambda p: (p.line, p.column or 0)),
            options=dict(self.root.options),
            parameters=dict(self.root.parameters),
        )

    # Blocks ----------------------------------------------------------------------------------

    def block(self, statements, scope):
        previous = ""
        for statement in statements:
            keyword = statement.keyword
            try:
                self.statement(statement, keyword, scope, previous)
            except _ValueError as exc:
                token = exc.token or statement.tokens[0]
                self.error(token.line, str(exc), token.column)
            previous = keyword

    def statement(self, statement, keyword, scope, previous):
        first = statement.tokens[0]
        if not keyword:
            raise _ValueError(f"expected a statement, found {first.text}", first)
        if keyword in ("elsif", "else"):
            if previous not in ("if", "elsif", "else"):
                raise _ValueError(f"'{keyword}' without an 'if' before it", first)
            return  # part of the if chain already reported
        if keyword == "failover" and statement.block is None:
            return  # `failover peer "x";` in a pool only names the peer
        if keyword == "group" and statement.block is None and scope.kind == "host":
            # `group "name";` in a host (OMAPI) refers to a named group declared elsewhere.
            self.warn(statement.line, "references to named groups are not followed")
            return
        if keyword in _UNSUPPORTED:
            self.warn(statement.line, f"{_UNSUPPORTED[keyword]}: {statement.describe()}")
            return
        allowed = _ALLOWED_IN.get(keyword)
        if allowed is not None and scope.kind not in allowed:
            raise _ValueError(f"'{keyword}' is not allowed inside {_scope_name(scope)}", first)
        if keyword in _BLOCK_DECLARATIONS:
            if statement.block is None:
                raise _ValueError(f"'{keyword}' needs a '{{ ... }}' block", first)
            getattr(self, "declare_" + keyword.replace("-", "_"))(statement, scope)
            return
        if statement.block is not None:
            self.warn(statement.line, f"unknown block '{statement.describe()}' skipped")
            return
        handler = getattr(self, "param_" + keyword.replace("-", "_"), None)
        if handler is not None:
            handler(statement, scope)
        else:
            # One of dhcpd's many plain parameters (lease times, ddns-*, allow, authoritative...).
            scope.parameters[keyword] = tuple(t.value for t in statement.tokens[1:])

    # Declarations ----------------------------------------------------------------------------

    def declare_subnet(self, statement, scope):
        tokens = statement.tokens
        if len(tokens) != 4 or tokens[2].value.lower() != "netmask":
            raise _ValueError("expected 'subnet ADDRESS netmask MASK {'", tokens[0])
        address, mask = _ipv4(tokens[1]), _ipv4(tokens[3])
        try:
            network = ipaddress.IPv4Network(f"{address}/{mask}")
        except ValueError:
            raise _ValueError(
                f"subnet {address} netmask {mask}: bad subnet number/mask combination", tokens[3]
            ) from None
        self.new_subnet(statement, scope, network)

    def declare_subnet6(self, statement, scope):
        tokens = statement.tokens
        if len(tokens) != 2:
            raise _ValueError("expected 'subnet6 PREFIX/LENGTH {'", tokens[0])
        try:
            network = ipaddress.IPv6Network(tokens[1].value)
        except ValueError:
            raise _ValueError(
                f"{tokens[1].text!r} is not an IPv6 network (host bits must be zero)", tokens[1]
            ) from None
        if "/" not in tokens[1].value:
            raise _ValueError(f"subnet6 {tokens[1].value} needs a prefix length", tokens[1])
        self.new_subnet(statement, scope, network)

    def new_subnet(self, statement, scope, network):
        inner = _Scope("subnet", scope, statement.line, shared_network=scope.shared_network)
        inner.subnet = Subnet(network, statement.line, shared_network=scope.shared_network)
        for other, _ in self.subnets:
            if other.network.version == network.version and other.network.overlaps(network):
                raise _ValueError(
                    f"subnet {network} overlaps subnet {other.network} declared on line "
                    f"{other.line}",
                    statement.tokens[1],
                )
        self.subnets.append((inner.subnet, inner))
        self.block(statement.block, inner)

    def declare_shared_network(self, statement, scope):
        tokens = statement.tokens
        if len(tokens) != 2:
            raise _ValueError("expected 'shared-network NAME {'", tokens[0])
        inner = _Scope("shared-network", scope, statement.line, shared_network=tokens[1].value)
        self.block(statement.block, inner)

    def declare_group(self, statement, scope):
        if len(statement.tokens) > 2:
            raise _ValueError("expected 'group {' or 'group NAME {'", statement.tokens[2])
        inner = _Scope(
            "group",
            scope,
            statement.line,
            subnet=scope.subnet,
            shared_network=scope.shared_network,
        )
        self.block(statement.block, inner)

    def declare_pool(self, statement, scope):
        if len(statement.tokens) != 1:
            raise _ValueError("expected 'pool {'", statement.tokens[1])
        inner = _Scope(
            "pool", scope, statement.line, subnet=scope.subnet, shared_network=scope.shared_network
        )
        self.block(statement.block, inner)

    declare_pool6 = declare_pool

    def declare_host(self, statement, scope):
        tokens = statement.tokens
        if len(tokens) != 2 or tokens[1].kind == PUNCT:
            raise _ValueError("expected 'host NAME {'", tokens[2] if len(tokens) > 2 else tokens[0])
        inner = _Scope(
            "host",
            scope,
            statement.line,
            subnet=scope.subnet,
            shared_network=scope.shared_network,
        )
        host = Host(
            tokens[1].value,
            statement.line,
            subnet=scope.subnet.network if scope.subnet else None,
            shared_network=scope.shared_network,
        )
        inner.host = host
        self.hosts.append((host, inner))
        self.block(statement.block, inner)

    # Statements ------------------------------------------------------------------------------

    def param_range(self, statement, scope):
        tokens = statement.tokens[1:]
        bootp = bool(tokens) and tokens[0].value.lower() == "dynamic-bootp"
        if bootp:
            tokens = tokens[1:]
        if not 1 <= len(tokens) <= 2:
            raise _ValueError(
                "expected 'range [dynamic-bootp] LOW [HIGH];'",
                tokens[2] if len(tokens) > 2 else statement.tokens[0],
            )
        low = _ipv4(tokens[0])
        high = _ipv4(tokens[-1])
        self.add_range(statement, scope, low, high, bootp)

    def param_range6(self, statement, scope):
        tokens = statement.tokens[1:]
        if len(tokens) == 1 and "/" in tokens[0].value:
            try:
                network = ipaddress.IPv6Network(tokens[0].value)
            except ValueError:
                raise _ValueError(f"{tokens[0].text!r} is not an IPv6 prefix", tokens[0]) from None
            self.add_range(statement, scope, network[0], network[-1], False)
            return
        if len(tokens) == 2 and tokens[1].value.lower() == "temporary":
            self.warn(statement.line, "range6 ... temporary (temporary addresses) is not imported")
            return
        if len(tokens) != 2:
            raise _ValueError("expected 'range6 LOW HIGH;' or 'range6 PREFIX/LENGTH;'", tokens[0])
        self.add_range(statement, scope, _ipv6(tokens[0]), _ipv6(tokens[1]), False)

    def add_range(self, statement, scope, low, high, bootp):
        if high < low:
            # dhcpd swaps them too; say so, since it is probably a typo.
            self.warn(
                statement.line, f"range {low} {high}: the end comes first; read as {high}-{low}"
            )
            low, high = high, low
        in_pool = scope.kind == "pool"
        item = Range(low, high, statement.line, dynamic_bootp=bootp, in_pool=in_pool)
        subnet = scope.subnet
        if subnet is None:
            self.pending_ranges.append((item, scope.shared_network))
            return
        self.check_range_in(subnet, item, statement.tokens[1])
        subnet.ranges.append(item)

    def check_range_in(self, subnet, item, token):
        network = subnet.network
        if item.start.version != network.version:
            raise _ValueError(f"range {item.start}: wrong address family for {network}", token)
        for address in (item.start, item.end):
            if address not in network:
                raise _ValueError(f"range address {address} is not in subnet {network}", token)

    def place_pending_ranges(self):
        # A pool directly in a shared-network belongs to whichever of its subnets holds it.
        for item, shared in self.pending_ranges:
            for subnet, _ in self.subnets:
                if (
                    subnet.shared_network == shared
                    and item.start.version == subnet.network.version
                    and item.start in subnet.network
                ):
                    if item.end not in subnet.network:
                        self.error(
                            item.line, f"range {item.start}-{item.end} spans subnets of {shared}"
                        )
                    else:
                        subnet.ranges.append(item)
                    break
            else:
                self.error(
                    item.line,
                    f"range {item.start}-{item.end} is in no subnet of shared-network {shared}",
                )

    def param_hardware(self, statement, scope):
        tokens = statement.tokens
        if len(tokens) != 3:
            raise _ValueError(
                "expected 'hardware TYPE ADDRESS;'", tokens[3] if len(tokens) > 3 else tokens[0]
            )
        host = scope.host
        kind = tokens[1].value.lower()
        if kind == "ethernet":
            host.mac = _mac(tokens[2])
        elif kind in ("token-ring", "fddi", "infiniband"):
            host.mac = None
        else:
            raise _ValueError(f"unknown hardware type {tokens[1].value!r}", tokens[1])
        host.hardware_type, host.hardware_line = kind, statement.line

    def param_fixed_address(self, statement, scope, version=4):
        tokens = statement.tokens
        if len(tokens) < 2:
            raise _ValueError(f"{tokens[0].value} needs an address", tokens[0])
        for token in _single_tokens(statement, tokens[1:], tokens[0].value):
            if version == 6:
                value, is_ip = str(_ipv6(token)), True
            else:
                value, is_ip = _address_or_hostname(token)
            scope.host.fixed_addresses.append(FixedAddress(value, token.line, is_ip))

    def param_fixed_address6(self, statement, scope):
        self.param_fixed_address(statement, scope, version=6)

    def param_dynamic(self, statement, scope):
        scope.host.dynamic = True

    def param_deleted(self, statement, scope):
        scope.deleted = True

    def param_uid(self, statement, scope):
        # uid and host-identifier identify a client without a MAC; kept for the importer to see.
        scope.parameters[statement.keyword] = tuple(t.value for t in statement.tokens[1:])

    param_host_identifier = param_uid

    def param_option(self, statement, scope):
        tokens = statement.tokens[1:]
        if not tokens or tokens[0].kind != WORD:
            raise _ValueError("option needs a name", statement.tokens[0])
        name = tokens[0].value.lower()
        rest = tokens[1:]
        if name == "space" or (rest and rest[0].kind == WORD and rest[0].value.lower() == "code"):
            return  # an option definition: it configures nothing by itself
        self.set_option(statement, scope, name, rest)

    def set_option(self, statement, scope, name, tokens):
        if tokens and tokens[0].is_punct("="):
            tokens = self.literal(statement, name, tokens[1:])
            if tokens is None:
                return
        if name in _IPV4_LIST_OPTIONS or name in _IPV6_LIST_OPTIONS:
            version = 6 if name in _IPV6_LIST_OPTIONS else 4
            values = []
            for token in _single_tokens(statement, tokens, name):
                value, is_ip = _address_or_hostname(token, version)
                if not is_ip and name in _ADDRESS_ONLY_OPTIONS:
                    raise _ValueError(f"option {name}: {value!r} is not an address", token)
                values.append(value)
            scope.options[name] = tuple(values)
        elif name in _TEXT_OPTIONS:
            values = _single_tokens(statement, tokens, name)
            if len(values) != 1:
                raise _ValueError(f"option {name} takes one value", values[1])
            scope.options[name] = (_text(values[0]),)
        else:
            items = _split_commas(tokens) if tokens else []
            scope.options[name] = tuple(" ".join(t.value for t in item) for item in items)

    def literal(self, statement, name, tokens):
        """The tokens of `= VALUE` when VALUE is a literal (or a list of them); None (with a
        warning) for an expression, which would need dhcpd's evaluator."""
        if tokens and all(
            len(item) == 1 and item[0].kind in (WORD, STRING) for item in _split_commas(tokens)
        ):
            return tokens
        self.warn(statement.line, f"the value of {name} is an expression; not evaluated")
        return None

    def param_filename(self, statement, scope):
        self.set_parameter(statement, scope, "filename", statement.tokens[1:])

    def param_server_name(self, statement, scope):
        self.set_parameter(statement, scope, "server-name", statement.tokens[1:])

    def param_next_server(self, statement, scope):
        self.set_parameter(statement, scope, "next-server", statement.tokens[1:])

    def set_parameter(self, statement, scope, name, tokens):
        if tokens and tokens[0].is_punct("="):
            tokens = self.literal(statement, name, tokens[1:])
            if tokens is None:
                return
        if len(tokens) != 1:
            raise _ValueError(
                f"{name} takes one value",
                tokens[1] if len(tokens) > 1 else statement.tokens[0],
            )
        token = tokens[0]
        # next-server is an address (OMAPI writes it as colon-hex); the others are text.
        value = _address_or_hostname(token)[0] if name == "next-server" else _text(token)
        scope.parameters[name] = (value,)

    def param_supersede(self, statement, scope):
        # `supersede NAME [=] VALUE;` (OMAPI writes `supersede server.filename = "x";`).
        tokens = statement.tokens[1:]
        if not tokens or tokens[0].kind != WORD:
            raise _ValueError(f"{statement.keyword} needs a name", statement.tokens[0])
        name = tokens[0].value.lower()
        rest = tokens[1:]
        if name.startswith("server."):
            parameter = name.removeprefix("server.")
            if parameter in ("filename", "next-server", "server-name"):
                self.set_parameter(statement, scope, parameter, rest)
            else:
                scope.parameters[parameter] = tuple(t.value for t in rest if not t.is_punct("="))
            return
        self.set_option(statement, scope, name.removeprefix("option."), rest)

    param_default = param_supersede

    def param_not(self, statement, scope):
        scope.parameters[" ".join(t.value.lower() for t in statement.tokens)] = ()

    # Hosts -----------------------------------------------------------------------------------

    def finish_hosts(self):
        by_name = {}
        for host, scope in self.hosts:
            host.options = scope.effective("options")
            host.parameters = scope.effective("parameters")
            earlier = by_name.get(host.name)
            if scope.deleted:
                # OMAPI marks a removed host this way; it cancels an earlier definition.
                self.warn(host.line, f"host {host.name} is marked deleted; skipped")
                by_name.pop(host.name, None)
                continue
            if earlier is not None and not host.dynamic:
                self.error(
                    host.line, f"host {host.name} is already declared on line {earlier.line}"
                )
                continue
            if earlier is not None:
                self.warn(
                    host.line,
                    f"host {host.name} redefined (it was declared on line {earlier.line}); "
                    "the later definition is used",
                )
            by_name[host.name] = host
        return sorted(by_name.values(), key=lambda h: h.line)


def _scope_name(scope):
    return "the top level" if scope.kind == "global" else f"a {scope.kind} block"


def parse(text):
    """Parse dhcpd.conf text into a Config; raise DhcpdConfigError with every problem found."""
    tree = _build_tree(tokenize(text))
    return _Interpreter().run(tree)
