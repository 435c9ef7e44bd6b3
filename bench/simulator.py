"""Bench: the pricing simulator on 10,000 customers x 12 months x 6 plans.

Run from the repo root: `python bench/simulator.py` (default sizes) or `--quick` (small).
Generates a synthetic book (heavy-tailed usage, three models per customer-month, seats, current
plans), builds a scenario of six plans that exercises every mechanism (flat fee, allocation with
overage, graduated tiers, volume tiers + seats, credits with rollover and packs, cost-plus with a
minimum and a hard cap) with assignment "cheapest", so every plan is evaluated for every
customer-month. Times the vectorised engine (`simulate`) and, in the same run, the plain
per-customer Python loop (`walleta.simulator.reference`) over the same data, and checks that
both give identical revenue, cost and plan choice for every customer-month.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from walleta.money import format_usd  # noqa: E402
from walleta.simulator.engine import UsageData, money_for, prepare, simulate  # noqa: E402
from walleta.simulator.plans import loads_scenario  # noqa: E402
from walleta.simulator.reference import simulate_reference  # noqa: E402

MODELS = {  # model -> (pico-dollars per uncached input, cached input, output token)
    "gpt-5.4": (2_500_000, 250_000, 15_000_000),
    "gpt-5.4-mini": (750_000, 75_000, 4_500_000),
    "o4-mini": (1_100_000, 275_000, 4_400_000),
}

SCENARIO = """
name: Bench, six plans, cheapest for each customer
currency: USD
assignment: {method: cheapest}
plans:
  - name: Flat
    base_fee: "99.00"
  - name: Allocation
    base_fee: "29.00"
    allocation: {included: 6000000, overage_per_1m: "3.00"}
  - name: Graduated
    meters:
      - name: tokens
        measure: tokens
        tiers_mode: graduated
        tiers:
          - {up_to: 1000000, unit_amount_decimal: "0", flat_amount: 1900}
          - {up_to: 20000000, unit_amount_decimal: "0.0003"}
          - {up_to: inf, unit_amount_decimal: "0.0002"}
  - name: Volume and seats
    seats: {price: "8.00", included: 2}
    meters:
      - name: output
        measure: output_tokens
        tiers_mode: volume
        tiers:
          - {up_to: 500000, unit_amount_decimal: "0.002"}
          - {up_to: 5000000, unit_amount_decimal: "0.0015"}
          - {up_to: inf, unit_amount_decimal: "0.001"}
  - name: Credits
    base_fee: "49.00"
    credits:
      included: 5000
      included_expiry_months: 2
      burn_by: model
      burn:
        - {match: "gpt-5.4-mini", per_1k: {input: "0.15", cached_input: "0.015", output: "0.9"}}
        - {match: "gpt-5.4", per_1k: {input: "0.5", cached_input: "0.05", output: "3"}}
        - {match: "*", cost_multiplier: "2"}
      credit_value_usd: "0.01"
      pack: {credits: 2000, price: "20.00"}
      purchased_expiry_months: 6
  - name: Cost plus
    payg: {markup_pct: "55"}
    minimum: {amount: "39.00", period_months: 3}
    cap: {measure: ai_cost_usd, limit: "400.00"}
"""


def generate(customers: int, months: int, seed: int = 11) -> UsageData:
    """A synthetic book: every customer active in most months, three models each month."""
    rng = np.random.default_rng(seed)
    month_names = [f"{2025 + (m // 12)}-{m % 12 + 1:02d}" for m in range(months)]
    scale = rng.lognormal(15.0, 1.1, customers)  # tokens per month: median ~3.3M, heavy tail
    active = rng.random((customers, months)) < 0.92
    active[:, 0] = True
    cust_idx, month_idx = np.nonzero(active)
    n = len(cust_idx)
    ids = np.array([f"cus_{i:05d}" for i in range(customers)], dtype=object)
    plans = rng.choice(["Starter", "Pro", "Business"], customers, p=[0.5, 0.35, 0.15])
    seats = rng.integers(1, 30, customers)
    rows = []
    for k, (model, _) in enumerate(MODELS.items()):
        share = rng.dirichlet([3, 2, 1.5], n)[:, k]
        tokens = (scale[cust_idx] * rng.lognormal(0, 0.4, n) * share).astype(np.int64)
        inputs = tokens * 9 // 10
        cached = (inputs * rng.uniform(0, 0.6, n)).astype(np.int64)
        outputs = tokens - inputs
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids[cust_idx],
                    "month": np.array(month_names, dtype=object)[month_idx],
                    "model": model,
                    "requests": np.maximum(tokens // 4000, 1),
                    "input_tokens": inputs,
                    "cached_input_tokens": cached,
                    "output_tokens": outputs,
                    "cost_pico": (inputs - cached) * MODELS[model][0] + cached * MODELS[model][1] + outputs * MODELS[model][2],
                }
            )
        )
    by_model = pd.concat(rows, ignore_index=True)
    cells = by_model.groupby(["customer_id", "month"], as_index=False)[["requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost_pico"]].sum()
    codes = cells["customer_id"].str[4:].astype(int).to_numpy()
    cells["current_plan"] = plans[codes]
    cells["seats"] = seats[codes]
    cells["baseline_revenue_pico"] = pd.Series(pd.array(np.select([plans[codes] == "Starter", plans[codes] == "Pro"], [29, 99], 499) * 10**12, dtype="Int64"))
    return UsageData(cells=cells, by_model=by_model, months=tuple(month_names))


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall time and median CPU time of this process over `repeat` runs, and the last result.

    CPU time is shown because the bench machine may be shared: other processes inflate wall time.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (300 customers)")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    customers = args.customers or (300 if args.quick else 10_000)
    scenario = loads_scenario(SCENARIO)
    data = generate(customers, args.months)
    money = money_for("USD", None)
    print(f"book: {customers:,} customers x {args.months} months = {len(data.cells):,} active customer-months, "
          f"{len(data.by_model):,} rows by model; {len(scenario.plans)} plans, assignment 'cheapest' (every plan on every customer-month)")
    prepare_time, prepare_cpu, book = timed(lambda: prepare(data), args.repeat)
    engine_time, engine_cpu, result = timed(lambda: simulate(scenario, book), args.repeat)
    print(f"vectorised: prepare {prepare_time * 1000:,.0f} ms + simulate {engine_time * 1000:,.0f} ms "
          f"= {(prepare_time + engine_time) * 1000:,.0f} ms wall (CPU: {prepare_cpu * 1000:,.0f} + {engine_cpu * 1000:,.0f} ms; median of {args.repeat})")
    started, cpu = time.perf_counter(), time.process_time()
    reference = simulate_reference(scenario, data, money)
    loop_time, loop_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"per-customer Python loop (same data, same rules): {loop_time:,.2f} s wall (CPU {loop_cpu:,.2f} s; 1 run)")
    print(f"speed-up: {loop_time / engine_time:,.0f}x on simulate, {loop_time / (prepare_time + engine_time):,.0f}x including prepare (wall); "
          f"{loop_cpu / engine_cpu:,.0f}x and {loop_cpu / (prepare_cpu + engine_cpu):,.0f}x (CPU)")
    cells = result.cells  # type: ignore[attr-defined]
    mismatches = 0
    for customer, month, plan, revenue, cost in zip(cells["customer_id"], cells["month"], cells["plan"], cells["revenue_minor"], cells["ai_cost_pico"]):
        expected = reference[(customer, month)]
        if (plan, int(revenue), int(cost)) != (expected["plan"], expected["revenue_minor"], expected["cost_pico"]):
            mismatches += 1
    print(f"identical results: {len(cells) - mismatches:,} of {len(cells):,} customer-months match the loop")
    totals = result.totals  # type: ignore[attr-defined]
    shown = totals.assign(revenue=totals["revenue_pico"].map(format_usd), ai_cost=totals["ai_cost_pico"].map(format_usd))
    print(shown[["plan", "customers", "revenue", "ai_cost", "margin_pct"]].to_string(index=False))
    target = 1.0
    wall, cpu_total = prepare_time + engine_time, prepare_cpu + engine_cpu
    print(f"target: prepare + simulate <= {target:.1f} s at 10,000 x 12 x 6 -> wall {wall:.3f} s "
          f"({'meets' if wall <= target else 'MISSES'}), CPU {cpu_total:.3f} s ({'meets' if cpu_total <= target else 'MISSES'}) "
          f"at {customers:,} customers; load average during the run {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
