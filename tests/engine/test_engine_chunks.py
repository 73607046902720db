"""The chunked engine: results independent of chunk sizes, bounded memory, destinations to Parquet."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from meshstat.engine import chunks, iid, seeding
from meshstat.engine import routes as sim
from meshstat.model import Cascade, Route, Weighted

ROUTES = [
    (Route(root=Weighted.from_weights([90, 10])), "per_request"),  # bernoulli
    (Route(root=Weighted.from_weights([5, 0, 3, 2, 7])), "per_request"),  # alias
    (Route(root=Cascade.kube_proxy(7)), "faithful"),  # cascade
    (Route(root=Weighted.from_weights([50, 30, 20])), "faithful"),  # envoy
]


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one to four 256-request blocks (the engine's smallest steps)."""
    monkeypatch.setattr(iid, "CHUNK_REQUESTS", 256)
    monkeypatch.setattr(iid, "MAX_CHUNK_REQUESTS", 1024)


def _windows_of(dest: np.ndarray, w: int, k: int) -> np.ndarray:
    return np.stack([np.bincount(dest[i : i + w], minlength=k) for i in range(0, len(dest), w)])


@pytest.mark.parametrize(("route", "mode"), ROUTES)
@pytest.mark.parametrize("n", [100_003, 65_536])  # unaligned and block-aligned (block_log2 = 8)
def test_results_do_not_depend_on_chunks(
    route: Route, mode: str, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = sim.simulate(route, n, rng=5, mode=mode, destinations=True, window=777, block_log2=8)
    monkeypatch.setattr(iid, "CHUNK_REQUESTS", 256)
    monkeypatch.setattr(iid, "MAX_CHUNK_REQUESTS", 1024)
    small = sim.simulate(route, n, rng=5, mode=mode, destinations=True, window=777, block_log2=8)
    counts = sim.simulate(route, n, rng=5, mode=mode, block_log2=8)
    win = sim.simulate(route, n, rng=5, mode=mode, window=13, block_log2=8)
    assert big.destinations is not None
    assert small.destinations is not None
    np.testing.assert_array_equal(big.destinations, small.destinations)
    np.testing.assert_array_equal(big.window_counts, small.window_counts)
    k = len(big.counts)
    # every shape of the run is the one per-request stream
    np.testing.assert_array_equal(np.bincount(big.destinations, minlength=k), counts.counts)
    np.testing.assert_array_equal(_windows_of(big.destinations, 777, k), big.window_counts)
    np.testing.assert_array_equal(_windows_of(big.destinations, 13, k), win.window_counts)
    np.testing.assert_array_equal(win.counts, counts.counts)


def test_chunk_keys_are_the_runs_block_keys(tiny_chunks: None) -> None:
    """Keys made chunk by chunk equal ``seeding.block_keys`` of the whole run (the contract)."""
    root = np.random.SeedSequence(123)
    sp = chunks.KeySpawner(root)
    # as the windows pass asks: each range starts at or after the previous one's start
    got = np.concatenate([sp.keys(0, 3), sp.keys(2, 5)[1:], sp.keys(5, 9)])
    whole = seeding.block_keys(np.random.SeedSequence(123), 20)
    np.testing.assert_array_equal(got, whole[:9])
    # a range past the keys made so far skips the blocks in between
    np.testing.assert_array_equal(sp.keys(12, 14), whole[12:14])
    np.testing.assert_array_equal(sp.keys(13, 20), whole[13:20])
    assert root.n_children_spawned == 0  # the caller's root is not advanced


def test_prefix_property() -> None:
    """A run of n requests is the prefix of a longer run with the same seed (any n, aligned or not)."""
    route = Weighted.from_weights([3, 2, 1])
    long = sim.simulate(route, 3 * seeding.BLOCK_SIZE + 77, rng=9, destinations=True)
    for n in (1, 1000, seeding.BLOCK_SIZE, seeding.BLOCK_SIZE + 1, 2 * seeding.BLOCK_SIZE + 5):
        short = sim.simulate(route, n, rng=9, destinations=True)
        assert short.destinations is not None
        assert long.destinations is not None
        np.testing.assert_array_equal(short.destinations, long.destinations[:n])


def _peak_bytes(fn) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_counts_memory_does_not_grow_with_n() -> None:
    """Counts-only runs use O(k) memory: 2**24 and 2**30 requests peak alike (numpy's allocations traced)."""
    route = Weighted.from_weights(list(range(1, 17)))
    sim.simulate(route, 1000, rng=1)  # load the kernels outside the measurement
    small = _peak_bytes(lambda: sim.simulate(route, 2**24, rng=1))
    big = _peak_bytes(lambda: sim.simulate(route, 2**30, rng=1))
    # the chunk tallies are bounded by MAX_CHUNK_REQUESTS / block * columns * 8 bytes = 128 KiB
    assert big < 4 * 2**20, big
    assert big < small + 2**20, (small, big)


def test_exact_mode_memory_is_o_k() -> None:
    route = Weighted.from_weights([1] * 1000)
    peak = _peak_bytes(lambda: sim.simulate(route, 2**62, rng=1, mode="exact"))
    assert peak < 2 * 2**20, peak


def test_destinations_stream_to_parquet_beyond_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    route = Weighted.from_weights([5, 3, 2])
    n = 1_000_003
    kept = sim.simulate(route, n, rng=4, destinations=True)
    monkeypatch.setattr(iid, "MAX_DESTINATIONS", 100_000)
    monkeypatch.setattr(iid, "CHUNK_REQUESTS", 1 << 18)
    monkeypatch.setattr(iid, "MAX_CHUNK_REQUESTS", 1 << 18)  # four chunks
    streamed = sim.simulate(route, n, rng=4, destinations=True)
    try:
        assert streamed.destinations is None
        assert streamed.destinations_path is not None
        assert any(streamed.destinations_path in note for note in streamed.notes)
        frame = pl.read_parquet(streamed.destinations_path)
        assert frame.schema == pl.Schema({"backend": pl.UInt8})
        assert kept.destinations is not None
        np.testing.assert_array_equal(frame["backend"].to_numpy(), kept.destinations)
        np.testing.assert_array_equal(streamed.counts, kept.counts)
    finally:
        if streamed.destinations_path:
            os.remove(streamed.destinations_path)


def test_destinations_to_a_named_file(tmp_path: Path) -> None:
    route = Route(root=Cascade.kube_proxy(300))  # 300 backends: uint16
    path = tmp_path / "d.parquet"
    r = sim.simulate(route, 50_000, rng=2, mode="faithful", destinations=path, window=1000)
    ref = sim.simulate(route, 50_000, rng=2, mode="faithful", destinations=True)
    frame = pl.read_parquet(path)
    assert frame.schema == pl.Schema({"backend": pl.UInt16})
    assert ref.destinations is not None
    np.testing.assert_array_equal(frame["backend"].to_numpy(), ref.destinations)
    assert r.window_counts is not None
    assert int(r.window_counts.sum()) == 50_000


def test_interrupted_stream_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iid, "CHUNK_REQUESTS", 1 << 18)
    monkeypatch.setattr(iid, "MAX_CHUNK_REQUESTS", 1 << 18)
    path = tmp_path / "d.parquet"

    def ctrl_c(done: int, total: int) -> None:
        if done > 1 << 18:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.simulate(Weighted.from_weights([1, 1]), 10**7, rng=1, destinations=path, progress=ctrl_c)
    assert not path.exists()


def test_a_failed_second_pass_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Destinations streamed to a temporary file, then the windows pass fails: no file is left behind."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(iid, "MAX_DESTINATIONS", 1000)
    n = 3 * (1 << 18)

    def fail_late(done: int, total: int) -> None:
        if done > n:  # in the windows pass, after the destinations were written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.simulate(Weighted.from_weights([1, 1]), n, rng=1, destinations=True, window=1000, progress=fail_late)
    assert list(tmp_path.iterdir()) == []
    named = tmp_path / "named.parquet"
    with pytest.raises(KeyboardInterrupt):
        sim.simulate(Weighted.from_weights([1, 1]), n, rng=1, destinations=named, window=1000, progress=fail_late)
    assert list(tmp_path.iterdir()) == []


def test_auto_mode_routes_every_request_when_destinations_are_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(iid, "AUTO_PER_REQUEST_LIMIT", 1000)
    counts_only = sim.simulate(Weighted.from_weights([1, 1]), 5000, rng=1)
    assert counts_only.mode == "exact"
    r = sim.simulate(Weighted.from_weights([1, 1]), 5000, rng=1, destinations=tmp_path / "d.parquet")
    assert r.mode == "per_request"
    assert pl.read_parquet(tmp_path / "d.parquet").height == 5000


def test_progress_is_called_up_to_n(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iid, "CHUNK_REQUESTS", 1 << 18)
    monkeypatch.setattr(iid, "MAX_CHUNK_REQUESTS", 1 << 18)
    seen: list[tuple[int, int]] = []

    class Bar:
        closed = False

        def __call__(self, done: int, total: int) -> None:
            seen.append((done, total))

        def close(self) -> None:
            Bar.closed = True

    n = 3 * (1 << 18) + 5
    sim.simulate(Weighted.from_weights([1, 2]), n, rng=1, progress=Bar())
    assert seen == [(1 << 18, n), (2 << 18, n), (3 << 18, n), (n, n)]
    assert Bar.closed
    seen.clear()
    sim.compare([Weighted.from_weights([1, 2]), Cascade.kube_proxy(2)], n, rng=1, progress=Bar(), window=1000)
    assert seen[-1] == (2 * n, 2 * n)
    assert all(b == 2 * n for _, b in seen)
    assert [a for a, _ in seen] == sorted(a for a, _ in seen)


def test_stateful_routes_refuse_a_destinations_file(tmp_path: Path) -> None:
    from meshstat.balancers import Balanced, Random
    from meshstat.errors import InvalidArgument

    route = Weighted.from_weights([1, 1], (Balanced(Random(2), name="a"), Balanced(Random(3), name="b")))
    with pytest.raises(InvalidArgument, match="in memory"):
        sim.simulate(route, 1000, rng=1, destinations=tmp_path / "x.parquet")


def test_destinations_none_is_false() -> None:
    r = sim.simulate(Weighted.from_weights([1, 1]), 1000, rng=1, destinations=None)  # type: ignore[arg-type]
    assert r.destinations is None and r.destinations_path is None
