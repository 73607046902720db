"""Parsers: configuration text -> dialect structures, every element with its file and line.

Pure Python (standard library, PyYAML for YAML, and the google-re2 binding for the regexes Envoy and
Istio evaluate). One module per dialect:

``meshstat.parsers.netfilter``
    ``iptables-save`` / ``ip6tables-save`` output and ``iptables-restore`` input
    (``iptables_save``), ``iptables -L`` listings and pasted dumps
    (``iptables_list``), ``nft list ruleset`` output and ``nft -f`` transactions
    (``nft``). All produce the same netfilter structures
    (:class:`meshstat.parsers.netfilter.ruleset.Ruleset`), which
    :mod:`meshstat.netfilter` traces and reads kube-proxy services from.
``meshstat.parsers.k8s``
    Kubernetes and Istio manifests (YAML read by ``meshstat.parsers.yaml_loader``; fields read by the
    typed readers of ``meshstat.parsers.fields``, which every manifest parser shares).
``meshstat.parsers.envoy``
    Envoy configuration dumps and bootstrap files.
``meshstat.parsers.nginx``
    nginx ``upstream`` blocks.
``meshstat.parsers.regex``
    RE2 syntax checks and whole-value matching for Envoy ``safe_regex`` and Istio ``regex``.

``meshstat.parsers.gateway_api`` (Gateway API routes, Gateways, GatewayClasses, ReferenceGrants and
Istio's ``Gateway``) is imported here: it adds its kinds to the manifest reader of
``meshstat.parsers.k8s``, so that every reader of manifests sees them.
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
