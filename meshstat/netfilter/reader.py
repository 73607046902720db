"""Reading netfilter dumps: ``iptables-save``, ``iptables -L`` listings and pastes, ``nft`` rulesets.

:func:`load` reads a file (or standard input) and picks the parser by the
text's first lines (:func:`meshstat.parsers.sniff_netfilter_dialect`,
:func:`meshstat.parsers.netfilter.iptables_list.sniff_iptables_text`); the parsers are
:mod:`meshstat.parsers.netfilter.iptables_save`, :mod:`meshstat.parsers.netfilter.iptables_list` and
:mod:`meshstat.parsers.netfilter.nft`.
"""

from __future__ import annotations

from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.inputs import read_text, source_name
from meshstat.parsers import sniff_netfilter_dialect
from meshstat.parsers.netfilter import Ruleset, iptables_list, parse_iptables, parse_nft

__all__ = ["Ruleset", "load", "parse_iptables", "parse_nft"]


def load(source: str | Ruleset, dialect: str | None = None, *, text: str | None = None) -> Ruleset:
    """Read and parse a dump: a path, ``"-"`` for standard input, or a parsed :class:`Ruleset`.

    Parameters
    ----------
    source : str or Ruleset
        File name or ``"-"``; a Ruleset is returned as is.
    dialect : {"iptables", "iptables-list", "nft"}, optional
        Default: sniffed from the text (``*table`` / ``-A`` lines are iptables,
        ``table`` / ``add`` lines are nft). ``"iptables"`` also reads an
        ``iptables -L`` listing (``Chain NAME (policy ...)`` lines) and pasted
        ``iptables-save`` text with copy-paste damage or without ``*table``
        lines, recognised by their first line
        (:mod:`meshstat.parsers.netfilter.iptables_list`); ``"iptables-list"`` insists on
        a listing.
    text : str, optional
        The content, when already read (``source`` then only names it).

    Raises
    ------
    ConfigParseError
        Empty input, an unrecognised format, or a malformed line.
    """
    if isinstance(source, Ruleset):
        return source
    if text is None:
        text = read_text(source, what="ruleset")
    name = source_name(source)
    if dialect not in (None, "iptables", "iptables-list", "nft"):
        raise InvalidArgument(f"dialect must be 'iptables', 'iptables-list' or 'nft', got {dialect!r}")
    if dialect != "nft":
        # iptables -L listings and damaged or partial iptables-save pastes
        form = "list" if dialect == "iptables-list" else iptables_list.sniff_iptables_text(text)
        if form == "list":
            return iptables_list.parse_iptables_list(text, name)
        if form == "paste":
            return iptables_list.parse_iptables_paste(text, name)
    if dialect is None:
        dialect = sniff_netfilter_dialect(text)
        if dialect is None:
            if not text.strip() or all(
                not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
            ):
                raise ConfigParseError(
                    "empty input: expected iptables-save or nft list ruleset output", source=name
                )
            first = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip())
            raise ConfigParseError(
                "expected iptables-save output ('*nat', ':CHAIN', '-A ...') or nft rules "
                "('table ip ...', 'add rule ...')",
                source=name,
                line=first,
                snippet=text.splitlines()[first - 1].strip(),
            )
    if dialect == "iptables":
        return parse_iptables(text, name)
    return parse_nft(text, name)
