"""Explanation benchmark: churnml's exact TreeSHAP against XGBoost's `pred_contribs` and others.

One XGBoost binary:logistic model (300 trees, depth 6, 60 features of which one native
categorical, ~5% NaNs; synthetic data, fixed seed) and one set of rows. Contenders, each in its own
process (so memory and thread pools do not mix; 2 threads for everyone), each timed once after a
warm-up on a few rows:

  xgb_contribs        booster.predict(DMatrix, pred_contribs=True)   (the reference values; DMatrix
                      construction timed separately, not included)
  churnml             churnml.explain.treeshap.shap_values on the float array (model compile and the numba
                      warm-up reported separately)
  shap_treeexplainer  shap.TreeExplainer(booster).shap_values
  fasttreeshap        fasttreeshap_fixed.TreeExplainer(booster, algorithm="v2", n_jobs=2)
                      (its additivity check off: v2 mishandles missing values, its diff is reported)
  fasttreeshap_v1     the same, algorithm="v1"
  woodelf             woodelf.WoodelfExplainer(booster).shap_values (path-dependent)
  predict             booster.predict(DMatrix) -- plain scoring, for scale

Every contender's values are compared with pred_contribs on all rows (max abs diff).

    python benchmarks/explain.py                  # 1,000,000 rows, every contender on all of them
    python benchmarks/explain.py --reference-rows 20000
                                                  # 1M rows for churnml and predict; the slow explainers
                                                  # on 20,000 rows, their time scaled to 1M
    python benchmarks/explain.py --rows 20000     # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "explain"
RESULTS = HERE / "results"
FEATURES, TREES, DEPTH, CAT, N_CATS, THREADS = 60, 300, 6, 7, 24, 2
TRAIN_ROWS, TRAIN_SEED, ROWS_SEED = 100_000, 11, 12
WARMUP_ROWS = 64
# with --reference-rows, churnml's values are checked against pred_contribs on this many rows
CHECK_ROWS = 20_000
# per-row cost does not depend on the row count for these, so a smaller run scales linearly
SLOW = ("xgb_contribs", "shap_treeexplainer", "fasttreeshap", "fasttreeshap_v1", "woodelf")
THREAD_ENV = {"OMP_NUM_THREADS": str(THREADS), "NUMBA_NUM_THREADS": str(THREADS),
              "OPENBLAS_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


# ---------------------------------------------------------------- data and model


def make_rows(n: int, seed: int):
    """(n, 60) float64: 59 numeric features (~5% NaN), feature 7 a category code in [0, 24)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, FEATURES))
    x[:, CAT] = rng.integers(0, N_CATS, n)
    x[rng.random((n, FEATURES)) < 0.05] = np.nan
    return x


def make_labels(x, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    z = np.nan_to_num(x)
    coef = rng.normal(0, 0.6, FEATURES)
    logit = np.tanh(z) @ coef
    logit += 0.8 * z[:, 0] * z[:, 1] - 0.6 * np.abs(z[:, 2]) + 0.5 * (z[:, 3] > 0.5) * z[:, 4]
    logit += np.where(np.isin(x[:, CAT], [1, 3, 5, 11, 17, 19]), 1.0, -0.4)
    logit += np.where(np.isnan(x[:, 5]), 0.7, 0.0)
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.float32)


VARIANT = "categorical"  # set per child process: "categorical" (feature 7 native) or "numeric"


def feature_types() -> list[str]:
    return ["c" if j == CAT and VARIANT == "categorical" else "q" for j in range(FEATURES)]


def model_path() -> Path:
    """Train (once) and cache the benchmark model."""
    path = DATA / f"model_{VARIANT}_t{TREES}_d{DEPTH}_f{FEATURES}_s{TRAIN_SEED}.ubj"
    if not path.exists():
        import xgboost as xgb

        DATA.mkdir(parents=True, exist_ok=True)
        x = make_rows(TRAIN_ROWS, TRAIN_SEED)
        d = xgb.DMatrix(x, make_labels(x, TRAIN_SEED), feature_types=feature_types(), enable_categorical=True)
        params = {"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.1, "min_child_weight": 1,
                  "subsample": 0.8, "colsample_bytree": 0.8, "max_cat_to_onehot": 1, "tree_method": "hist",
                  "nthread": THREADS, "seed": TRAIN_SEED}
        booster = xgb.train(params, d, TREES)
        booster.save_model(str(path))
    return path


def load_booster():
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model_path()))
    booster.set_param({"nthread": THREADS})
    return booster


def dmatrix(x):
    import xgboost as xgb

    return xgb.DMatrix(x, feature_types=feature_types(), enable_categorical=True, nthread=THREADS)


def frame(x):
    """The rows as a DataFrame (explainers that want one), the categorical column as category."""
    import pandas as pd

    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(FEATURES)])
    if VARIANT == "categorical":
        codes = df[f"f{CAT}"]
        df[f"f{CAT}"] = pd.Categorical.from_codes(codes.fillna(-1).astype(int), categories=list(range(N_CATS)))
    return df


def reference_path(rows: int) -> Path:
    return DATA / f"contribs_{model_path().stem}_{rows}.npy"


# ---------------------------------------------------------------- contenders (child processes)


def run_xgb_contribs(rows: int) -> dict:
    import numpy as np

    booster = load_booster()
    x = make_rows(rows, ROWS_SEED)
    booster.predict(dmatrix(x[:WARMUP_ROWS]), pred_contribs=True)
    started = time.perf_counter()
    d = dmatrix(x)
    build = time.perf_counter() - started
    started = time.perf_counter()
    contribs = booster.predict(d, pred_contribs=True)
    seconds = time.perf_counter() - started
    np.save(reference_path(rows), contribs)
    margin = booster.predict(d, output_margin=True)
    return {"seconds": seconds, "dmatrix_s": build,
            "additivity_gap": float(np.abs(contribs.sum(1, dtype=np.float64) - margin).max())}


def run_predict(rows: int) -> dict:
    booster = load_booster()
    x = make_rows(rows, ROWS_SEED)
    booster.predict(dmatrix(x[:WARMUP_ROWS]))
    d = dmatrix(x)
    started = time.perf_counter()
    booster.predict(d)
    return {"seconds": time.perf_counter() - started}


def run_churnml(rows: int) -> dict:
    from churnml.explain import treeshap

    booster = load_booster()
    x = make_rows(rows, ROWS_SEED)
    started = time.perf_counter()
    model = treeshap.compile_model(booster)
    tables = time.perf_counter() - started
    started = time.perf_counter()
    treeshap.shap_values(model, x[:WARMUP_ROWS], n_threads=THREADS)
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    values = treeshap.shap_values(model, x, n_threads=THREADS)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "model_compile_s": tables, "numba_warmup_s": warmup,
            "table_mb": model.table.nbytes / 2**20, "values": values}


def run_shap(rows: int) -> dict:
    import shap

    booster = load_booster()
    x = make_rows(rows, ROWS_SEED)  # a float array: shap builds the DMatrix from the booster's feature types
    explainer = shap.TreeExplainer(booster)
    explainer.shap_values(x[:WARMUP_ROWS])
    started = time.perf_counter()
    values = explainer.shap_values(x)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "values": values, "bias": explainer.expected_value}


def run_fasttreeshap(rows: int, algorithm: str = "v2") -> dict:
    import fasttreeshap_fixed as fasttreeshap

    booster = load_booster()
    x = frame(make_rows(rows, ROWS_SEED))
    explainer = fasttreeshap.TreeExplainer(booster, algorithm=algorithm, n_jobs=THREADS)
    # its additivity check would stop v2, which mishandles missing values; the diff is reported instead
    explainer.shap_values(x.iloc[:WARMUP_ROWS], check_additivity=False)
    started = time.perf_counter()
    values = explainer.shap_values(x, check_additivity=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "values": values, "bias": explainer.expected_value}


def run_fasttreeshap_v1(rows: int) -> dict:
    return run_fasttreeshap(rows, "v1")


def run_woodelf(rows: int) -> dict:
    from woodelf import WoodelfExplainer

    booster = load_booster()
    x = frame(make_rows(rows, ROWS_SEED))
    explainer = WoodelfExplainer(booster)
    explainer.shap_values(x.iloc[:WARMUP_ROWS], verbose=False)
    started = time.perf_counter()
    values = explainer.shap_values(x, verbose=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "values": values}


CONTENDERS = {"xgb_contribs": run_xgb_contribs, "churnml": run_churnml, "shap_treeexplainer": run_shap,
              "fasttreeshap": run_fasttreeshap, "fasttreeshap_v1": run_fasttreeshap_v1, "woodelf": run_woodelf,
              "predict": run_predict}


def child(part: str, rows: int) -> dict:
    import numpy as np

    result = CONTENDERS[part](rows)
    values = result.pop("values", None)
    bias = result.pop("bias", None)
    if values is not None and not reference_path(rows).exists():
        # no pred_contribs run at this size (--reference-rows): check the first CHECK_ROWS rows here
        check = min(rows, CHECK_ROWS)
        ref = load_booster().predict(dmatrix(make_rows(rows, ROWS_SEED)[:check]), pred_contribs=True)
        result["max_abs_diff"] = _max_abs_diff(np.asarray(values)[:check], ref)
        result["max_abs_diff_rows"] = check
    elif values is not None:
        ref = np.load(reference_path(rows), mmap_mode="r")
        values = np.asarray(values)
        if values.shape[1] == FEATURES:  # no bias column: compare the features, check the bias apart
            result["max_abs_diff"] = _max_abs_diff(values, ref[:, :FEATURES])
            if bias is not None:
                result["bias_diff"] = float(abs(float(np.ravel(bias)[0]) - float(ref[0, FEATURES])))
        else:
            result["max_abs_diff"] = _max_abs_diff(values, ref)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _max_abs_diff(a, b, chunk: int = 100_000) -> float:
    import numpy as np

    return float(max(np.abs(np.asarray(a[i:i + chunk], np.float64) - np.asarray(b[i:i + chunk], np.float64)).max()
                     for i in range(0, len(a), chunk)))


# ---------------------------------------------------------------- orchestration

SECONDS_KEYS = {"churnml": "churnml_s", "xgb_contribs": "xgb_contribs_s", "shap_treeexplainer": "shap_treeexplainer_s",
                "fasttreeshap": "fasttreeshap_s", "fasttreeshap_v1": "fasttreeshap_v1_s", "woodelf": "woodelf_s",
                "predict": "predict_s"}
PACKAGES = {"fasttreeshap": "fasttreeshap_fixed", "fasttreeshap_v1": "fasttreeshap_fixed", "woodelf": "woodelf"}


def measure(part: str, rows: int, variant: str) -> dict:
    env = {**os.environ, **THREAD_ENV}
    proc = subprocess.run([sys.executable, __file__, "--part", part, "--rows", str(rows), "--variants", variant],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1][:300] if lines else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


SKIP_NOTES = {
    "shap_treeexplainer": "for an XGBoost Booster, shap.TreeExplainer.shap_values calls booster.predict("
                          "pred_contribs=True): identical values (max diff 0) and time within noise at 20,000 rows",
    "fasttreeshap": "ignores XGBoost categorical splits (and v2 mishandles missing values): "
                    "wrong values at 20,000 rows",
    "fasttreeshap_v1": "ignores XGBoost categorical splits: wrong values at 20,000 rows",
    "woodelf": "woodelf does not support trees with categorical splits",
}


def skipped(part: str, variant: str, skip: list[str]) -> bool:
    return part in skip or f"{variant}:{part}" in skip


def run_variant(variant: str, rows: int, parts: list[str], skip: list[str] = (),
                reference_rows: int | None = None) -> dict:
    """Every contender on `rows` rows; with `reference_rows`, the slow ones (SLOW) run on that many
    rows and their time is scaled to `rows` (recorded as `<name>_measured_rows`)."""
    global VARIANT
    VARIANT = variant
    model_path()  # train once, outside any timing
    small = min(rows, reference_rows or rows)
    if "xgb_contribs" in parts or not reference_path(small).exists():  # the reference comes first
        parts = ["xgb_contribs", *[p for p in parts if p != "xgb_contribs"]]
    runs = {}
    for part in parts:
        at = small if part in SLOW else rows
        if part != "xgb_contribs" and skipped(part, variant, skip):
            note = SKIP_NOTES.get(part, "")
            runs[part] = {"error": f"skipped (--skip) at {at:,} rows" + (f"; {note}" if note else "")}
        elif part in PACKAGES and not installed(PACKAGES[part]):
            runs[part] = {"error": f"not installed ({PACKAGES[part]})"}
        else:
            runs[part] = measure(part, at, variant)
            if at != rows and "seconds" in runs[part]:
                runs[part]["measured_rows"], runs[part]["measured_s"] = at, runs[part]["seconds"]
                runs[part]["seconds"] *= rows / at
        print(f"  [{variant}] {part}: {runs[part]}", file=sys.stderr, flush=True)
    return summarise(variant, rows, runs)


def summarise(variant: str, rows: int, runs: dict) -> dict:
    result = {"variant": variant, "rows": rows, "features": FEATURES, "trees": TREES, "depth": DEPTH,
              "threads": THREADS,
              "categorical_features": 1 if variant == "categorical" else 0}
    for part, key in SECONDS_KEYS.items():
        r = runs.get(part)
        if r is None:
            result[key] = None
            result[key[:-2] + "_reason"] = "not run (--only)"
        elif "error" in r:
            result[key] = None
            result[key[:-2] + "_reason"] = "not measured: " + r["error"]
        else:
            result[key] = round(r["seconds"], 3)
            if "measured_rows" in r:
                result[key[:-2] + "_measured_rows"] = r["measured_rows"]
                result[key[:-2] + "_measured_s"] = round(r["measured_s"], 3)
            if "max_abs_diff" in r and part != "churnml":
                result[key[:-2] + "_max_abs_diff"] = r["max_abs_diff"]
    c = runs.get("churnml", {})
    result["churnml_compile_s"] = round(c["numba_warmup_s"], 3) if "numba_warmup_s" in c else None
    result["churnml_model_compile_s"] = round(c["model_compile_s"], 3) if "model_compile_s" in c else None
    result["churnml_table_mb"] = round(c["table_mb"], 1) if "table_mb" in c else None
    result["max_abs_diff"] = c.get("max_abs_diff")
    result["max_abs_diff_rows"] = c.get("max_abs_diff_rows", rows)
    x = runs.get("xgb_contribs", {})
    result["xgb_dmatrix_s"] = round(x["dmatrix_s"], 3) if "dmatrix_s" in x else None
    result["xgb_additivity_gap"] = x.get("additivity_gap")
    ref, churn = result["xgb_contribs_s"], result["churnml_s"]
    result["speedup_vs_xgb_contribs"] = round(ref / churn, 2) if ref and churn else None
    for part in ("shap_treeexplainer", "fasttreeshap", "fasttreeshap_v1", "woodelf"):
        t = result[SECONDS_KEYS[part]]
        result[f"speedup_vs_{part}"] = round(t / churn, 2) if t and churn else None
        result[f"{part}_speedup_vs_xgb_contribs"] = round(ref / t, 2) if t and ref else None
    result["churnml_over_predict"] = round(churn / result["predict_s"], 2) if churn and result["predict_s"] else None
    result["peak_rss_mb"] = {p: round(r["peak_rss_mb"]) for p, r in runs.items() if "peak_rss_mb" in r}
    return result


def show(result: dict) -> None:
    kind = "one native categorical feature" if result["categorical_features"] else "all numeric"
    print(f"\n{result['rows']:,} rows x {FEATURES} features ({kind}), {TREES} trees of depth {DEPTH}, "
          f"{THREADS} threads\n")
    ref = result["xgb_contribs_s"]
    print(f"{'contender':20s} {'seconds':>9s} {'speed-up vs pred_contribs':>26s} {'max |diff| vs pred_contribs':>28s}")
    for part, key in SECONDS_KEYS.items():
        t = result[key]
        if t is None:
            print(f"{part:20s} {'-':>9s}   {result[key[:-2] + '_reason']}")
            continue
        diff = result["max_abs_diff"] if part == "churnml" else result.get(key[:-2] + "_max_abs_diff")
        print(f"{part:20s} {t:9.3f} {(ref / t if ref else float('nan')):25.2f}x "
              f"{'' if diff is None else f'{diff:28.2e}'}")
    if result["churnml_compile_s"] is not None:
        print(f"churnml: model compile (tables) {result['churnml_model_compile_s']} s, numba warm-up "
              f"{result['churnml_compile_s']} s (cached after the first run), tables {result['churnml_table_mb']} MB")


def main() -> None:
    global VARIANT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variants", nargs="*", default=["categorical", "numeric"], choices=["categorical", "numeric"],
                        help="categorical: the model as specified (feature 7 native categorical); numeric: the same "
                             "data with feature 7 numeric, which every third-party explainer supports")
    parser.add_argument("--only", nargs="*", choices=sorted(CONTENDERS), help="run these contenders only")
    parser.add_argument("--skip", nargs="*", default=[], metavar="[VARIANT:]CONTENDER",
                        help="contenders not to run (recorded with the reason), e.g. shap_treeexplainer "
                             "categorical:fasttreeshap")
    parser.add_argument("--reference-rows", type=int, default=None,
                        help="run the slow explainers (pred_contribs, shap, fasttreeshap, woodelf) on this many rows "
                             "and scale their time to --rows; churnml is checked against pred_contribs on 20,000 rows")
    parser.add_argument("--part", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.part:  # inside the child process
        VARIANT = args.variants[0]
        print(json.dumps(child(args.part, args.rows)))
        return

    parts = list(args.only or CONTENDERS)
    results = [run_variant(v, args.rows, parts, args.skip, args.reference_rows) for v in args.variants]
    for r in results:
        show(r)
    result = dict(results[0])
    for extra in results[1:]:
        result[f"{extra['variant']}_model"] = extra
    if args.only or args.variants[0] != "categorical":
        print("\npartial run (--only / --variants): results not written")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {RESULTS / 'explain.json'}")


if __name__ == "__main__":
    main()
