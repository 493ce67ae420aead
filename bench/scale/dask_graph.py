"""The baseline of bench/scale: the same graph shapes as Sluice's no-op runs, on Dask's
threaded scheduler (`dask.threaded.get`), timed end to end in this process.

    python dask_graph.py SHAPE TASKS WORKERS   ->  prints one line: seconds

SHAPE is `chain` (each task takes the previous one's result) or `fanout` (all
independent, gathered by one final key, as Sluice's run ends when every task has).
Each task is a call of a Python function that does nothing, so the figure is Dask's own
per-task cost: graph ordering, the ready queue and the thread pool.
"""

import sys
import time

import dask
from dask.threaded import get


def noop(*_):
    return None


def graph(shape, n):
    if shape == "chain":
        dsk = {"t0": (noop,)}
        for i in range(1, n):
            dsk[f"t{i}"] = (noop, f"t{i - 1}")
        return dsk, f"t{n - 1}"
    if shape == "fanout":
        dsk = {f"t{i}": (noop,) for i in range(n)}
        dsk["end"] = (noop, [f"t{i}" for i in range(n)])
        return dsk, "end"
    raise SystemExit(f"unknown shape {shape!r}: use chain or fanout")


def main():
    shape, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dsk, key = graph(shape, n)
    with dask.config.set(num_workers=workers):
        start = time.perf_counter()
        get(dsk, key)
        print(f"{time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
