"""`walleta report customers|features|models|trends|reconciliation`: analytics for cron and scripts.

Every report takes `--from` / `--to` (YYYY-MM, YYYY-MM-DD or YYYY-Qn; default: the latest
complete month) and `--format table|csv|json`. Machine formats name money with its unit
(`revenue_usd`, `ai_cost_usd`, `margin_usd`, ...: exact decimals, two places, six for unit costs)
and percentages as `*_pct`. Unpriced usage has its own columns (`unpriced_requests`,
`unpriced_tokens`) and a warning line on stderr; it is never folded in as $0. Revenue in a
currency without an FX rate is listed in `unconverted_revenue` with a warning on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any, TextIO

import pandas as pd

from ..analytics.anomalies import customer_anomalies
from ..analytics.breakdowns import Allocation, feature_breakdown, model_breakdown, plan_breakdown
from ..analytics.cohorts import cohort_margins, margin_distribution
from ..analytics.display import with_usd
from ..analytics.margins import HealthThresholds, customer_margins, tier_summary
from ..analytics.period import Period, latest_complete_month
from ..analytics.reconciliation import reconcile, reconciliation_summary, unpriced_models
from ..analytics.trends import DIMENSIONS, GRAINS, trend
from ..catalog import load_catalog
from ..errors import InputError
from ..fx import load_fx
from ..money import format_usd
from ..store import Store
from .common import FORMATS, store_from_args

__all__ = ["register", "write_frame"]

REPORTS = ("customers", "features", "models", "trends", "reconciliation")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="margin, cost and reconciliation reports (table, CSV or JSON)")
    parser.add_argument("report", choices=REPORTS, help="which report")
    parser.add_argument("--from", dest="start", metavar="DATE", help="first day or month (YYYY-MM[-DD] or YYYY-Qn)")
    parser.add_argument("--to", dest="end", metavar="DATE", help="last day or month (inclusive)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument(
        "--by",
        help="customers: plan|cohort|tier|distribution|anomalies; trends: model|feature|customer|plan; "
        "reconciliation: comma list of day,project,line_item (default all three) or 'summary'",
    )
    parser.add_argument("--grain", choices=GRAINS, default="day", help="trends: bucket size (default day)")
    parser.add_argument("--top", type=int, default=10, help="trends by customer: customers with their own series (default 10)")
    parser.add_argument("--allocation", default="cost_share",
                        help="features: cost_share (default), request_share, or weights:feature=w,feature=w")
    parser.add_argument("--thresholds", default="50,20,0", help="customers: healthy,moderate,at-risk margin %% (default 50,20,0)")
    parser.set_defaults(handler=run)


def _period(args: argparse.Namespace, store: Store) -> Period:
    month = latest_complete_month(store)
    default = Period.month(month) if month else Period.days("1970-01-01", "1970-01-01")
    return Period.parse(args.start, args.end, default=default)


def _thresholds(text: str) -> HealthThresholds:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise InputError("--thresholds takes three percentages: healthy,moderate,at-risk (e.g. 50,20,0)")
    try:
        return HealthThresholds.from_percentages(*parts)
    except ArithmeticError as exc:
        raise InputError(f"--thresholds: not numbers: {text!r}") from exc


def _customers(store: Store, period: Period, args: argparse.Namespace) -> pd.DataFrame:
    fx, thresholds = load_fx(), _thresholds(args.thresholds)
    by = (args.by or "").strip()
    if by == "plan":
        return plan_breakdown(store, period, fx)
    if by == "cohort":
        return cohort_margins(store, period, fx, by="cohort_plan", thresholds=thresholds)
    if by == "tier":
        return tier_summary(customer_margins(store, period, fx, thresholds=thresholds, with_history=False))
    if by == "distribution":
        return margin_distribution(store, period, fx, by="plan")
    if by == "anomalies":
        return customer_anomalies(store, as_of=period.last_day)
    if by:
        raise InputError("customers --by takes plan, cohort, tier, distribution or anomalies")
    return customer_margins(store, period, fx, thresholds=thresholds)


def _trends(store: Store, period: Period, args: argparse.Namespace) -> pd.DataFrame:
    by = (args.by or "").strip() or None
    if by is not None and by not in DIMENSIONS:
        raise InputError(f"trends --by takes one of {', '.join(DIMENSIONS)}")
    return trend(store, period, grain=args.grain, by=by, top=args.top if args.top > 0 else None)


def _reconciliation(store: Store, period: Period, args: argparse.Namespace) -> pd.DataFrame:
    catalog = load_catalog()
    if (args.by or "").strip() == "summary":
        return reconciliation_summary(store, period, catalog)
    names = {"day": "day", "project": "project_id", "project_id": "project_id", "line_item": "line_item", "line": "line_item"}
    chosen = [p.strip() for p in (args.by or "day,project,line_item").split(",") if p.strip()]
    if any(c not in names for c in chosen):
        raise InputError("reconciliation --by takes day, project and/or line_item (comma separated), or summary")
    return reconcile(store, period, catalog, by=tuple(dict.fromkeys(names[c] for c in chosen)))


def build_report(store: Store, name: str, period: Period, args: argparse.Namespace) -> pd.DataFrame:
    """The frame (money in pico) of one report."""
    if name == "customers":
        return _customers(store, period, args)
    if name == "features":
        return feature_breakdown(store, period, load_fx(), Allocation.parse(args.allocation))
    if name == "models":
        return model_breakdown(store, period)
    if name == "trends":
        return _trends(store, period, args)
    return _reconciliation(store, period, args)


def _warnings(store: Store, name: str, period: Period, frame: pd.DataFrame) -> list[str]:
    lines = []
    if "unpriced_requests" in frame.columns and int(frame["unpriced_requests"].sum()) > 0:
        models = unpriced_models(store, period)
        detail = f" (models: {', '.join(models['model'])})" if not models.empty else ""
        tokens = int(frame["unpriced_tokens"].sum()) if "unpriced_tokens" in frame.columns else 0
        lines.append(f"warning: {int(frame['unpriced_requests'].sum()):,} requests ({tokens:,} tokens) could not be priced and "
                     f"are not in ai_cost_usd{detail}; see unpriced_requests / unpriced_tokens")
    if "unconverted_revenue" in frame.columns:
        texts = sorted({t for t in frame["unconverted_revenue"] if t})
        if texts:
            lines.append(f"warning: revenue in currencies without an FX rate is not in revenue_usd: {'; '.join(texts[:5])}"
                         f"{' ...' if len(texts) > 5 else ''} (add rates to data/fx_rates.csv or $WALLETA_FX_RATES)")
    return lines


def _export(frame: pd.DataFrame) -> pd.DataFrame:
    out = with_usd(frame, drop_pico=True)
    return out.rename(columns={c: c.replace("_pct_share", "_share_pct") for c in out.columns})


def _json_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "null"
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))


def write_frame(frame: pd.DataFrame, fmt: str, out: TextIO) -> None:
    """Table, CSV or JSON records; Decimals are written exactly (JSON numbers, not floats)."""
    if fmt == "csv":
        frame.to_csv(out, index=False)
        return
    if fmt == "json":
        records = []
        columns = list(frame.columns)
        for row in frame.itertuples(index=False, name=None):
            body = ", ".join(f"{json.dumps(c)}: {_json_value(None if _is_na(v) else v)}" for c, v in zip(columns, row))
            records.append("  {" + body + "}")
        out.write("[\n" + ",\n".join(records) + ("\n" if records else "") + "]\n")
        return
    out.write(frame.to_string(index=False) if not frame.empty else "(no rows)")
    out.write("\n")


def _is_na(value: Any) -> bool:
    if value is None or isinstance(value, (str, Decimal, bool, int)):
        return value is None
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _header(store: Store, name: str, period: Period, args: argparse.Namespace) -> list[str]:
    if name != "reconciliation" or (args.by or "") == "summary":
        return [f"{name} report, {period.label()}"]
    summary = reconciliation_summary(store, period)
    amounts = dict(zip(summary["component"], summary["amount_pico"]))
    lines = [f"reconciliation, {period.label()}: billed {format_usd(amounts.get('billed (OpenAI Costs API)'))}, "
             f"estimated {format_usd(amounts.get('estimated from usage'))}, "
             f"unattributed remainder {format_usd(amounts.get('unattributed remainder'))}"]
    lines += [f"  {c}: {e}" for c, e in zip(summary["component"], summary["explanation"])]
    return lines


def run(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    period = _period(args, store)
    frame = build_report(store, args.report, period, args)
    for line in _warnings(store, args.report, period, frame):
        print(line, file=sys.stderr)
    if args.format == "table":
        for line in _header(store, args.report, period, args):
            print(line)
    write_frame(_export(frame), args.format, sys.stdout)
    return 0
