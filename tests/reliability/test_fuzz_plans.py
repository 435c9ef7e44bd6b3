"""Fuzzing the plan loader (walleta.simulator.plans) with adversarial YAML and JSON.

Invariant: every input is either loaded (and then simulates on a small book with integer money,
and round-trips through dumps/loads unchanged) or rejected with a WalletaError whose message says
what is wrong. Never another exception, never a hang or runaway memory.

- A corpus of nasty files in tests/corpus/plans/ (billion laughs, exponent bombs, python tags,
  NaN, duplicate keys, binary, BOM, tabs, ...) plus generated ones (deep nesting, a 5,000-digit
  integer, a 10 MB single line), each run in a child process with a memory cap and a time guard.
- Hypothesis mutations of the bundled plan files (data/plans/*.yaml): a random value replaced by a
  hostile one, keys dropped or added, containers swapped for scalars; and arbitrary text.
"""

from __future__ import annotations

import copy
import json
import queue
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walleta.errors import WalletaError
from walleta.simulator.engine import simulate
from walleta.simulator.plans import dumps_scenario, loads_scenario

from . import workers
from .support import ROOT, SOAK, fork_context, record_figures

CORPUS = ROOT / "tests" / "corpus" / "plans"
BUNDLED = sorted((ROOT / "data" / "plans").glob("*.yaml"))
EXAMPLES = 2_000 if SOAK else 150
MEMORY_CAP = 1_500_000_000
GUARD_SECONDS = 120  # a hang guard, not a speed assertion

GENERATED = {
    "deep-nesting.yaml": lambda: "name: deep\nplans: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "deep-nesting.json": lambda: '{"name": "deep", "plans": ' + "[" * 20_000 + "]" * 20_000 + "}",
    "huge-int.yaml": lambda: "name: big\nplans:\n  - name: Pro\n    allocation: {included: " + "9" * 5_000
    + ", overage_per_1m: '1'}\n",
    "one-mb-line.yaml": lambda: 'name: "' + "x" * 1_000_000 + '"\nplans:\n  - {name: Pro, base_fee: "1.00"}\n',
    "many-plans.yaml": lambda: "name: many\nassignment: {method: cheapest}\nplans:\n"
    + "".join(f"  - {{name: P{i}, base_fee: '{i}.00'}}\n" for i in range(500)),
}
CORPUS_NAMES = sorted(p.name for p in CORPUS.iterdir())
OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large adversarial files made at test time (kept out of the repository)."""
    folder = tmp_path_factory.mktemp("plans")
    for name, make in GENERATED.items():
        (folder / name).write_text(make(), encoding="utf-8")
    return folder


def _run_guarded(path: Path) -> tuple[str, str, str, str]:
    """`workers.try_plan` in a child with a memory cap; a hang or crash becomes an 'other-error'."""
    context = fork_context()
    results = context.Queue()
    child = context.Process(target=workers.try_plan_in_child, args=(str(path), MEMORY_CAP, results))
    child.start()
    try:
        outcome = results.get(timeout=GUARD_SECONDS)
    except queue.Empty:
        outcome = ("other-error", "Hang", f"no answer within {GUARD_SECONDS} s", "")
    child.kill()
    child.join(30)
    return outcome


@pytest.mark.parametrize("name", CORPUS_NAMES + sorted(GENERATED))
def test_nasty_plan_file_is_loaded_or_rejected_clearly(name: str, generated_dir: Path) -> None:
    path = generated_dir / name if name in GENERATED else CORPUS / name
    kind, error_type, message, trace = _run_guarded(path)
    OUTCOMES[name] = kind
    assert kind != "other-error", f"{name}: {error_type}: {message}\n{trace}"
    if kind == "rejected":
        assert message.strip() and "Traceback" not in message, f"{name}: unclear message {message!r}"
    assert not Path("/tmp/walleta-pwned").exists(), "a YAML tag ran a command"
    if name in ("billion-laughs.yaml", "python-object-tag.yaml", "nan-inf.yaml", "negative-prices.yaml", "binary.yaml",
                "exponent-bomb-int.yaml", "exponent-bomb-money.yaml", "deep-nesting.yaml", "deep-nesting.json",
                "huge-int.yaml", "huge-base-fee.yaml"):
        assert kind == "rejected"


def test_record_plan_corpus_figures() -> None:
    """Runs after the corpus tests of this file (pytest keeps file order)."""
    if OUTCOMES:
        record_figures("fuzz.plans.corpus", kind="fuzz", inputs=len(OUTCOMES),
                       loaded=sum(v == "loaded-and-simulated" for v in OUTCOMES.values()),
                       rejected=sum(v == "rejected" for v in OUTCOMES.values()),
                       tracebacks=sum(v == "other-error" for v in OUTCOMES.values()))


# -- hypothesis ---------------------------------------------------------------------------------

HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, -(2**63), 10**30, 1.5, -0.0, "", " ", "0", "-5", "1e400", "-1e-400",
    "NaN", "Infinity", "inf", "0x10", "1_000", "99.999", "0.0000000000001", "1,000.00", "$99", "99 USD",
    "=1+1", "@SUM(A1)", "'; DROP TABLE plans; --", "💸", "\u202e", "a" * 5_000, [], {}, [[]], {"x": {"y": []}},
    "USD", "XXX", "eur", "tokens", "requests", "inf", "graduated", "volume", "cheapest", "rule",
]
_PLAIN = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in BUNDLED]
SMALL = workers.small_usage()


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a nested structure, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(data: Any, draw: Any) -> Any:
    """Apply 1-4 random mutations to a deep copy of `data`."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "duplicate"]))
        if not path:
            if action == "replace":
                data = draw(st.sampled_from(HOSTILE_VALUES))
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES)))
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "name", "tiers", "up_to", "=x", "plans"]))] = draw(st.sampled_from(HOSTILE_VALUES))
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return data


def _serialise(data: Any, fmt: str) -> str | None:
    try:
        return json.dumps(data) if fmt == "json" else yaml.safe_dump(data, allow_unicode=True)
    except (TypeError, ValueError, yaml.YAMLError):
        return None


FIGURES = {"examples": 0, "loaded": 0, "rejected": 0}


def _check_text(text: str, fmt: str) -> None:
    """Load (and simulate) `text`: a WalletaError with a message, or a scenario that round-trips
    and simulates to integer money. Any other exception fails."""
    FIGURES["examples"] += 1
    try:
        scenario = loads_scenario(text, fmt=fmt)
    except WalletaError as exc:
        assert str(exc).strip(), "empty error message"
        FIGURES["rejected"] += 1
        return
    FIGURES["loaded"] += 1
    for again_fmt in ("yaml", "json"):
        assert loads_scenario(dumps_scenario(scenario, fmt=again_fmt), fmt=again_fmt) == scenario
    try:
        result = simulate(scenario, SMALL, None)
    except WalletaError:
        return
    assert all(isinstance(int(v), int) for v in result.cells["revenue_pico"].tolist())


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), fmt=st.sampled_from(["yaml", "json"]))
def test_mutated_plan_files_are_loaded_or_rejected_clearly(data: st.DataObject, fmt: str) -> None:
    base = data.draw(st.sampled_from(_PLAIN))
    mutated = _mutate(base, data.draw)
    text = _serialise(mutated, fmt)
    if text is not None:
        _check_text(text, fmt)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=400), fmt=st.sampled_from(["yaml", "json"]))
def test_arbitrary_text_is_rejected_or_loaded(text: str, fmt: str) -> None:
    _check_text(text, fmt)


def test_record_plan_fuzz_figures() -> None:
    """Runs after the two property tests in this file (pytest keeps file order)."""
    if FIGURES["examples"]:
        record_figures("fuzz.plans.hypothesis", kind="fuzz", inputs=FIGURES["examples"], loaded=FIGURES["loaded"],
                       rejected=FIGURES["rejected"])
