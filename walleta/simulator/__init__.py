"""The pricing simulator: re-run real monthly usage under any pricing design.

Modules: `plans` (the plan model and its YAML/JSON files), `tiers` (Stripe price arithmetic),
`credits` (credit ledgers), `engine` (vectorised simulation), `loader` (engine input from a
Store), `solver` (prices that reach a target margin), `whatif` (cost-side what-ifs), `ranges`
(bootstrap intervals), `stripe_export` (Stripe Price JSON and plan summaries), `reference`
(a plain per-customer implementation used to check the engine and as the bench baseline).
"""

from .engine import SimulationResult, UsageData, prepare, simulate
from .plans import PlanError, Scenario, load_scenario, save_scenario

__all__ = ["PlanError", "Scenario", "SimulationResult", "UsageData", "load_scenario", "prepare", "save_scenario", "simulate"]
