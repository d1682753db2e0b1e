"""GUI benchmarks: time to first window, 1M records into the Records page and sorting them, atlas
repaint with 50,000 points.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_gui.py [--records 1000000] [--points 50000]

The first-window time is measured in a fresh process (interpreter start to the window shown and
painted once), against a bare PySide6 QMainWindow in the same kind of process as the baseline.
The records are the real catalogue's records repeated to the requested count (the 121k-record
seed when `LENSROUTE_HOME` holds it; synthetic rows otherwise). Every number is measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FIRST_WINDOW = """
import time; t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication
app = QApplication([])
{make}
w.show(); app.processEvents(); w.grab()
print(time.perf_counter() - t0)
import sys; sys.stdout.flush(); import os; os._exit(0)
"""
OURS = "from app.gui.main import MainWindow; w = MainWindow()"
BARE = "from PySide6.QtWidgets import QMainWindow; w = QMainWindow(); w.resize(1280, 820)"


def first_window(make: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", FIRST_WINDOW.format(make=make)], capture_output=True, text=True,
                             cwd=REPO, env={**os.environ}, timeout=120)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def records(n: int) -> pl.DataFrame:
    try:
        from recommender.store import Store
        from recommender.store.export import records_frame

        base = records_frame(Store.open(None))
    except Exception:
        base = pl.DataFrame()
    if base.is_empty():
        rng = np.random.default_rng(0)
        base = pl.DataFrame({"model": [f"org/model-{i % 5000}" for i in range(100_000)],
                             "dataset": [f"dataset-{i % 900}" for i in range(100_000)],
                             "value": rng.random(100_000)})
    reps = -(-n // base.height)
    return pl.concat([base] * reps).head(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=50_000)
    args = parser.parse_args()

    ours, bare = first_window(OURS), first_window(BARE)
    print(f"time to first window: {ours:.2f} s (bare PySide6 window {bare:.2f} s; ratio {ours / bare:.2f}×)   "
          f"target < 2 s: {'met' if ours < 2 else 'NOT met'}")

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.gui.jobs import Job
    from app.gui.main import MainWindow
    from app.gui.pages.recommend import AtlasView

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.resize(1280, 820)
    window.show()
    page = next(p for p in window.pages if p.title == "Records")
    window.nav.setCurrentRow(window.pages.index(page))
    frame = records(args.records)
    started = time.perf_counter()
    page.set_records(frame)
    app.processEvents()
    window.grab()
    load_s = time.perf_counter() - started
    column = page.model.frame.columns.index("value")
    started = time.perf_counter()
    page.model.sort(column, Qt.SortOrder.DescendingOrder)
    app.processEvents()
    window.grab()
    sort_s = time.perf_counter() - started
    started = time.perf_counter()
    frame.sort("value", descending=True)
    polars_s = time.perf_counter() - started
    print(f"{page.model.rowCount():,} records into the Records page: {load_s:.2f} s; sort by value and repaint "
          f"{sort_s:.2f} s (polars sort alone {polars_s:.2f} s)")

    from recommender.atlas import Atlas

    rng = np.random.default_rng(0)
    atlas = Atlas([f"m{i}" for i in range(args.points)], rng.normal(size=(args.points, 2)).astype(np.float32),
                  [f"family{i % 10}" for i in range(args.points)], ["d"], np.zeros((1, 2), np.float32), ["t"])
    view = AtlasView()
    view.resize(800, 600)
    view.show()
    view.set_atlas(atlas)
    app.processEvents()
    times = []
    for _ in range(10):
        started = time.perf_counter()
        view.grab()  # a full repaint of the scene
        times.append((time.perf_counter() - started) * 1000)
    print(f"atlas repaint with {args.points:,} points: median {statistics.median(times):.1f} ms")
    window.close()
    Job.stop_all()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of Qt/pyqtgraph objects (a shiboken refcount crash at exit)


if __name__ == "__main__":
    main()
