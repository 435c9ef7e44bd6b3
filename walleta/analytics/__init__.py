"""Analytics: who is profitable, and why. Pure functions over a Store returning tidy DataFrames.

One concept per module: `margins` (per customer, health tiers), `breakdowns` (per feature, model,
plan; revenue allocation), `trends`, `forecast`, `anomalies`, `concentration`, `cohorts`,
`reconciliation` (estimate vs the OpenAI bill). Every query reads rollups and the small revenue,
customer and billed-cost tables, never raw usage events (except the single-customer drill-down
helpers). Money is integer pico-dollars (`*_pico`) until `display.with_usd` adds `*_usd` columns.
"""

from __future__ import annotations

from .period import Period

__all__ = ["Period"]
