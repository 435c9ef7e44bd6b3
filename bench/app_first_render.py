"""First render of every app page on the demo data set, measured server-side with AppTest.

For each page: the time of its first run on a cold process cache (what a visitor waits for on a
freshly started server, after the Python imports), and of a second, warm run. The baseline,
measured in the same run, is an empty Streamlit script under the same harness (the framework's
own cost per run). Target: every first render under 2 s on the demo data set.

    python bench/app_first_render.py           # every page, 3 repeats, median
    python bench/app_first_render.py --quick   # every page once
    python bench/app_first_render.py --db sqlite:///data/walleta.db
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ["app.py", *sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))]
TARGET_S = 2.0


def _timed_run(script: str | None, page: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("import streamlit as st\nst.write('hi')") if script is None else AppTest.from_file(script, default_timeout=120)
    if page is None:
        started, cpu = time.perf_counter(), time.process_time()
        at.run()
        elapsed = time.perf_counter() - started
    else:
        at.run()  # land on the Overview first, as a visitor would; then time the page
        if page != "app.py":
            import streamlit as st

            st.cache_data.clear()
            started, cpu = time.perf_counter(), time.process_time()
            at.switch_page(page).run()
        else:
            import streamlit as st

            st.cache_data.clear()
            started, cpu = time.perf_counter(), time.process_time()
            at.run()
        elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].value}")
    return elapsed, cpu


def _warm(page: str) -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    if page != "app.py":
        at.switch_page(page).run()
    started = time.perf_counter()
    at.run()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per page")
    parser.add_argument("--db", help="database URL (default: a fresh demo database in a temp folder)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    import streamlit as st

    from walleta.catalog import PRICE_COLUMNS
    from walleta.demo import build_demo
    from walleta.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="walleta-bench-"))
    url = args.db
    if not url:
        url = f"sqlite:///{folder / 'demo.db'}"
        started = time.perf_counter()
        build_demo(open_store(url))
        print(f"demo data set built in {time.perf_counter() - started:.1f} s")
    overrides = folder / "prices.override.csv"
    overrides.write_text(",".join(PRICE_COLUMNS) + "\n")
    os.environ.update(WALLETA_DATABASE_URL=url, WALLETA_DEMO_DATABASE_URL=url, WALLETA_PRICE_OVERRIDES=str(overrides), WALLETA_DEBUG="1")

    base_runs = [_timed_run(None, None) for _ in range(max(repeats, 3))]
    baseline = statistics.median(w for w, _ in base_runs)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times grow with it; CPU times do not)")
    print(f"baseline (empty Streamlit script, same harness): {baseline * 1000:.0f} ms\n")
    print(f"{'page':<34}{'first render':>14}{'(CPU)':>10}{'warm rerun':>12}{'x baseline':>12}  target < {TARGET_S:.0f} s")
    worst = worst_cpu = 0.0
    for page in PAGES:
        cold = []
        for _ in range(repeats):
            st.cache_data.clear()
            st.cache_resource.clear()
            cold.append(_timed_run(str(ROOT / "app.py"), page))
        first = statistics.median(w for w, _ in cold)
        cpu = statistics.median(c for _, c in cold)
        warm = _warm(page)
        worst, worst_cpu = max(worst, first), max(worst_cpu, cpu)
        flag = "ok" if first < TARGET_S else "SLOW"
        print(f"{page:<34}{first * 1000:>11.0f} ms{cpu * 1000:>7.0f} ms{warm * 1000:>9.0f} ms{first / baseline:>11.1f}x  {flag}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if not args.db:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nslowest first render: {worst:.2f} s wall, {worst_cpu:.2f} s CPU "
          f"({'within' if worst < TARGET_S else 'OVER'} the {TARGET_S:.0f} s target on wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
