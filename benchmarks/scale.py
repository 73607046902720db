"""How `audit` and `compare -f` grow with a cluster's namespaces: the README's scale table.

Run from the repository root, one case per call (the figures are seconds of the stage named, one run):

    python3 benchmarks/scale.py sidecars 10000 1000   # audit alone: cluster + a default Sidecar per namespace
    python3 benchmarks/scale.py zones 2000            # audit alone: cluster(1000, 100) + 2,000 PreferClose plants
    python3 benchmarks/scale.py compare 2000 200      # compare_paths(n=100,000): cluster + a Sidecar per namespace
    python3 benchmarks/scale.py today 2000 200        # compare_paths(n=100,000): cluster_gen.as_run_today(cluster)
    python3 benchmarks/scale.py stages 10000 100      # the audit from JSON stage by stage (collector paused), twice
    python3 benchmarks/scale.py parts 10000 100       # the audit alone in one process and in parts, alternating; a fork
    python3 benchmarks/scale.py split 10000 100       # the JSON read in one process and in two, alternating
    python3 benchmarks/scale.py dups 10000 100        # Manifests.drop_duplicates of the read cluster
    python3 benchmarks/scale.py shares 10000 100      # the JSON read in two at tail shares 0.43-0.55
    python3 benchmarks/scale.py pieces 10000 100      # the JSON read in two, pieces of 256 KiB-4 MiB or whole
    python3 benchmarks/scale.py convert 10000 100     # the items converted with the fast paths and without

Run it from a worktree of another version (``git worktree add ../old REV``, then the same command there) to
compare versions on this machine.
"""

from __future__ import annotations

import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from meshstat.audit import audit  # noqa: E402
from meshstat.inputs import max_input_size  # noqa: E402
from meshstat.mesh import Mesh  # noqa: E402
from meshstat.parsers.k8s import parse_manifest_text  # noqa: E402
from tests.cluster_gen import as_run_today, cluster, to_json, with_namespace_sidecars, with_zone_plants  # noqa: E402


def stages(text: str) -> str:
    """The JSON audit's stages, each timed alone: orjson, the key lines, the line-aware walk, freeing those trees;
    then the whole read (all of them, the readers and freeing), the model and the audit."""
    import gc

    import orjson

    from meshstat.parsers import yaml_loader

    gc.disable()
    out = []
    for _ in range(2):
        t0 = time.perf_counter()
        root = orjson.loads(text)
        t1 = time.perf_counter()
        tab = yaml_loader._json_key_lines(text)
        t2 = time.perf_counter()
        doc = yaml_loader._lined_tree(root, array("q", [1]), None, block_lists=False)
        t3 = time.perf_counter()
        del root, tab, doc
        t4 = time.perf_counter()
        manifests = parse_manifest_text(text, "c.json")
        t5 = time.perf_counter()
        mesh = Mesh(manifests)
        t6 = time.perf_counter()
        audit(mesh)
        t7 = time.perf_counter()
        out.append(f"orjson {t1 - t0:.2f} s, key lines {t2 - t1:.2f} s, walk {t3 - t2:.2f} s, freeing {t4 - t3:.2f} s"
                   f" | read {t5 - t4:.2f} s, model {t6 - t5:.2f} s, audit {t7 - t6:.2f} s: {t7 - t4:.2f} s")
    gc.enable()
    return "\n".join(out)


def parts(text: str) -> str:
    """The audit alone (indexes and producers) in one process and in :func:`meshstat.workers.jobs` parts, three runs
    each, alternating; and what starting a forked child and collecting its result costs."""
    from meshstat.audit import PRODUCERS
    from meshstat.audit.core import run_audit
    from meshstat.workers import jobs, start

    mesh = Mesh(parse_manifest_text(text, "c.json"))
    runs: dict[int, list[float]] = {1: [], jobs(): []}
    for _ in range(3):
        for n in runs:
            t = time.perf_counter()
            run_audit(mesh, PRODUCERS, parts=n)
            runs[n].append(time.perf_counter() - t)
    t = time.perf_counter()
    start(lambda: None).result()
    fork = time.perf_counter() - t
    return "; ".join(f"{n} part(s): " + " ".join(f"{x:.2f}" for x in ts) + " s" for n, ts in runs.items()) + (
        f"; fork and collect {fork * 1000:.0f} ms")


def dups(text: str) -> str:
    """``Manifests.drop_duplicates`` of the read cluster (no object twice: every list kept), three runs,
    collector paused."""
    import gc

    manifests = parse_manifest_text(text, "c.json")
    gc.disable()
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        manifests.drop_duplicates()
        runs.append(time.perf_counter() - t)
    gc.enable()
    return "drop_duplicates: " + " ".join(f"{x * 1000:.0f}" for x in runs) + " ms"


def split(text: str) -> str:
    """The read of a JSON List (``parse_manifest_text``) in one process (``MESHSTAT_JOBS=1``) and in two
    (``parsers.k8s._read_list_in_parts``), three runs each, alternating."""
    import os

    runs: dict[str, list[float]] = {"one process": [], "two": []}
    for _ in range(3):
        for name in runs:
            if name == "two":
                os.environ.pop("MESHSTAT_JOBS", None)
            else:
                os.environ["MESHSTAT_JOBS"] = "1"
            t = time.perf_counter()
            parse_manifest_text(text, "c.json")
            runs[name].append(time.perf_counter() - t)
    os.environ.pop("MESHSTAT_JOBS", None)
    return "; ".join(f"{n}: " + " ".join(f"{x:.2f}" for x in ts) + " s" for n, ts in runs.items())


def shares(text: str) -> str:
    """The read in two processes at several ``parsers.k8s.TAIL_SHARE`` values, five runs each, alternating."""
    from meshstat.parsers import k8s

    was = k8s.TAIL_SHARE
    runs: dict[float, list[float]] = {s: [] for s in (0.43, 0.47, 0.51, 0.55)}
    try:
        for _ in range(5):
            for share in runs:
                k8s.TAIL_SHARE = share
                t = time.perf_counter()
                parse_manifest_text(text, "c.json")
                runs[share].append(time.perf_counter() - t)
    finally:
        k8s.TAIL_SHARE = was
    return "; ".join(f"{s}: " + " ".join(f"{x:.2f}" for x in ts) + " s" for s, ts in runs.items())


def pieces(text: str) -> str:
    """The read in two processes with pieces of several sizes (``parsers.yaml_loader.LIST_PIECE_CHARS``; the
    last: each part in one piece), five runs each, alternating; and the page faults of this process's runs."""
    import resource

    from meshstat.parsers import yaml_loader

    was = yaml_loader.LIST_PIECE_CHARS
    runs: dict[int, list[tuple[float, int]]] = {s: [] for s in (1 << 18, 1 << 20, 1 << 22, 1 << 40)}
    try:
        for _ in range(5):
            for size in runs:
                yaml_loader.LIST_PIECE_CHARS = size
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t = time.perf_counter()
                parse_manifest_text(text, "c.json")
                took = time.perf_counter() - t
                runs[size].append((took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    finally:
        yaml_loader.LIST_PIECE_CHARS = was
    def line(size: int, ts: list[tuple[float, int]]) -> str:
        name = "whole" if size == 1 << 40 else f"{size >> 10} KiB"
        faults = [f for _, f in ts]
        took = " ".join(f"{x:.2f}" for x, _ in ts)
        return f"{name}: {took} s ({min(faults):,}-{max(faults):,} faults)"

    return "; ".join(line(size, ts) for size, ts in runs.items())


def convert(text: str) -> str:
    """The conversion of the benchmark's JSON items (their line-aware trees made beforehand) with the fast paths of
    the common shapes and with the checked converters alone (``parsers.k8s._PLAIN_READERS`` emptied), four runs
    each, alternating, collector paused."""
    import gc

    from meshstat.parsers import k8s, yaml_loader

    cut = yaml_loader.json_list_cut(text, 0.0)  # the head: every item but the last
    gc.disable()
    runs: dict[str, list[float]] = {"fast paths": [], "checked converters": []}
    fast = dict(k8s._PLAIN_READERS)
    try:
        for _ in range(4):
            for name in runs:
                k8s._PLAIN_READERS.clear()
                if name == "fast paths":
                    k8s._PLAIN_READERS.update(fast)
                pieces = [p for p in cut.head_items(text) if isinstance(p, list)]
                ctx = k8s.ManifestContext("c.json", "default")
                t = time.perf_counter()
                for items in pieces:
                    k8s._read_items(ctx, items)
                runs[name].append(time.perf_counter() - t)
                del pieces
    finally:
        k8s._PLAIN_READERS.clear()
        k8s._PLAIN_READERS.update(fast)
        gc.enable()
    return "; ".join(f"{n}: " + " ".join(f"{x:.2f}" for x in ts) + " s" for n, ts in runs.items())


def main(case: str, *sizes: int) -> str:
    json_cases = {"dups": dups, "convert": convert, "pieces": pieces, "shares": shares, "split": split,
                  "parts": parts, "stages": stages}
    if case in json_cases:  # timed on the benchmark's JSON, as kubectl writes it
        text = to_json(cluster(sizes[0], sizes[1]))
        with max_input_size(2 * len(text)):
            return json_cases[case](text)
    if case == "zones":
        doc = with_zone_plants(cluster(1000, 100), sizes[0])
    elif case == "today":
        doc = as_run_today(cluster(sizes[0], sizes[1]))
    else:
        doc = with_namespace_sidecars(cluster(sizes[0], sizes[1]))
    text = to_json(doc)
    with max_input_size(2 * len(text)):
        manifests = parse_manifest_text(text, "c.json")
    if case in ("compare", "today"):
        from meshstat.engine.mesh import compare_paths

        t = time.perf_counter()
        got = compare_paths(manifests, n=100_000, rng=1)
        return f"compare_paths: {time.perf_counter() - t:.2f} s, {len(got.paths)} paths"
    mesh = Mesh(manifests)
    t = time.perf_counter()
    res = audit(mesh)
    took = time.perf_counter() - t
    return (f"audit: {took:.2f} s, {len(res.rows)} rows, {sum(len(r.fix) for r in res.rows)} fix strings, "
            f"reasons {sorted({r.reason for r in res.rows})}")


if __name__ == "__main__":
    print(main(sys.argv[1], *map(int, sys.argv[2:])))
