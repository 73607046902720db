"""Envoy ``safe_regex`` and Istio ``regex`` matches as Envoy runs them: RE2, whole value, linear time.

Each RE2-vs-Python case below is one where Python's ``re`` (which meshstat used before) gives
another answer or another verdict on the syntax; the expected values are RE2's documented
behaviour (github.com/google/re2/wiki/Syntax), which Envoy's ``RE2::FullMatch`` applies.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from meshstat.errors import ConfigParseError
from meshstat.mesh import Mesh, version_of
from meshstat.mesh.envoy import query_params, route_static_match
from meshstat.parsers.envoy import parse_envoy_text
from meshstat.parsers.k8s import parse_manifest_text
from meshstat.parsers.regex import istio_regex_problem, re2_full_match, re2_syntax_error
from tests.mesh.test_mesh import BASE  # the "shop" namespace, client and api Service

EVIL = "(a+)+b"  # exponential for a backtracking engine on "aaaa...a" (no b)


def header_match(regex: str, value: str) -> bool:
    match = {"prefix": "/", "headers": [{"name": "x-user", "string_match": {"safe_regex": {"regex": regex}}}]}
    return route_static_match(match, "/", {"x-user": value}, [])


@pytest.mark.parametrize("n", [30, 10_000])
def test_catastrophic_pattern_completes_on_envoy_paths(n: int) -> None:
    """Python's re takes ~18 s at n = 30 and longer than the universe at 10,000; RE2 is linear."""
    assert not header_match(EVIL, "a" * n)
    assert header_match(EVIL, "a" * n + "b")
    old_form = {"prefix": "/", "headers": [{"name": "x-user", "safe_regex_match": {"regex": EVIL}}]}
    assert not route_static_match(old_form, "/", {"x-user": "a" * n}, [])
    assert not route_static_match({"safe_regex": {"regex": "/" + EVIL}}, "/" + "a" * n, {}, [])
    qp = {"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"safe_regex": {"regex": EVIL}}}]}
    assert not route_static_match(qp, "/?q=" + "a" * n, {}, [])


def test_whole_value_match() -> None:
    """Envoy's RegexMatcher: "matched against the full string, not as a partial match"."""
    assert not route_static_match({"safe_regex": {"regex": "/api"}}, "/api/v1", {}, [])
    assert route_static_match({"safe_regex": {"regex": "/api/.*"}}, "/api/v1?x=1", {}, [])  # path, no query
    assert not header_match("b", "abc")
    assert header_match("a.c", "abc")


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (r"/v\d+", "/v\u0663", False),  # \d is ASCII in RE2; Python's re matches the Arabic-Indic digit
        (r"\w+", "caf\u00e9", False),  # \w is [0-9A-Za-z_] in RE2
        ("a$\n", "a\n", False),  # $ is the end of the text in RE2, not "before a final newline"
        (r"/api\z", "/api", True),  # \z is RE2's end of text (Python 3.11's re refuses it)
        (r"[[:digit:]]+", "123", True),  # POSIX classes: RE2 syntax, a set of ':' and letters in Python
        (r"\pN+", "42", True),  # Unicode classes: RE2 syntax, refused by Python's re
    ],
)
def test_re2_semantics_where_python_differs(pattern: str, value: str, expected: bool) -> None:
    assert re2_full_match(pattern, value) is expected
    assert header_match(pattern, value) is expected


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        (r"(a)\1", r"invalid escape sequence: \1"),  # backreference
        ("(?=a)a", "invalid perl operator: (?="),  # lookahead
        ("(?<!a)b", "invalid perl operator: (?<!"),  # lookbehind
        ("a++", "bad repetition operator: ++"),  # possessive
        (r"a\Z", r"invalid escape sequence: \Z"),
        ("*", "no argument for repetition operator: *"),  # Istio once read '*' as "present"
    ],
)
def test_re2_refuses(pattern: str, error: str) -> None:
    assert re2_syntax_error(pattern) == error
    with pytest.raises(ValueError, match="not valid RE2"):
        re2_full_match(pattern, "a")


def test_istio_validation_limits() -> None:
    assert istio_regex_problem("") == "an empty regex (Istio's validation refuses it)"
    assert "at most 1024" in istio_regex_problem("a" * 1025)
    assert istio_regex_problem("a" * 1024) is None
    assert istio_regex_problem("(a)\\1") == "RE2 refuses it: invalid escape sequence: \\1"


def test_envoy_backreference_refused_with_file_and_line() -> None:
    text = (
        '{"name": "r", "virtualHosts": [{"name": "vh", "domains": ["*"], "routes": [\n'
        '  {"match": {"prefix": "/", "headers": [{"name": "x", "stringMatch":\n'
        '    {"safeRegex": {"regex": "(a)\\\\1"}}}]},\n'
        '   "route": {"cluster": "c"}}]}]}\n'
    )
    with pytest.raises(ConfigParseError) as exc:
        parse_envoy_text(text, "routes.json")
    assert exc.value.source == "routes.json" and exc.value.line == 3
    assert "got '(a)\\\\1': invalid escape sequence: \\1" in str(exc.value)


def test_envoy_re2_only_syntax_is_accepted() -> None:
    """``\\z`` and ``\\pN`` are valid RE2 that Python's re refused: such a dump now loads."""
    text = ('[{"name": "r", "virtualHosts": [{"name": "vh", "domains": ["*"], "routes": ['
            '{"match": {"safeRegex": {"regex": "/v\\\\pN+\\\\z"}}, "route": {"cluster": "c"}}]}]}]')
    cfg = parse_envoy_text(text, "routes.json")
    (route,) = cfg.route_configs["r"]["virtual_hosts"][0]["routes"]
    assert route_static_match(route["match"], "/v2", {}, [])
    assert not route_static_match(route["match"], "/v2x", {}, [])


# --------------------------------------------------------------------------- Istio VirtualService

PODS = "".join(
    f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api-{v}, namespace: shop}}\nspec:\n"
    f"  template:\n    metadata: {{labels: {{app: api, version: {v}}}}}\n    spec: {{containers: []}}\n"
    for v in ("v1", "v2")
)
DR = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def vs_with_match(match: str) -> str:
    return (
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: shop}\n"
        "spec:\n  hosts: [api]\n  http:\n"
        f"  - match:\n    - {match}\n    route:\n    - destination: {{host: api, subset: v1}}\n"
        "  - route:\n    - destination: {host: api, subset: v2}\n"
    )


def sidecar_version(match: str, path: str = "/", headers: dict[str, str] | None = None) -> str:
    mesh = Mesh(parse_manifest_text(BASE + PODS + DR + vs_with_match(match), "m.yaml"))
    info, port = mesh.find_service("api.shop:80")
    paths = mesh.client_paths(info, port, client=mesh.manifests.workload("shop/client"), path=path,
                              headers=headers or {})
    (sc,) = [p for p in paths if p.kind == "sidecar"]
    shares = {version_of(b.labels): s for b, s in zip(sc.route.backends(), sc.route.exact_shares(), strict=True)}
    (version,) = [v for v, s in shares.items() if s == Fraction(1)]
    return version


@pytest.mark.parametrize("n", [30, 10_000])
def test_istio_catastrophic_header_regex_completes(n: int) -> None:
    match = "headers: {x-user: {regex: '(a+)+b'}}"
    assert sidecar_version(match, headers={"x-user": "a" * n}) == "v2"
    assert sidecar_version(match, headers={"x-user": "a" * n + "b"}) == "v1"


def test_istio_regexes_are_re2_whole_value() -> None:
    assert sidecar_version("uri: {regex: '/api'}", path="/api/v1") == "v2"  # whole path
    assert sidecar_version("uri: {regex: '/api/.*'}", path="/api/v1?x=1") == "v1"  # query not part of it
    assert sidecar_version(r"uri: {regex: '/v\d+'}", path="/v\u0663") == "v2"  # ASCII \d
    assert sidecar_version(r"uri: {regex: '/v\d+\z'}", path="/v3") == "v1"
    # ignoreUriCase does not apply to a regex (Envoy ignores case_sensitive for safe_regex)
    assert sidecar_version("{uri: {regex: '/API'}, ignoreUriCase: true}", path="/api") == "v2"
    assert sidecar_version("authority: {regex: 'api(:80)?'}", headers={}) == "v1"
    assert sidecar_version("authority: {regex: 'other.*'}", headers={}) == "v2"


def test_istio_query_params_are_evaluated() -> None:
    assert sidecar_version("queryParams: {debug: {exact: 'true'}}", path="/?debug=true") == "v1"
    assert sidecar_version("queryParams: {debug: {exact: 'true'}}", path="/?debug=false") == "v2"
    assert sidecar_version("queryParams: {id: {regex: '[0-9]+'}}", path="/x?id=42&id=a") == "v1"  # first value
    assert sidecar_version("queryParams: {id: {regex: '[0-9]+'}}", path="/x?id=4a") == "v2"
    assert sidecar_version("queryParams: {id: {}}", path="/x?id") == "v1"  # empty StringMatch: present
    assert sidecar_version("queryParams: {id: {}}", path="/x") == "v2"
    assert query_params("/p?a=1&b&a=2") == {"a": "1", "b": ""}


def test_istio_without_headers_treats_a_missing_header_as_empty() -> None:
    """istiod sets treat_missing_header_as_empty on inverted non-presence matchers."""
    assert sidecar_version("withoutHeaders: {x-user: {regex: '.*'}}", headers={}) == "v2"
    assert sidecar_version("withoutHeaders: {x-user: {regex: 'a+'}}", headers={}) == "v1"
    assert sidecar_version("withoutHeaders: {x-user: {}}", headers={}) == "v1"  # presence: absent passes
    assert sidecar_version("withoutHeaders: {x-user: {}}", headers={"x-user": "z"}) == "v2"


@pytest.mark.parametrize(
    ("match", "phrase"),
    [
        (r"headers: {x-user: {regex: '(a)\1'}}", r"header x-user regex '(a)\\1'"),
        ("uri: {regex: '(?=/a)/a'}", "invalid perl operator: (?="),
        ("uri: {regex: ''}", "an empty regex"),
        ("queryParams: {id: {regex: 'a++'}}", "query parameter id regex 'a++'"),
        ("authority: {regex: '*'}", "no argument for repetition operator"),
    ],
)
def test_istio_bad_regex_refused_with_file_and_line(match: str, phrase: str) -> None:
    text = BASE + PODS + DR + vs_with_match(match)
    with pytest.raises(ConfigParseError) as exc:
        parse_manifest_text(text, "m.yaml")
    assert exc.value.source == "m.yaml"
    assert exc.value.line == text.splitlines().index(f"    - {match}") + 1
    assert phrase in str(exc.value)
