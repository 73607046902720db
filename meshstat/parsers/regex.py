"""Regular expressions as Envoy and Istio evaluate them: RE2 syntax, whole-value match, linear time.

Every regex meshstat evaluates on behalf of Envoy or Istio goes through this module:

* Envoy's ``safe_regex`` (``envoy.type.matcher.v3.RegexMatcher``) in a route's path match, in
  header matchers (``safe_regex_match``, ``string_match.safe_regex``) and in query parameter
  string matchers. Envoy compiles it with Google RE2 (``envoy.regex_engines.google_re2``, the
  only engine) and matches the *whole* value: ``source/common/common/regex.h``,
  ``CompiledGoogleReMatcher::match`` calls ``re2::RE2::FullMatch``; the proto
  (``envoy/type/matcher/v3/regex.proto``) says "The regex is matched against the full string,
  not as a partial match".
* Istio's VirtualService ``StringMatch.regex`` (``uri``, ``headers``, ``withoutHeaders``,
  ``method``, ``authority``, ``queryParams``): istiod copies the string unchanged into an Envoy
  ``safe_regex`` (``pilot/pkg/networking/core/route/route.go``, ``TranslateRouteMatch`` for
  the path, ``translateHeaderMatch`` and ``translateQueryParamMatch`` through
  ``pilot/pkg/networking/util/util.go: ConvertToEnvoyMatch`` for the others), so it has the
  same RE2 syntax and whole-value semantics. Istio's validation
  (``pkg/config/validation/validation.go: validateStringMatchRegexp``) refuses an empty regex, a
  regex longer than 1024 characters, and one that does not compile as RE2 ("Istio uses RE2
  style regex-based match").

RE2 differs from Python's ``re``: no backreferences, lookaround or possessive quantifiers
(RE2 refuses them), ``\\z`` instead of ``\\Z``, ``$`` only at the very end of the text, and
``\\d``, ``\\w``, ``\\s`` are ASCII classes. Matching runs in time linear in the value, so a
pattern such as ``(a+)+b`` cannot make a match take exponential time. The engine is Google's
own, through the ``google-re2`` binding (module ``re2``), with RE2's default options
(UTF-8, Perl syntax), as Envoy builds it (``re2::RE2::Quiet``).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["ISTIO_MAX_REGEX_LENGTH", "istio_regex_problem", "re2_full_match", "re2_syntax_error"]

ISTIO_MAX_REGEX_LENGTH = 1024


@functools.lru_cache(maxsize=1)
def _module() -> Any:
    try:
        import re2  # the google-re2 binding
    except ImportError:  # pragma: no cover - a dependency of the package
        from meshstat.errors import MeshstatError

        raise MeshstatError(
            "meshstat needs the RE2 engine to evaluate Envoy/Istio regexes: pip install google-re2"
        ) from None
    return re2


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> tuple[Any, str | None]:
    """``(compiled, None)``, or ``(None, RE2's error message)``."""
    re2 = _module()
    opts = re2.Options()
    opts.log_errors = False  # RE2::Quiet, as Envoy compiles
    try:
        return re2.compile(pattern, opts), None
    except re2.error as exc:
        msg = exc.args[0] if exc.args else "invalid regular expression"
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        return None, str(msg)
    except (TypeError, ValueError) as exc:  # e.g. a NUL the binding refuses
        return None, str(exc)


def re2_syntax_error(pattern: str) -> str | None:
    """RE2's error message for ``pattern`` (``"invalid escape sequence: \\1"``), or None if it compiles."""
    return _compiled(pattern)[1]


def istio_regex_problem(pattern: str) -> str | None:
    """Why Istio's validation refuses a VirtualService ``regex`` (empty, too long, not RE2), or None."""
    if pattern == "":
        return "an empty regex (Istio's validation refuses it)"
    if len(pattern) > ISTIO_MAX_REGEX_LENGTH:
        return (f"a regex of {len(pattern)} characters (Istio's validation allows at most "
                f"{ISTIO_MAX_REGEX_LENGTH})")
    err = re2_syntax_error(pattern)
    if err is not None:
        return f"RE2 refuses it: {err}"
    return None


def re2_full_match(pattern: str, value: str) -> bool:
    """Whether RE2 matches ``pattern`` against the whole of ``value`` (``RE2::FullMatch``).

    Raises
    ------
    ValueError
        If RE2 refuses the pattern (the parsers refuse such input with its file and line first).
    """
    rx, err = _compiled(pattern)
    if rx is None:
        raise ValueError(f"regular expression {pattern!r} is not valid RE2: {err}")
    return rx.fullmatch(value) is not None
