"""`walleta mapping`: which customer each OpenAI project, API key or user belongs to."""

from __future__ import annotations

import argparse

from ..exact_merge import merge_filled
from ..sources.csv_import import import_csv
from ..sources.mapping import MAPPING_SOURCES, delete_mapping, mapping_overview, remap_provider_events, set_mappings
from .common import FORMATS, print_frame, store_from_args
from .import_csv import print_report

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `mapping` command group."""
    parser = commands.add_parser("mapping", help="map OpenAI projects, API keys and users to customers")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="keys seen in OpenAI usage with their customer ('(unmapped)' if none)")
    listing.add_argument("--openai", action="store_true", help="also list projects and API keys from the OpenAI admin API")
    listing.add_argument("--format", choices=FORMATS, default="table", help="csv gives a template for `mapping import`")
    listing.set_defaults(handler=run_list)

    setter = actions.add_parser("set", help="map one key to a customer")
    setter.add_argument("source", choices=MAPPING_SOURCES + ("project", "api_key", "user"), help="what the key is")
    setter.add_argument("key", help="the project id, API key id or user id")
    setter.add_argument("customer_id", help="the customer it belongs to")
    setter.set_defaults(handler=run_set)

    remove = actions.add_parser("remove", help="remove one mapping (its usage becomes '(unmapped)')")
    remove.add_argument("source")
    remove.add_argument("key")
    remove.set_defaults(handler=run_remove)

    load = actions.add_parser("import", help="import a mapping CSV (source,key,customer_id)")
    load.add_argument("file", metavar="FILE")
    load.add_argument("--errors", metavar="PATH", help="where to write rejected rows")
    load.set_defaults(handler=run_import)


def run_list(args: argparse.Namespace) -> int:
    """Print every known key with its customer and usage."""
    store = store_from_args(args)
    table = mapping_overview(store)
    if args.openai:
        from ..sources.openai_usage import list_projects_and_keys

        listed = list_projects_and_keys()
        fill = {"name": "", "project_id": "", "owner": "", "customer_id": "(unmapped)", "usage_goes_to": "", "requests": 0, "cost_usd": "0.00", "unpriced_events": 0}
        table = merge_filled(listed, table, ["source", "key"], "outer", fill).fillna({c: v for c, v in fill.items() if isinstance(v, str)})
    if args.format == "csv":
        template = table.assign(customer_id=table["customer_id"].where(table["customer_id"] != "(unmapped)", ""))
        print_frame(template.loc[:, ["source", "key", "customer_id", *[c for c in template.columns if c not in ("source", "key", "customer_id")]]], "csv")
    else:
        print_frame(table, args.format)
    return 0


def run_set(args: argparse.Namespace) -> int:
    """Map one key and re-map stored usage."""
    store = store_from_args(args)
    with store.transaction() as cur:
        changed = set_mappings(store, [(args.source, args.key, args.customer_id)], cur=cur)
        remapped = remap_provider_events(store, cur=cur) if changed else 0
    print(f"mapping: {args.key} -> {args.customer_id} ({'unchanged' if not changed else f'{remapped:,} usage rows re-mapped'})")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Remove one mapping and re-map stored usage."""
    store = store_from_args(args)
    with store.transaction() as cur:
        existed = delete_mapping(store, args.source, args.key, cur=cur)
        remapped = remap_provider_events(store, cur=cur) if existed else 0
    print(f"mapping: {args.key} {'removed' if existed else 'was not mapped'}; {remapped:,} usage rows re-mapped")
    return 0 if existed else 1


def run_import(args: argparse.Namespace) -> int:
    """Same as `walleta import csv FILE --kind mapping`."""
    store = store_from_args(args)
    return print_report(import_csv(store, args.file, kind="mapping", error_path=args.errors))
