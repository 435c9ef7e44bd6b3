"""`walleta simulate PLAN.yaml`: re-run the book's real usage under a pricing scenario.

Prints the summary table (per plan and in total: revenue, AI cost, margin, change against today
or against another scenario, who pays more or less, who hits a cap), optionally the solver's
prices for a target margin, cost-side what-ifs and bootstrap ranges; writes per-customer results
as CSV and the plans as Stripe Price JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import load_catalog
from ..errors import InputError
from ..fx import load_fx
from ..money import format_usd
from ..simulator.engine import UsageData, prepare, simulate
from ..simulator.loader import load_usage
from ..simulator.plans import load_scenario
from ..simulator.ranges import METHOD, bootstrap
from ..simulator.report import (
    caps_frame,
    caps_table,
    cells_frame,
    customers_frame,
    ranges_frame,
    ranges_table,
    solution_table,
    totals_frame,
    totals_table,
    usd,
    whatif_frame,
    whatif_table,
)
from ..simulator.solver import default_knob, margin_curve, solve
from ..simulator.stripe_export import scenario_prices, scenario_summary
from ..simulator.whatif import apply_what_ifs, dominant_models, load_what_ifs
from .common import FORMATS, print_frame, store_from_args


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("simulate", help="re-run real usage under a pricing scenario (plan file)")
    parser.add_argument("plan", metavar="PLAN.yaml", help="scenario file (.yaml/.yml or .json)")
    parser.add_argument("--against", default="current", metavar="current|OTHER.yaml", help="compare with today's revenue (default) or another scenario file")
    parser.add_argument("--target-margin", metavar="0.6", help="solve each plan's main price for this gross margin (fraction)")
    parser.add_argument("--solve", action="append", default=[], metavar="PLAN.PATH", help="price to solve, e.g. Pro.base_fee or Starter.allocation.overage_per_1m (repeatable; default: each plan's main price)")
    parser.add_argument("--curve", action="store_true", help="with --target-margin: print margin against price for each solved price")
    parser.add_argument("--what-if", metavar="FILE.yaml", help="cost-side what-ifs to apply to history before simulating")
    parser.add_argument("--ranges", action="store_true", help="bootstrap intervals for the totals")
    parser.add_argument("--from", dest="start", metavar="YYYY-MM", help="first month (default: first month with usage)")
    parser.add_argument("--to", dest="end", metavar="YYYY-MM", help="last month (default: last month with usage)")
    parser.add_argument("--out", metavar="results.csv", help="write per-customer results as CSV")
    parser.add_argument("--per-month", action="store_true", help="with --out: one row per customer per month")
    parser.add_argument("--stripe-json", nargs="?", const="-", metavar="PATH", help="write the plans as Stripe Price parameters (JSON; '-' or no value: stdout)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="format of the summary table")
    parser.set_defaults(handler=run)


def _month(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit() or not 1 <= int(text[5:]) <= 12:
        raise InputError(f"{flag}: expected YYYY-MM, got {value!r}")
    return text


def _fraction(value: str) -> Decimal:
    try:
        result = Decimal(value)
    except InvalidOperation as exc:
        raise InputError(f"--target-margin: not a number: {value!r}") from exc
    if not result.is_finite() or result >= 1:
        raise InputError("--target-margin: give a fraction below 1, e.g. 0.6 for 60%")
    return result


def _against(data: UsageData, other_path: str, fx: Any) -> tuple[UsageData, str]:
    """Replace the baseline with another scenario's revenue and served cost."""
    other = simulate(load_scenario(other_path), prepare(data), fx)
    base = other.cells[["customer_id", "month", "revenue_pico", "ai_cost_pico"]].rename(columns={"revenue_pico": "baseline_revenue_pico", "ai_cost_pico": "baseline_cost_pico"})
    cells = data.cells.drop(columns=[c for c in ("baseline_revenue_pico", "baseline_cost_pico") if c in data.cells.columns])
    cells = cells.merge(base, on=["customer_id", "month"], how="left")
    cells["baseline_revenue_pico"] = pd.array([int(v) for v in cells["baseline_revenue_pico"]], dtype="Int64")
    cells["baseline_cost_pico"] = np.array([int(v) for v in cells["baseline_cost_pico"]], dtype=np.int64)
    label = Path(other_path).stem
    return UsageData(cells=cells, by_model=data.by_model, by_feature=data.by_feature, months=data.months, notes=data.notes), label


def _split_knob(spec: str, plans: list[str]) -> tuple[str, str | None]:
    """'Pro.allocation.overage_per_1m' -> ('Pro', 'allocation.overage_per_1m'); the longest plan
    name that prefixes the spec wins, so plan names may contain dots."""
    for name in sorted(plans, key=len, reverse=True):
        if spec == name:
            return name, None
        if spec.startswith(f"{name}."):
            return name, spec[len(name) + 1 :]
    raise InputError(f"--solve {spec}: start with a plan name ({', '.join(plans)}), e.g. {plans[0]}.base_fee")


class _Output:
    """Prints sections as tables for people; `--format json` gathers them into one JSON object;
    `--format csv` prints the totals table only (one CSV document)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.sections: dict[str, Any] = {}

    def section(self, key: str, title: str, table: pd.DataFrame, machine: pd.DataFrame | None = None) -> None:
        if self.fmt == "table":
            print(f"\n{title}")
            print_frame(table, "table")
        elif self.fmt == "json":
            frame = table if machine is None else machine
            self.sections[key] = json.loads(frame.to_json(orient="records", default_handler=str))
        elif key == "totals":
            print_frame(machine if machine is not None else table, "csv")

    def text(self, line: str) -> None:
        if self.fmt == "table":
            print(line)

    def finish(self, notes: list[str]) -> None:
        if self.fmt == "json":
            print(json.dumps({**self.sections, "notes": notes}, indent=2))
        elif self.fmt == "table" and notes:
            print("\nNotes:")
            for note in notes:
                print(f"- {note}")


def _apply_what_ifs(args: argparse.Namespace, store: Any, data: UsageData, out: _Output, notes: list[str]) -> UsageData:
    """Re-price history with the what-if file; print the impact (and its range)."""
    what_ifs = load_what_ifs(args.what_if)
    applied = apply_what_ifs(data, what_ifs, load_catalog(), dominant=dominant_models(store, data.months[0], data.months[-1]))
    notes.extend(applied.notes)
    out.section("what_ifs", "Cost what-ifs applied to history (margin against today's revenue):", whatif_table(applied.summary), whatif_frame(applied.summary))
    if args.ranges:
        spread = bootstrap(applied.cells, ("delta_pico",), margin=None)
        out.section("what_if_range", f"Range of the combined AI cost change (90%; {METHOD}):", ranges_table(spread), ranges_frame(spread))
    return applied.data


def _solve_prices(args: argparse.Namespace, scenario: Any, book: Any, result: Any, target: Decimal, fx: Any, out: _Output) -> None:
    """Solve each requested (or each plan's main) price for the target margin; optional curves."""
    names = [p.name for p in scenario.plans]
    wanted = args.solve or [f"{p.name}.{default_knob(p)}" for p in scenario.plans if (result.cells["plan"] == p.name).any()]
    solutions = []
    for spec in wanted:
        plan_name, path = _split_knob(spec, names)
        solutions.append(solve(scenario, book, plan_name, path, target=target, fx=fx))
    table, footnotes = solution_table(solutions)
    out.section("prices", f"Prices for a {target * 100:.0f}% gross margin (book; median, p90, p95 customer; break-even), assignment held fixed:", table)
    for footnote in footnotes:
        out.text(f"  n/a {footnote}")
    if args.curve:
        for s in solutions:
            curve = margin_curve(scenario, book, s.plan, s.path, fx=fx, target=target)
            shown = curve.assign(revenue=curve["revenue_pico"].map(format_usd), ai_cost=curve["ai_cost_pico"].map(format_usd)).drop(columns=["revenue_pico", "ai_cost_pico"])
            machine = curve.assign(revenue_usd=curve["revenue_pico"].map(usd), ai_cost_usd=curve["ai_cost_pico"].map(usd)).drop(columns=["revenue_pico", "ai_cost_pico"])
            out.section(f"curve {s.plan}.{s.path}", f"Margin against {s.plan}.{s.path}:", shown, machine)


def _write_files(args: argparse.Namespace, scenario: Any, result: Any, out: _Output) -> None:
    if args.out:
        frame = cells_frame(result) if args.per_month else customers_frame(result)
        frame.to_csv(args.out, index=False)
        out.text(f"\nwrote {len(frame):,} rows to {args.out}")
    if args.stripe_json:
        Path(args.stripe_json).write_text(json.dumps(scenario_prices(scenario), indent=2) + "\n", encoding="utf-8")
        out.text(f"wrote Stripe Price parameters to {args.stripe_json}")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.plan)
    start, end = _month(args.start, "--from"), _month(args.end, "--to")
    target = _fraction(args.target_margin) if args.target_margin is not None else None
    if args.stripe_json == "-":
        print(json.dumps(scenario_prices(scenario), indent=2))
        return 0
    out = _Output(args.format)
    store = store_from_args(args)
    fx = load_fx()
    data = load_usage(store, start=start, end=end, fx=fx)
    if data.cells.empty:
        print("simulate: no usage or revenue in the database for these months", file=sys.stderr)
        return 1
    notes = list(data.notes)
    if args.what_if:
        data = _apply_what_ifs(args, store, data, out, notes)
    label = "today"
    if args.against != "current":
        data, label = _against(data, args.against, fx)
    book = prepare(data)
    result = simulate(scenario, book, fx)
    out.text(scenario_summary(scenario))
    out.text(f"\n{result.scenario.name}: {len(result.customers)} customers, {result.months[0]} to {result.months[-1]} ({len(result.months)} months), against {label}")
    out.section("totals", "Summary:", totals_table(result, label), totals_frame(result))
    if (result.customers["capped_months"] > 0).any():
        out.section("caps", "Customers who hit a hard cap (usage beyond it not served; day estimated from the month's pace):", caps_table(result), caps_frame(result))
    if args.ranges:
        intervals = bootstrap(result.cells)
        out.section("ranges", f"Ranges (90%; {METHOD}):", ranges_table(intervals), ranges_frame(intervals))
    if target is not None:
        _solve_prices(args, scenario, book, result, target, fx, out)
    _write_files(args, scenario, result, out)
    out.finish(list(dict.fromkeys([*notes, *result.notes])))
    return 0
