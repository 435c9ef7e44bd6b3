"""Importers: the OpenAI organization Usage/Costs APIs and CSV files (usage, OpenAI exports,
customers, customer mappings, revenue).

- `csv_import.import_csv(store, path, kind=None)`: any CSV kind, detected from its header.
- `openai_usage.import_openai(store, catalog)`: the admin Usage and Costs APIs.
- `mapping`: project / API key / user -> customer, and re-mapping stored usage.
- `stripe_import` (issue 5): Stripe customers, invoices, credit notes, refunds, fees.
- `usage_rule`: how provider-reported usage and logged usage are kept from adding up.

Every importer validates row by row (`csv_reader.RowError`), writes in one transaction with
its import run, and is idempotent: importing the same file or range twice changes nothing.
"""
