"""Parsers: configuration text -> dialect structures, every element with its file and line.

Pure Python (standard library only). One module per dialect:

``meshstat.parsers.iptables``
    ``iptables-save`` / ``ip6tables-save`` output and ``iptables-restore`` input.
``meshstat.parsers.nft``
    ``nft list ruleset`` output and ``nft -f`` transactions (``add rule ...``).

Both produce the same netfilter structures (:class:`meshstat.parsers.iptables.Ruleset`),
which :mod:`meshstat.netfilter` traces and reads kube-proxy services from.

``meshstat.parsers.gateway_api`` is imported here: it adds the Gateway API kinds (and Istio's
``Gateway``) to the manifest reader of ``meshstat.parsers.k8s``, so that every reader of manifests
sees them.
"""

from __future__ import annotations

from meshstat.parsers import gateway_api as _gateway_api  # noqa: F401  (registers its kinds with parsers.k8s)

__all__ = ["sniff_netfilter_dialect"]


def sniff_netfilter_dialect(text: str) -> str | None:
    """Guess ``"iptables"`` or ``"nft"`` from the first meaningful line of ``text``.

    Returns ``None`` when the text is empty (only blank or comment lines) or is
    neither dialect.
    """
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if "iptables-save" in line or "ip6tables-save" in line:
                return "iptables"
            continue
        head = line.split(None, 1)[0]
        if line[0] in "*:" or head in ("-A", "-N", "-I", "-P", "-F", "-X", "COMMIT") or line[0] == "[":
            return "iptables"
        if head in ("table", "add", "flush", "delete", "insert", "create", "define", "destroy"):
            return "nft"
        return None
    return None
