"""The BG/NBD population fit: churnml's scipy maximum likelihood against PyMC-Marketing's MAP fit.

PyMC-Marketing is not a churnml dependency; run this with an interpreter that has both, e.g.
    python -m venv /tmp/pm && /tmp/pm/bin/pip install pymc-marketing
    PYTHONPATH=src /tmp/pm/bin/python benchmarks/btyd.py
(churnml.features.btyd needs only numpy and scipy, so it imports without the rest of churnml.)
"""

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# load the module by path: importing the churnml package would pull in its other dependencies
_spec = importlib.util.spec_from_file_location("btyd", Path(__file__).parents[1] / "src/churnml/features/btyd.py")
btyd = importlib.util.module_from_spec(_spec)
sys.modules["btyd"] = btyd
_spec.loader.exec_module(btyd)


def main() -> None:
    started = time.perf_counter()
    from pymc_marketing.clv import BetaGeoModel
    print(f"import pymc_marketing: {time.perf_counter() - started:.1f} s", flush=True)
    true = btyd.BgNbd(r=0.5, alpha=20.0, a=0.8, b=2.5)
    for n in (5_000, 200_000):
        ages = np.random.default_rng(1).integers(30, 400, n).astype(float)
        sim = btyd.simulate(true, ages, horizon=30, seed=2)
        # whole days, as churnml summarises: the distinct triples carry a weight each
        frame = pd.DataFrame({"customer_id": np.arange(n), "frequency": sim["x"],
                              "recency": np.floor(sim["t_x"]), "T": ages})
        started = time.perf_counter()
        triples = frame.groupby(["frequency", "recency", "T"]).size().reset_index(name="w")
        fitted = btyd.fit(triples["frequency"], triples["recency"], triples["T"], triples["w"])
        print(f"n={n} scipy ML ({len(triples)} distinct triples): {time.perf_counter() - started:.2f} s {fitted}", flush=True)
        started = time.perf_counter()
        model = BetaGeoModel(data=frame)
        model.fit(method="map")
        print(f"n={n} PyMC-Marketing BetaGeoModel MAP: {time.perf_counter() - started:.1f} s", flush=True)
        print(model.fit_summary(), flush=True)


if __name__ == "__main__":
    main()
