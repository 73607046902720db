"""nginx ``upstream`` blocks: servers, weights, ``backup`` / ``down`` flags and the balancing method.

Parsing: :func:`parse_upstreams` reads every ``upstream NAME { ... }`` block of
an nginx configuration (``http`` or ``stream`` context, any nesting) with its
``server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N]
[backup] [down] ...;`` lines and the balancing method (``least_conn``,
``ip_hash``, ``hash``, ``random``; none means round robin). Bad input raises
:class:`meshstat.errors.ConfigParseError` with file and line.

Balancing: nginx's default balancer is the *smooth* weighted round robin of
``src/http/ngx_http_upstream_round_robin.c: ngx_http_upstream_get_peer``. Every
peer has a ``current_weight`` (initially 0) and an ``effective_weight``
(``weight`` while the peer does not fail). For each request, every eligible
peer's ``current_weight`` grows by its ``effective_weight``; the peer with the
largest ``current_weight`` is picked (the first in configuration order on a
tie), and the sum of the eligible effective weights is subtracted from it.
Peers marked ``down`` are never eligible. ``backup`` peers form a second
round-robin set with its own state, used only when no primary peer can be
chosen (``ngx_http_upstream_get_round_robin_peer``: ``peers->next``). The
sequence is deterministic and periodic with period ``sum(weights)``: over each
period peer ``i`` is picked exactly ``weight_i`` times, spread out (weights
5, 1, 1 give ``a a b a c a a``).

The sequence is computed by :class:`meshstat.balancers.roundrobin.SmoothWRR`
(``SmoothWRR.from_upstream(upstream).sequence(n)``; its ``workers`` are nginx
worker processes without a shared ``zone``, each running its own sequence);
:meth:`Upstream.shares` gives the exact long-run shares. What is not modelled:
failures (``max_fails``/``fail_timeout`` lower a peer's effective weight and
skip it), ``max_conns``, and host names that resolve to several addresses (each
address becomes a peer with the server's weight; here a ``server`` line is one
peer).

Pure Python, standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from meshstat import model
from meshstat.errors import ConfigParseError, ModelError
from meshstat.inputs import read_text, source_name

__all__ = [
    "Upstream",
    "UpstreamServer",
    "load_upstreams",
    "parse_upstreams",
]

#: Balancing directives that replace round robin inside an ``upstream`` block.
BALANCERS = ("least_conn", "ip_hash", "hash", "random")
#: Directives accepted (and ignored by the model) inside an ``upstream`` block.
OTHER_UPSTREAM_DIRECTIVES = frozenset(
    {"keepalive", "keepalive_time", "keepalive_timeout", "keepalive_requests", "zone", "ntlm", "state",
     "resolver", "resolver_timeout", "queue", "sticky", "sticky_cookie_insert"}
)


# --------------------------------------------------------------------------- the IR


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """One ``server`` line of an ``upstream`` block.

    Attributes
    ----------
    address : str
        As written (``127.0.0.1:8081``, ``backend.example:80``, ``unix:/tmp/s``).
    weight : int
        ``weight=N`` (default 1).
    backup, down : bool
        The ``backup`` and ``down`` flags.
    max_fails : int
        ``max_fails=N`` (default 1).
    fail_timeout : str
        ``fail_timeout=T`` as written (default ``10s``).
    max_conns : int
        ``max_conns=N`` (default 0, unlimited).
    line : int or None
        1-based line of the ``server`` directive.
    """

    address: str
    weight: int = 1
    backup: bool = False
    down: bool = False
    max_fails: int = 1
    fail_timeout: str = "10s"
    max_conns: int = 0
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    """An ``upstream`` block.

    Attributes
    ----------
    name : str
    servers : tuple of UpstreamServer
        In configuration order.
    balancer : str
        ``"round_robin"`` (default), ``"least_conn"``, ``"ip_hash"``, ``"hash"`` or ``"random"``.
    source : str
    line : int or None
        Line of the ``upstream`` keyword.
    """

    name: str
    servers: tuple[UpstreamServer, ...]
    balancer: str = "round_robin"
    source: str = "<input>"
    line: int | None = None

    def primary(self) -> tuple[int, ...]:
        """Indices (into ``servers``) of the primary servers, in order."""
        return tuple(i for i, s in enumerate(self.servers) if not s.backup)

    def backup(self) -> tuple[int, ...]:
        """Indices of the ``backup`` servers, in order."""
        return tuple(i for i, s in enumerate(self.servers) if s.backup)

    def active(self) -> tuple[int, ...]:
        """Servers that take traffic while none fails: primaries not ``down``, else backups not ``down``."""
        prim = [i for i in self.primary() if not self.servers[i].down]
        if prim:
            return tuple(prim)
        return tuple(i for i in self.backup() if not self.servers[i].down)

    def _require_rr(self) -> None:
        if self.balancer != "round_robin":
            raise ModelError(
                f"upstream {self.name} uses {self.balancer}; "
                "only nginx's default round robin is modelled exactly"
            )

    def shares(self) -> tuple[Fraction, ...]:
        """Exact long-run share of every server (0 for ``down`` and unused ``backup``).

        Exact over every whole period of ``sum(active weights)`` requests.
        """
        self._require_rr()
        active = self.active()
        total = sum(self.servers[i].weight for i in active)
        return tuple(
            Fraction(s.weight, total) if i in active else Fraction(0) for i, s in enumerate(self.servers)
        )

    def period(self) -> int:
        """Length of the round-robin cycle: the sum of the active weights."""
        return sum(self.servers[i].weight for i in self.active())

    def to_route(self) -> object:
        """A :class:`meshstat.model.Route` with the long-run shares (a Weighted stage).

        The route gives the shares, not the order: nginx's choice is deterministic.
        """
        names = _unique_names([s.address for s in self.servers])
        active = set(self.active())
        weights = [s.weight if i in active else 0 for i, s in enumerate(self.servers)]
        children = tuple(
            model.Backend(name=nm, address=s.address, provenance=model.Provenance(self.source, s.line))
            for nm, s in zip(names, self.servers, strict=True)
        )
        stage = model.Weighted(
            children=children, weights=tuple(weights), unit="request", name=self.name,
            provenance=model.Provenance(self.source, self.line),
        )
        return model.Route(
            root=stage,
            name=f"nginx upstream {self.name}",
            provenance=model.Provenance(self.source, self.line),
            notes=("nginx smooth weighted round robin: deterministic order, exact shares over each period "
                   f"of {self.period()} requests",),
        )


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


# --------------------------------------------------------------------------- the parser


@dataclass(frozen=True, slots=True)
class _Tok:
    text: str
    line: int
    quoted: bool = False


def _tokenize(text: str, source: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "{};":
            toks.append(_Tok(c, line))
            i += 1
        elif c in "\"'":
            start_line = line
            j = i + 1
            buf = []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ConfigParseError(f"unterminated {c} string", source=source, line=start_line)
            toks.append(_Tok("".join(buf), start_line, quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n{};\"'" and not (text[j] == "#" and j == i):
                j += 1
            toks.append(_Tok(text[i:j], line))
            i = j
    return toks


def _statements(toks: list[_Tok], source: str) -> list[tuple[list[_Tok], list | None]]:
    """Nested statements: ``(words, children or None)``."""
    pos = 0

    def block(depth: int, open_line: int | None) -> list[tuple[list[_Tok], list | None]]:
        nonlocal pos
        out: list[tuple[list[_Tok], list | None]] = []
        words: list[_Tok] = []
        while pos < len(toks):
            t = toks[pos]
            pos += 1
            if t.text == ";" and not t.quoted:
                if not words:
                    raise ConfigParseError("unexpected ';'", source=source, line=t.line)
                out.append((words, None))
                words = []
            elif t.text == "{" and not t.quoted:
                if not words:
                    raise ConfigParseError("unexpected '{'", source=source, line=t.line)
                children = block(depth + 1, t.line)
                out.append((words, children))
                words = []
            elif t.text == "}" and not t.quoted:
                if depth == 0:
                    raise ConfigParseError("unexpected '}'", source=source, line=t.line)
                if words:
                    raise ConfigParseError(
                        f"expected ';' after '{' '.join(w.text for w in words)}'",
                        source=source, line=words[-1].line,
                    )
                return out
            else:
                words.append(t)
        if words:
            raise ConfigParseError(
                f"unexpected end of file, expected ';' or '{{' after '{words[-1].text}'",
                source=source, line=words[-1].line,
            )
        if depth > 0:
            raise ConfigParseError("unexpected end of file, expected '}'", source=source, line=open_line)
        return out

    return block(0, None)


_INT = re.compile(r"[0-9]+\Z")  # ASCII digits, as ngx_atoi


#: NGX_MAX_INT_T_VALUE on 64-bit platforms: the largest value ngx_atoi accepts.
_NGX_MAX_INT = 2**63 - 1


def _invalid(text: str, line: int, source: str, hint: str = "") -> ConfigParseError:
    return ConfigParseError(f'invalid parameter "{text}"{hint}', source=source, line=line, snippet=text)


def _server(words: list[_Tok], source: str) -> UpstreamServer:
    line = words[0].line
    if len(words) < 2:
        raise ConfigParseError(
            "expected 'server ADDRESS [weight=N] [backup] [down] ...;'", source=source, line=line
        )
    address = words[1].text
    kw: dict[str, object] = {"address": address, "line": line}
    for w in words[2:]:
        text = w.text
        key, eq, val = text.partition("=")
        if not eq:
            if text in ("backup", "down"):
                kw[text] = True
            elif text in ("resolve", "slow_start"):
                continue
            else:
                raise _invalid(text, w.line, source)
            continue
        if key in ("weight", "max_fails", "max_conns"):
            # nginx reads these with ngx_atoi, which refuses values over NGX_MAX_INT_T_VALUE
            bad = not _INT.match(val) or len(val) > 19 or int(val) > _NGX_MAX_INT
            if bad or (key == "weight" and int(val) == 0):
                hint = f" (weight must be an integer in [1, {_NGX_MAX_INT}])" if key == "weight" else ""
                raise _invalid(text, w.line, source, hint)
            kw[key] = int(val)
        elif key == "fail_timeout":
            if not re.match(r"^\d+(ms|s|m|h|d|w|M|y)?$", val):
                raise _invalid(text, w.line, source)
            kw[key] = val
        elif key in ("route", "service", "slow_start", "drain"):
            continue
        else:
            raise _invalid(text, w.line, source)
    return UpstreamServer(**kw)  # type: ignore[arg-type]


def parse_upstreams(text: str, *, source: str = "<input>") -> dict[str, Upstream]:
    """Every ``upstream`` block of an nginx configuration text, by name.

    Parameters
    ----------
    text : str
        A whole ``nginx.conf`` or just ``upstream`` blocks.
    source : str
        File name for error messages and provenance.

    Raises
    ------
    ConfigParseError
        On unbalanced braces, a missing ``;``, an unknown ``server`` parameter,
        ``weight=0``, an empty or duplicate upstream, or no upstream at all.
    """
    stmts = _statements(_tokenize(text, source), source)
    found: dict[str, Upstream] = {}

    def walk(items: list[tuple[list[_Tok], list | None]]) -> None:
        for words, children in items:
            head = words[0].text
            if head == "upstream" and children is not None:
                if len(words) != 2:
                    raise ConfigParseError("expected 'upstream NAME {'", source=source, line=words[0].line)
                name = words[1].text
                if name in found:
                    raise ConfigParseError(f'duplicate upstream "{name}"', source=source, line=words[0].line)
                servers = []
                balancer = "round_robin"
                for sw, sch in children:
                    d = sw[0].text
                    if sch is not None:
                        raise ConfigParseError(
                            f'unexpected block "{d}" in upstream', source=source, line=sw[0].line
                        )
                    if d == "server":
                        servers.append(_server(sw, source))
                    elif d in BALANCERS:
                        balancer = d
                    elif d not in OTHER_UPSTREAM_DIRECTIVES:
                        raise ConfigParseError(
                            f'unknown directive "{d}" in upstream "{name}"', source=source, line=sw[0].line
                        )
                if not servers:
                    raise ConfigParseError(f'no servers are inside upstream "{name}"', source=source,
                                           line=words[0].line)
                found[name] = Upstream(name=name, servers=tuple(servers), balancer=balancer, source=source,
                                       line=words[0].line)
            elif children is not None:
                walk(children)

    walk(stmts)
    if not found:
        raise ConfigParseError(
            "expected at least one 'upstream NAME { server ...; }' block", source=source, line=1
        )
    return found


def load_upstreams(path: str | Path) -> dict[str, Upstream]:
    """:func:`parse_upstreams` of a file."""
    return parse_upstreams(read_text(path, what="nginx configuration"), source=source_name(path))
