"""Every numeric argument of every command, from 0 to huge: an answer or a one-line refusal, in bounded time and memory.

The property: a command given any value of one numeric argument (the others
small and valid) either answers (exit 0) or refuses in one line (exit 2 or 3,
exactly one line on standard error, starting ``meshstat: error:``), never a
traceback or an internal error, within :data:`TIME_BOUND` seconds of wall
clock and under :data:`MEMORY_LIMIT` bytes of address space.

The values are drawn by hypothesis (derandomized, :data:`EXAMPLES` of them):
0, negative, fractions, ``inf``, ``nan``, ``1e30``, integers beyond 2**63,
tiny positive numbers, empty and non-numeric text, and random integers and
floats; list arguments (``--weights``, ``--observed``, ...) get lists of them.
A flag whose work is linear in its value by design (``-n``: a run of 10**10
requests takes the time of 10**10 requests) is not drawn above
:data:`LINEAR_CAP` with a valid value: what is bounded there is the rate, not
the time.

Each command runs in one long-lived worker process (``bounds_worker.py``)
through :func:`meshstat.cli.main`, under ``RLIMIT_AS``: heavy imports and
numba kernels are paid once, and a command that exhausts the memory limit
gets a ``MemoryError`` (an internal error: the property fails) or kills the
worker (it fails too, and a fresh worker is started).

:data:`CASES` holds the cases reported in the wild, as explicit regression
tests.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
WORKER = Path(__file__).resolve().parent / "bounds_worker.py"

#: Address space of the worker (RLIMIT_AS), bytes.
MEMORY_LIMIT = 4 << 30
#: Wall-clock seconds one command may take (the worker is killed after :data:`HARD_KILL`).
TIME_BOUND = 15.0
HARD_KILL = 30.0
#: Drawn examples in CI (``MESHSTAT_BOUNDS_EXAMPLES`` overrides).
EXAMPLES = 200
#: Largest valid value drawn for a flag whose work is linear in it by design.
LINEAR_CAP = 1e9


# --------------------------------------------------------------------------- the flags


@dataclass(frozen=True)
class Flag:
    """One numeric option of one command, with the small valid arguments around it."""

    command: str
    base: tuple[str, ...]
    flag: str
    listed: bool = False  # the value is a comma-separated list
    linear: bool = False  # work linear in the value by design: no valid value above LINEAR_CAP
    form: str = "{}"  # how the value is written ("geometric:{}")
    valid: str = "2"  # a value the command answers with (checked: the draws explore the answering path)

    @property
    def id(self) -> str:
        return f"{self.command} {self.flag}"


_SIM = ("simulate", "--weights", "90,10", "-q")
_RR = ("simulate", "--lb", "round-robin", "--endpoints", "3", "-n", "1000", "-q")
_LR = ("simulate", "--lb", "least-request", "--endpoints", "3", "-n", "1000", "-q")
_RH = ("simulate", "--lb", "ring-hash", "--endpoints", "3", "-n", "1000", "-q")
_CONN = ("simulate", "--weights", "1,1", "--endpoints", "3", "-n", "1000", "-q")
_CMP = ("compare", "--weights", "90,10", "--kube-proxy-endpoints", "3", "-n", "1000", "-q")
_BANDS = ("bands", "--weights", "90,10", "-n", "1000", "--sim-windows", "100")
_CANARY = ("canary", "--steps", "1,5,50", "--qps", "100", "--interval", "60")

FLAGS: tuple[Flag, ...] = (
    Flag("simulate", _SIM, "-n", linear=True),
    Flag("simulate", _SIM + ("-n", "1e5"), "--window"),
    Flag("simulate", _SIM + ("-n", "1e5"), "--seed"),
    Flag("simulate", _SIM + ("-n", "1e5", "--mode", "per-request"), "--threads"),
    Flag("simulate", ("simulate", "-n", "1e5", "-q"), "--kube-proxy-endpoints"),
    Flag("simulate", ("simulate", "-n", "1e5", "-q"), "--weights", listed=True),
    Flag("simulate", ("simulate", "-n", "1e5", "-q"), "--cascade", listed=True, valid="0.5,1"),
    Flag("simulate", _RR[:-3] + ("-q",), "-n", linear=True),
    Flag("simulate", _RR[:3] + _RR[5:], "--endpoints", listed=True),
    Flag("simulate", _RR, "--workers"),
    Flag("simulate", _RR, "--endpoint-weights", listed=True, valid="1,2,3"),
    Flag("simulate", _LR, "--choice-count"),
    Flag("simulate", _LR, "--active-request-bias"),
    Flag("simulate", _LR, "--arrival-rate"),
    Flag("simulate", _LR, "--servers", listed=True),
    Flag("simulate", _RH, "--keys"),
    Flag("simulate", _RH, "--zipf"),
    Flag("simulate", _RH, "--ring-min"),
    Flag("simulate", _RH, "--ring-max", valid="2048"),
    Flag("simulate", ("simulate", "--lb", "maglev", "--endpoints", "3", "-n", "1000", "-q"), "--table-size"),
    Flag("simulate", _CONN, "--requests-per-connection"),
    Flag("simulate", _CONN, "--requests-per-connection", form="geometric:{}"),
    Flag("simulate", _CONN, "--clients"),
    Flag("simulate", _CONN + ("--requests-per-connection", "geometric:10"), "--replicates", linear=True),
    Flag("simulate", _CONN + ("--affinity", "client-ip"), "--connection-rate"),
    Flag("simulate", _CONN + ("--affinity", "client-ip"), "--affinity-timeout"),
    Flag("compare", _CMP[:-3] + ("-q",), "-n", linear=True),
    Flag("compare", ("compare", "--weights", "90,10", "-n", "1000", "-q"), "--kube-proxy-endpoints"),
    Flag("compare", _CMP, "--window"),
    Flag("cascade", ("cascade",), "--kube-proxy-endpoints"),
    Flag("cascade", ("cascade",), "--weights", listed=True),
    Flag("cascade", ("cascade",), "--cascade", listed=True, valid="0.5,1"),
    Flag("check", ("check", "--weights", "90,10"), "--observed", listed=True, valid="900,100"),
    Flag("check", ("check", "--observed", "900,100"), "--weights", listed=True, valid="90,10"),
    Flag("check", ("check", "--weights", "90,10", "--observed", "900,100"), "--alpha", valid="0.05"),
    Flag("check", ("check", "--weights", "90,10", "--observed", "900,100"), "--exact-limit"),
    Flag("check", ("check", "--weights", "90,10", "--observed", "900,100"), "--alternative", listed=True,
         valid="80,20"),
    Flag("plan", ("plan", "--weights", "90,10"), "--tolerance", valid="0.01"),
    Flag("plan", ("plan", "--weights", "90,10"), "--min-hits"),
    Flag("plan", ("plan", "--weights", "90,10", "--tolerance", "0.01"), "--confidence", valid="0.9"),
    Flag("plan", ("plan", "--weights", "90,10", "--min-hits", "10"), "--probability", valid="0.9"),
    Flag("plan", ("plan", "--weights", "90,10", "--detect", "80,20"), "--power", valid="0.9"),
    Flag("plan", ("plan", "--weights", "90,10", "--detect", "80,20"), "--alpha", valid="0.05"),
    Flag("plan", ("plan", "--weights", "90,10"), "--detect", listed=True, valid="80,20"),
    Flag("plan", ("plan", "--tolerance", "0.01"), "--weights", listed=True, valid="90,10"),
    Flag("plan", ("plan", "--weights", "90,10", "--tolerance", "0.01"), "--qps"),
    Flag("bands", _BANDS[:3] + _BANDS[5:], "-n", linear=True),
    Flag("bands", _BANDS[:3] + ("--sim-windows", "100", "--qps", "10"), "--seconds"),
    Flag("bands", _BANDS[:3] + ("--sim-windows", "100", "--seconds", "60"), "--qps"),
    Flag("bands", _BANDS, "--within", valid="0.05"),
    Flag("bands", _BANDS, "--levels", listed=True, valid="0.9,0.99"),
    Flag("bands", _BANDS[:5], "--sim-windows", linear=True),
    Flag("bands", ("bands", "-n", "1000", "--sim-windows", "100"), "--weights", listed=True),
    Flag("canary", _CANARY[:3] + _CANARY[5:], "--qps"),
    Flag("canary", _CANARY[:5], "--interval"),
    Flag("canary", _CANARY, "--error-rate", valid="0.01"),
    Flag("canary", _CANARY, "--detect-error-rate", valid="0.05"),
    Flag("canary", _CANARY, "--power", valid="0.9"),
    Flag("canary", _CANARY, "--alpha", valid="0.05"),
    Flag("canary", _CANARY[:1] + _CANARY[3:], "--steps", listed=True),
    Flag("mesh", ("mesh", "-f", str(DATA / "istio-demo"), "--client", "istio-demo/front-tomcat-v1", "-q"),
         "-n", linear=True),
    Flag("envoy-route", ("envoy-route", "--config-dump", str(DATA / "envoy" / "istio-demo-front-tomcat-config_dump.json"),
                         "--host", "bill-service.istio-demo.svc.cluster.local", "-n", "1000", "-q"), "--port"),
    Flag("envoy-route", ("envoy-route", "--config-dump", str(DATA / "envoy" / "istio-demo-front-tomcat-config_dump.json"),
                         "--host", "bill-service.istio-demo.svc.cluster.local", "--port", "9999", "-q"), "-n",
         linear=True),
    Flag("trace", ("trace", "--iptables", str(DATA / "iptables" / "kube-proxy-iptables-overall.iptables-save"),
                   "--dst", "172.30.0.41:80"), "--sport"),
    Flag("trace", ("trace", "--iptables", str(DATA / "iptables" / "kube-proxy-iptables-overall.iptables-save"),
                   "--dst", "172.30.0.41:80"), "--mark"),
)  # fmt: skip

#: Values as a user types them: the edges of every domain.
EXTREMES = (
    "0", "-0", "1", "-1", "2", "0.5", "-0.5", "1.5", "1e-6", "1e-300", "5e-324", "inf", "-inf", "nan",
    "1e6", "1e9", "1e10", "1e30", "1e308", "1e309", "4294967295", "4294967296", "9223372036854775807",
    "9223372036854775808", "18446744073709551616", "99999999999999999999999", "1_000_000", "0x10", "1e",
    "", " ", "x", "1,2",
)  # fmt: skip

_number = st.one_of(
    st.sampled_from(EXTREMES),
    st.integers(0, 100).map(str),
    st.floats(0, 1).map(repr),
    st.integers(-(10**6), 10**7).map(str),
    st.integers(2**31, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
)


def _value(flag: Flag) -> st.SearchStrategy[str]:
    if flag.listed:
        return st.lists(_number, min_size=1, max_size=4).map(",".join)
    return _number


def _as_float(text: str) -> float | None:
    try:
        return float(text.replace("_", ""))
    except ValueError:
        return None


def _option(flag: str, value: str) -> str:
    """``--flag=value`` (``-nvalue``): one word, so that a value starting with ``-`` is a value, not an option."""
    return f"{flag}={value}" if flag.startswith("--") else f"{flag}{value}"


def _too_much_linear_work(flag: Flag, value: str) -> bool:
    """A valid value above :data:`LINEAR_CAP` for a flag whose work is linear in it: not drawn."""
    if not flag.linear:
        return False
    v = _as_float(value)
    return v is not None and math.isfinite(v) and LINEAR_CAP < v < 2**63


# --------------------------------------------------------------------------- the worker


class Worker:
    """The long-lived process that runs commands under the memory limit (see ``bounds_worker.py``)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env.pop("MESHSTAT_TIMING", None)
        # glibc reserves 64 MiB of address space per thread arena: on a many-core machine numba's threads alone
        # would approach RLIMIT_AS; two arenas keep the limit about the memory meshstat uses
        env["MALLOC_ARENA_MAX"] = "2"
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(MEMORY_LIMIT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        self.proc = proc
        # warm up: heavy imports and the kernels most commands use, outside any time bound
        for argv in (
            ["simulate", "--weights", "90,10", "-n", "1e5", "--mode", "per-request", "-q"],
            ["simulate", "--lb", "round-robin", "--endpoints", "3", "-n", "1000", "-q"],
            ["check", "--weights", "90,10", "--observed", "900,100"],
            ["bands", "--weights", "90,10", "-n", "1000", "--sim-windows", "100"],
        ):
            self._ask(argv, 300.0)
        return proc

    def _ask(self, argv: list[str], timeout: float) -> dict | str:
        proc = self.proc if self.proc is not None else self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(argv) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return f"no answer within {timeout:g} s (worker killed)"
        line = proc.stdout.readline()
        if not line:
            rc = proc.wait()
            self.stop()
            return f"the worker died (status {rc}: {'signal ' + str(-rc) if rc < 0 else 'exit'})"
        return json.loads(line)

    def run(self, argv: list[str]) -> dict | str:
        """The answer to one command line, or why there is none."""
        if self.proc is None:
            self._start()
        return self._ask(argv, HARD_KILL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.proc = None


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    try:
        yield w
    finally:
        w.stop()


def check_answer(argv: list[str], answer: dict | str) -> None:
    """The property: exit 0, or exit 2/3 with one ``meshstat: error:`` line; in time; no traceback."""
    shown = " ".join(argv)
    assert isinstance(answer, dict), f"{shown}: {answer}"
    err = answer["stderr"]
    assert answer["rc"] in (0, 2, 3), f"{shown}: exit {answer['rc']}: {err[-600:]}"
    assert "Traceback" not in err and "internal error" not in err, f"{shown}: {err[-600:]}"
    if answer["rc"] != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("meshstat: error: "), f"{shown}: not one line: {err!r}"
    assert answer["seconds"] <= TIME_BOUND, f"{shown}: took {answer['seconds']:.1f} s"


# --------------------------------------------------------------------------- the property


def _budget() -> int:
    return int(os.environ.get("MESHSTAT_BOUNDS_EXAMPLES", EXAMPLES))


def test_flags_are_current() -> None:
    """Every flag of the table exists on its command (a renamed flag must not silently test nothing)."""
    from meshstat.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for f in FLAGS:
        cmd = sub.choices[f.command]  # type: ignore[index]
        assert f.flag in cmd._option_string_actions, f.id


@pytest.mark.parametrize("flag", FLAGS, ids=[f.id + (f" {f.form}" if f.form != "{}" else "") for f in FLAGS])
def test_each_flag_answers_a_valid_value(worker: Worker, flag: Flag) -> None:
    """The base command with a valid value answers: what is drawn reaches the computation, not only the checks."""
    argv = [*flag.base, _option(flag.flag, flag.form.format(flag.valid))]
    answer = worker.run(argv)
    assert isinstance(answer, dict) and answer["rc"] == 0, f"{' '.join(argv)}: {answer}"


@settings(
    max_examples=_budget(),
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing command is the report
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_numeric_arguments_are_answered_or_refused_in_one_line(worker: Worker, data: st.DataObject) -> None:
    flag = data.draw(st.sampled_from(FLAGS), label="flag")
    value = data.draw(_value(flag).filter(lambda v: not _too_much_linear_work(flag, v)), label="value")
    argv = [*flag.base, _option(flag.flag, flag.form.format(value))]
    note(" ".join(argv))
    answer = worker.run(argv)
    if os.environ.get("MESHSTAT_BOUNDS_LOG"):
        with open(os.environ["MESHSTAT_BOUNDS_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": argv, "answer": answer}) + "\n")
    check_answer(argv, answer)


# --------------------------------------------------------------------------- the cases reported


@dataclass(frozen=True)
class Case:
    """A command line reported to hang, exhaust memory or crash; files are made by ``setup(tmp_path)``."""

    name: str
    argv: tuple[str, ...]
    setup: Callable[[Path], None] | None = field(default=None, compare=False)


def _numgen_nft(tmp: Path) -> None:
    """kube-proxy's nftables dump with one service split by ``numgen random mod 4294967295`` in two ranges."""
    text = (DATA / "iptables" / "kube-proxy-nftables-overall.nft").read_text()
    out, n = re.subn(
        r"numgen random mod 2 vmap \{ 0 : goto (\S+) , 1 : goto (\S+) \}",
        r"numgen random mod 4294967295 vmap { 0-2147483646 : goto \1 , 2147483647-4294967294 : goto \2 }",
        text,
    )
    assert n == 1
    (tmp / "numgen.nft").write_text(out)


def _huge_counters(tmp: Path) -> None:
    """``iptables-save -c`` of a 3-endpoint service with every counter at 2**64-1."""
    text = (DATA / "iptables" / "listings" / "kube-proxy-3ep-counters.nat.iptables-save-c").read_text()
    (tmp / "huge.iptables-save-c").write_text(re.sub(r"(?m)^\[\d+:\d+\]", f"[{2**64 - 1}:{2**64 - 1}]", text))


def _regex_manifests(tmp: Path) -> None:
    """The istio-demo manifests with a header match ``regex: "(a+)+b"`` in front of the weighted route."""
    for p in (DATA / "istio-demo").glob("*.yaml"):
        (tmp / p.name).write_text(p.read_text())
    (tmp / "bill-service-virtualservice.yaml").write_text(
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n"
        "metadata: {name: vs-bill-service, namespace: istio-demo}\n"
        "spec:\n  hosts: [bill-service]\n  http:\n"
        "  - name: by-header\n    match:\n    - headers:\n        end-user: {regex: '(a+)+b'}\n"
        "    route:\n    - destination: {host: bill-service, subset: v2}\n"
        "  - name: rest\n    route:\n    - destination: {host: bill-service, subset: v1}\n"
    )


CASES: tuple[Case, ...] = (
    Case("cascade of 4,000 endpoints", ("cascade", "--kube-proxy-endpoints", "4000")),
    Case("cascade of 10,000 endpoints", ("cascade", "--kube-proxy-endpoints", "10000")),
    Case("plan --tolerance 1e-4", ("plan", "--weights", "90,10", "--tolerance", "1e-4")),
    Case("plan --tolerance 1e-6", ("plan", "--weights", "90,10", "--tolerance", "1e-6")),
    Case("geometric:5e17", (*_CONN, "--requests-per-connection", "geometric:5e17")),
    Case("geometric:1e25", (*_CONN, "--requests-per-connection", "geometric:1e25")),
    Case("--keys 1e8", (*_RH, "--keys", "1e8")),
    Case("--clients 1e8 with hash-source-ip", (*_CONN, "--affinity", "hash-source-ip", "--clients", "1e8")),
    Case("--threads 1000", (*_SIM, "-n", "1e6", "--mode", "per-request", "--threads", "1000")),
    Case("--choice-count 1e6", (*_LR, "--choice-count", "1e6")),  # idle shares uniform without the n**2 sum
    Case("check --observed 1e23", ("check", "--weights", "90,10", "--observed", "99999999999999999999999,1")),
    Case("check counters of 2**64-1", ("check", "--iptables", "{tmp}/huge.iptables-save-c", "--service", "default/web"), setup=_huge_counters),
    Case("services with numgen mod 4294967295", ("services", "--nft", "{tmp}/numgen.nft"), setup=_numgen_nft),
    Case("trace through numgen mod 4294967295", ("trace", "--nft", "{tmp}/numgen.nft", "--dst", "172.30.0.44:80"), setup=_numgen_nft),
    Case("Istio regex (a+)+b on 30 characters",
         ("mesh", "-f", "{tmp}", "--client", "istio-demo/front-tomcat-v1", "-n", "1000", "-q",
          "--header", "end-user=" + "a" * 30 + "c"), setup=_regex_manifests),
    Case("simulate -n 1e30", (*_SIM, "-n", "1e30")),
    Case("--endpoints 1e10", (*_RR[:3], "--endpoints", "1e10", *_RR[5:])),
    Case("--workers 1e9", (*_RR, "--workers", "1e9")),
    Case("--servers 4294967296", (*_LR, "--servers", "4294967296")),
    Case("--servers 2**63", (*_LR, "--servers", str(2**63))),
    Case("--servers 2**63,1,1", (*_LR, "--servers", f"{2**63},1,1")),
    Case("canary --power 1e-6", (*_CANARY, "--power", "1e-6")),
    Case("simulate --window 1 -n 1e9", (*_SIM, "-n", "1e9", "--window", "1")),
    Case("bands --sim-windows 1e9", (*_BANDS[:5], "--sim-windows", "1e9")),
)  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reported_case(worker: Worker, case: Case, tmp_path: Path) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    check_answer(argv, worker.run(argv))
