"""The routing model (IR): a :class:`Route` is a tree of i.i.d. :class:`Stage` nodes
ending in :class:`Backend` leaves.

:mod:`~meshstat.model.stages`
    the model's classes (:class:`Provenance`, :class:`Backend`, :class:`Stage`,
    :class:`Cascade`, :class:`Weighted`, :class:`Route`) and their exact distributions;
:mod:`~meshstat.model.shares`
    exact shares of any length: built without gcds (:func:`dyadic`), printed in a
    bounded form (:func:`share_text`, the one text of a share);
:mod:`~meshstat.model.thresholds`
    iptables' 31-bit thresholds, kube-proxy's probabilities, exact rounding to
    integer masses and bounded reading of decimal weights;
:mod:`~meshstat.model.numgen`
    nft's ``numgen random mod N`` split (:class:`Numgen`) with the kernel's exact slot
    sizes in closed form for any modulus.

Pure Python (standard library only); :mod:`meshstat.compiler` turns the model
into the kernels' arrays.
"""

from __future__ import annotations

from meshstat.model.numgen import Numgen, numgen_range_count, numgen_slot_counts
from meshstat.model.shares import (
    APPROX_DIGITS,
    MAX_SHARE_TEXT,
    DyadicShare,
    approx_decimal,
    as_share,
    dyadic,
    exact_sum,
    share_text,
)
from meshstat.model.stages import (
    ENVOY_MAX_TOTAL_WEIGHT,
    FALL_THROUGH,
    MAX_EXACT_RULES,
    MAX_KUBE_PROXY_ENDPOINTS,
    Backend,
    Cascade,
    Node,
    Provenance,
    Route,
    Stage,
    Unit,
    Weighted,
    check_kube_proxy_endpoints,
)
from meshstat.model.thresholds import (
    CASCADE_ONE,
    MAX_DECIMAL_EXPONENT,
    cascade_error_bound,
    decimal_fraction,
    kube_proxy_probabilities,
    kube_proxy_uniform_bound,
    probability_to_threshold,
    round_to_total,
    scale_fractional_weights,
    smallest_integer_weights,
    threshold_to_decimal,
    weights_to_cascade,
)

__all__ = [
    "Numgen",
    "numgen_range_count",
    "numgen_slot_counts",
    "APPROX_DIGITS",
    "CASCADE_ONE",
    "ENVOY_MAX_TOTAL_WEIGHT",
    "FALL_THROUGH",
    "MAX_DECIMAL_EXPONENT",
    "MAX_EXACT_RULES",
    "MAX_KUBE_PROXY_ENDPOINTS",
    "MAX_SHARE_TEXT",
    "Backend",
    "Cascade",
    "DyadicShare",
    "Node",
    "Provenance",
    "Route",
    "Stage",
    "Unit",
    "Weighted",
    "approx_decimal",
    "as_share",
    "cascade_error_bound",
    "check_kube_proxy_endpoints",
    "decimal_fraction",
    "dyadic",
    "exact_sum",
    "kube_proxy_probabilities",
    "kube_proxy_uniform_bound",
    "probability_to_threshold",
    "round_to_total",
    "scale_fractional_weights",
    "share_text",
    "smallest_integer_weights",
    "threshold_to_decimal",
    "weights_to_cascade",
]
