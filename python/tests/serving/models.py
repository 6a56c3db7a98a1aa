"""Reference ONNX models for testing Slipway's model serving against onnxruntime.

Trains a fixed set of scikit-learn models, exports each with skl2onnx, runs it
with onnxruntime (CPU, one thread) on a 64-row test batch, and writes for every
model:

    OUTDIR/<name>.onnx      the exported model
    OUTDIR/<name>.ref.json  input name/shape, the test batch, onnxruntime's outputs

plus OUTDIR/index.json (the models, versions, data set, opsets) and
OUTDIR/ops.json (an op inventory per model: every node's op type, domain and
attributes, tree-ensemble statistics, graph inputs and outputs). The inventory
is also printed.

Data: the fall-detection example's per-clip features (``slipway example
fall-detection generate OUT --clips 2000 --seed 7`` writes OUT/features.parquet).
X is every numeric column as float32; targets are the 4-class ``activity``
column as *string* labels (walk/stand/sit/fall, so skl2onnx emits
``classlabels_strings``) and ``activity == "fall"`` as *int64* 0/1 labels (so it
emits ``classlabels_int64s``). Every classifier is exported twice: with the
default ZipMap on the probability output and without it (``_nozipmap``).

Two regressors (random forest: AVERAGE aggregation; gradient boosting: SUM with
base_values) predict ``torso_angle_end_deg`` from the other numeric columns.

``logreg20`` is a LogisticRegression on 20 synthetic features
(make_classification) for a throughput benchmark against ``mlflow models
serve``: it is also written as a pickled sklearn model (logreg20.pkl) and as an
MLflow model directory (logreg20_mlflow/).

Everything is deterministic: fixed seeds for data, splits and estimators.

Usage:
    python models.py OUTDIR [--features PATH] [--slipway BIN]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import skl2onnx
import sklearn
from onnx import helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

SEED = 0
BATCH_ROWS = 64
CLIPS = 2000
CLIPS_SEED = 7
LABEL_COLUMN = "activity"
REGRESSION_TARGET = "torso_angle_end_deg"
INPUT_NAME = "float_input"
# ai.onnx 17 and ai.onnx.ml 3: old enough for any runtime, and ml 3 is the last
# opset with TreeEnsembleClassifier/Regressor as skl2onnx emits them (ml 5 adds
# the unified TreeEnsemble op).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
DEFAULT_SLIPWAY = Path.home() / ".cache/slipway/target/debug/slipway"
TREE_OPS = {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}


# --------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """One feature matrix with a train/test split; ``batch`` is the first test rows."""

    name: str
    columns: list[str]
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> np.ndarray:
        return self.X_test[:BATCH_ROWS]


def generate_features(slipway: str, dest: Path) -> Path:
    """Run ``slipway example fall-detection generate`` and copy features.parquet to dest."""
    with tempfile.TemporaryDirectory(prefix="slipway-fd-") as tmp:
        out = Path(tmp) / "fd"
        cmd = [slipway, "example", "fall-detection", "generate", str(out),
               "--clips", str(CLIPS), "--seed", str(CLIPS_SEED)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "features.parquet", dest)
    return dest


def split(name: str, X: np.ndarray, y: np.ndarray, columns: list[str], stratify: bool,
          **info: Any) -> Dataset:
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.25, random_state=SEED, stratify=y if stratify else None)
    return Dataset(name, columns, X_tr, X_te, y_tr, y_te, dict(info))


def load_datasets(features: Path) -> dict[str, Dataset]:
    """The activity (string), fall (int64), regression and 20-feature synthetic data sets."""
    df = pd.read_parquet(features)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    X = df[numeric].to_numpy(dtype=np.float32)
    activity = df[LABEL_COLUMN].astype(str).to_numpy(dtype=object)
    fall = (activity == "fall").astype(np.int64)
    reg_cols = [c for c in numeric if c != REGRESSION_TARGET]
    X_reg = df[reg_cols].to_numpy(dtype=np.float32)
    y_reg = df[REGRESSION_TARGET].to_numpy(dtype=np.float32)
    X20, y20 = make_classification(n_samples=5000, n_features=20, random_state=SEED)
    return {
        "activity": split("activity", X, activity, numeric, True,
                          target=LABEL_COLUMN, labels="string",
                          classes=sorted(set(activity)), counts=dict(Counter(activity))),
        "fall": split("fall", X, fall, numeric, True,
                      target=f"{LABEL_COLUMN} == 'fall'", labels="int64",
                      classes=[0, 1], counts={str(k): int(v) for k, v in Counter(fall).items()}),
        "torso_angle": split("torso_angle", X_reg, y_reg, reg_cols, False,
                             target=REGRESSION_TARGET, labels=None),
        "synthetic20": split("synthetic20", X20.astype(np.float32), y20.astype(np.int64),
                             [f"f{i}" for i in range(20)], True,
                             target="make_classification(n_samples=5000, n_features=20, "
                                    f"random_state={SEED})",
                             labels="int64", classes=[0, 1]),
    }


# ------------------------------------------------------------------------- models


@dataclass
class Spec:
    name: str
    data: str
    make: Callable[[], Any]
    classifier: bool = True


def specs() -> list[Spec]:
    def logreg():
        return LogisticRegression(max_iter=10_000)

    def rf():
        return RandomForestClassifier(n_estimators=20, max_depth=6, random_state=SEED)

    def gbc():
        return GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=SEED)

    def mlp():
        return MLPClassifier(hidden_layer_sizes=(32,), random_state=SEED, max_iter=500)

    def scaler_logreg():
        return Pipeline([("scaler", StandardScaler()),
                         ("logreg", LogisticRegression(max_iter=10_000))])

    out = []
    for data in ("activity", "fall"):
        for family, make in (("logreg", logreg), ("rf", rf), ("gbc", gbc), ("mlp", mlp),
                             ("scaler_logreg", scaler_logreg)):
            out.append(Spec(f"{family}_{data}", data, make))
    out.append(Spec("rfr_torso_angle", "torso_angle",
                    lambda: RandomForestRegressor(n_estimators=20, max_depth=6,
                                                  random_state=SEED), classifier=False))
    out.append(Spec("gbr_torso_angle", "torso_angle",
                    lambda: GradientBoostingRegressor(n_estimators=50, max_depth=3,
                                                      random_state=SEED), classifier=False))
    out.append(Spec("logreg20", "synthetic20", lambda: LogisticRegression(max_iter=10_000)))
    return out


def final_estimator(model):
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def export(model, n_features: int, zipmap: bool) -> onnx.ModelProto:
    options = None if zipmap else {id(final_estimator(model)): {"zipmap": False}}
    return convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        options=options,
    )


def canonicalize(onx: onnx.ModelProto, name: str) -> None:
    """Make the bytes reproducible: skl2onnx names the graph with a random uuid and
    orders opset_import by set iteration (which varies with string hashing)."""
    onx.graph.name = name
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    onx.opset_import.extend(helper.make_opsetid(d, v) for d, v in opsets)


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------- reference


def output_record(meta: ort.NodeArg, value: Any) -> dict[str, Any]:
    """One onnxruntime output as JSON: tensors as nested lists, ZipMap as a list of dicts."""
    if isinstance(value, np.ndarray):
        dtype = "string" if value.dtype.kind in "OUS" else str(value.dtype)
        values = value.astype(str).tolist() if dtype == "string" else value.tolist()
        return {"name": meta.name, "type": meta.type, "dtype": dtype,
                "shape": list(value.shape), "values": values}
    # seq(map(K, V)): a list of dicts; JSON object keys are strings, so record K.
    key_type = "int64" if value and isinstance(next(iter(value[0])), (int, np.integer)) \
        else "string"
    rows = [{str(k): float(v) for k, v in row.items()} for row in value]
    return {"name": meta.name, "type": meta.type, "dtype": f"seq(map({key_type},float32))",
            "key_type": key_type, "length": len(rows), "values": rows}


def reference(path: Path, batch: np.ndarray) -> tuple[dict[str, Any], list[Any]]:
    sess = session(path)
    (inp,) = sess.get_inputs()
    outputs = sess.run(None, {inp.name: batch})
    ref = {
        "model": path.name,
        "input": {"name": inp.name, "type": inp.type, "dtype": "float32", "shape": inp.shape},
        "batch_shape": list(batch.shape),
        # float32 -> Python float is exact, and JSON round-trips doubles exactly.
        "batch": batch.tolist(),
        "outputs": [output_record(m, v) for m, v in zip(sess.get_outputs(), outputs)],
        "runtime": {"onnxruntime": ort.__version__, "providers": ["CPUExecutionProvider"],
                    "intra_op_num_threads": 1},
    }
    return ref, outputs


def agreement(model, batch: np.ndarray, outputs: list[Any], classifier: bool) -> dict[str, Any]:
    """How closely onnxruntime reproduces sklearn on the batch (a sanity check)."""
    if not classifier:
        diff = np.abs(outputs[0].reshape(-1) - model.predict(batch))
        return {"max_abs_diff_prediction": float(diff.max())}
    labels = np.asarray(outputs[0]).reshape(-1)
    probs = outputs[1]
    if not isinstance(probs, np.ndarray):
        classes = list(final_estimator(model).classes_)
        probs = np.array([[row[c.item() if hasattr(c, "item") else c] for c in classes]
                          for row in probs])
    sk_labels = model.predict(batch)
    return {
        "label_mismatches": int((labels.astype(str) != sk_labels.astype(str)).sum()),
        "max_abs_diff_probability": float(np.abs(probs - model.predict_proba(batch)).max()),
    }


# ---------------------------------------------------------------------- inventory


def attr_value(a: onnx.AttributeProto) -> dict[str, Any]:
    kind = onnx.AttributeProto.AttributeType.Name(a.type)
    v = helper.get_attribute_value(a)
    if kind == "STRING":
        return {"type": kind, "value": v.decode()}
    if kind in ("INT", "FLOAT"):
        return {"type": kind, "value": v}
    if kind == "TENSOR":
        return {"type": kind, "dtype": onnx.TensorProto.DataType.Name(v.data_type),
                "dims": list(v.dims)}
    if kind in ("INTS", "FLOATS", "STRINGS"):
        vals = [x.decode() for x in v] if kind == "STRINGS" else list(v)
        rec: dict[str, Any] = {"type": kind, "len": len(vals)}
        if len(vals) <= 8:
            rec["values"] = vals
        return rec
    return {"type": kind}


def type_str(t: onnx.TypeProto) -> str:
    """onnxruntime-style type names: tensor(float), seq(map(int64,tensor(float)))."""
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return f"tensor({helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type).name})" \
            .replace("float32", "float").replace("float64", "double").replace("object", "string")
    if kind == "sequence_type":
        return f"seq({type_str(t.sequence_type.elem_type)})"
    if kind == "map_type":
        key = helper.tensor_dtype_to_np_dtype(t.map_type.key_type).name.replace("object", "string")
        return f"map({key},{type_str(t.map_type.value_type)})"
    return str(kind)


def value_info(vi: onnx.ValueInfoProto) -> dict[str, Any]:
    rec: dict[str, Any] = {"name": vi.name, "type": type_str(vi.type)}
    t = vi.type
    if t.HasField("tensor_type"):
        rec["elem_type"] = onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)
        rec["shape"] = [d.dim_value if d.HasField("dim_value")
                        else (d.dim_param or None) for d in t.tensor_type.shape.dim]
    return rec


def tree_depths(ids: list[int], trees: list[int], true_ids: list[int],
                false_ids: list[int], modes: list[str]) -> list[int]:
    """Max depth per tree (root = depth 0, so sklearn's max_depth=3 gives 3)."""
    children: dict[tuple[int, int], tuple[int, int] | None] = {}
    for t, n, tr, fa, m in zip(trees, ids, true_ids, false_ids, modes):
        children[(t, n)] = None if m == "LEAF" else (tr, fa)
    depths = []
    for t in sorted(set(trees)):
        stack, best = [(0, 0)], 0
        while stack:
            node, d = stack.pop()
            best = max(best, d)
            kids = children[(t, node)]
            if kids:
                stack.extend((k, d + 1) for k in kids)
        depths.append(best)
    return depths


def tree_summary(node: onnx.NodeProto) -> dict[str, Any]:
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    s = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    modes = [s(m) for m in a.get("nodes_modes", [])]
    trees = list(a.get("nodes_treeids", []))
    depths = tree_depths(list(a["nodes_nodeids"]), trees, list(a["nodes_truenodeids"]),
                         list(a["nodes_falsenodeids"]), modes) if trees else []
    base = a.get("base_values")
    base_t = a.get("base_values_as_tensor")
    leaf_prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    weights = [float(w) for w in a.get(f"{leaf_prefix}_weights", [])]
    rec = {
        "op_type": node.op_type,
        "nodes_modes": sorted(set(modes)),
        "post_transform": s(a.get("post_transform", b"NONE")),
        "base_values_present": base is not None or base_t is not None,
        "base_values_len": len(base) if base is not None
        else (int(np.prod(base_t.dims)) if base_t is not None else 0),
        "base_values": [float(x) for x in base] if base is not None
        else (numpy_helper.to_array(base_t).tolist() if base_t is not None else None),
        # TreeEnsembleClassifier has no aggregate_function (always SUM); for the
        # regressor an absent attribute means its default, SUM.
        "aggregate_function": s(a.get("aggregate_function", b"SUM")),
        "aggregate_function_explicit": "aggregate_function" in a,
        "n_trees": len(set(trees)),
        "n_nodes": len(modes),
        "n_leaves": modes.count("LEAF"),
        "max_depth": max(depths) if depths else None,
        "n_leaf_weights": len(weights),
        "leaf_weight_range": [min(weights), max(weights)] if weights else None,
        "distinct_leaf_ids": sorted(set(a.get(f"{leaf_prefix}_ids", []))),
        "missing_value_tracks_true": sorted(set(a.get("nodes_missing_value_tracks_true", []))),
        "uses_as_tensor_attrs": sorted(k for k in a if k.endswith("_as_tensor")),
    }
    if "classlabels_strings" in a:
        rec["classlabels"] = {"kind": "classlabels_strings",
                              "values": [s(x) for x in a["classlabels_strings"]]}
    elif "classlabels_int64s" in a:
        rec["classlabels"] = {"kind": "classlabels_int64s",
                              "values": list(a["classlabels_int64s"])}
    if "n_targets" in a:
        rec["n_targets"] = a["n_targets"]
    return rec


def inventory(model: onnx.ModelProto) -> dict[str, Any]:
    g = model.graph
    nodes = [{
        "op_type": n.op_type,
        "domain": n.domain or "ai.onnx",
        "name": n.name,
        "inputs": list(n.input),
        "outputs": list(n.output),
        "attributes": {a.name: attr_value(a) for a in n.attribute},
    } for n in g.node]
    for n in nodes:  # Cast's target type by name as well as by number
        if n["op_type"] == "Cast" and "to" in n["attributes"]:
            n["attributes"]["to"]["name"] = onnx.TensorProto.DataType.Name(
                n["attributes"]["to"]["value"])
    return {
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}",
        "opset_import": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "inputs": [value_info(v) for v in g.input],
        "outputs": [value_info(v) for v in g.output],
        "initializers": [{"name": t.name, "dtype": onnx.TensorProto.DataType.Name(t.data_type),
                          "dims": list(t.dims)} for t in g.initializer],
        "op_types": sorted({f"{n['domain']}:{n['op_type']}" for n in nodes}),
        "nodes": nodes,
        "tree_ensembles": [tree_summary(n) for n in g.node if n.op_type in TREE_OPS],
    }


def print_inventory(name: str, inv: dict[str, Any]) -> None:
    opsets = " ".join(f"{k}={v}" for k, v in inv["opset_import"].items())
    print(f"== {name}  ({opsets})")
    for kind, vis in (("in ", inv["inputs"]), ("out", inv["outputs"])):
        for v in vis:
            shape = f" {v['shape']}" if "shape" in v else ""
            print(f"   {kind}  {v['name']}: {v['type']}{shape}")
    for n in inv["nodes"]:
        attrs = []
        for k, a in n["attributes"].items():
            if "name" in a:
                attrs.append(f"{k}={a['value']} ({a['name']})")
            elif "value" in a:
                attrs.append(f"{k}={a['value']!r}")
            elif "values" in a:
                attrs.append(f"{k}:{a['type']}={a['values']}")
            elif a["type"] == "TENSOR":
                attrs.append(f"{k}:TENSOR[{a['dtype']}{a['dims']}]")
            else:
                attrs.append(f"{k}:{a['type']}[{a.get('len', '')}]")
        print(f"   node {n['domain']}:{n['op_type']}  {', '.join(attrs)}")
    for t in inv["tree_ensembles"]:
        keys = ("nodes_modes", "post_transform", "base_values_len", "aggregate_function",
                "n_trees", "max_depth", "n_nodes", "distinct_leaf_ids")
        print(f"   tree {t['op_type']}: " + ", ".join(f"{k}={t[k]}" for k in keys)
              + (f", {t['classlabels']['kind']}={t['classlabels']['values']}"
                 if "classlabels" in t else ""))


# --------------------------------------------------------------------------- main


def save_mlflow(model, path: Path, example: np.ndarray) -> str | None:
    """logreg20 as an MLflow model dir for `mlflow models serve` (skipped if mlflow is absent)."""
    try:
        import mlflow.sklearn
        from mlflow.models import infer_signature
    except ImportError:
        return None
    if path.exists():
        shutil.rmtree(path)
    mlflow.sklearn.save_model(
        model, str(path),
        signature=infer_signature(example, model.predict(example)),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
    )
    return path.name


def build(outdir: Path, features: Path) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    datasets = load_datasets(features)
    index: list[dict[str, Any]] = []
    ops: dict[str, Any] = {}
    for spec in specs():
        ds = datasets[spec.data]
        model = spec.make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(ds.X_train, ds.y_train)
        score = {"train": float(model.score(ds.X_train, ds.y_train)),
                 "test": float(model.score(ds.X_test, ds.y_test))}
        variants = [(spec.name, True), (f"{spec.name}_nozipmap", False)] if spec.classifier \
            else [(spec.name, True)]
        for name, zipmap in variants:
            onx = export(model, ds.X_train.shape[1], zipmap)
            canonicalize(onx, name)
            onnx.checker.check_model(onx, full_check=True)
            onnx_path = outdir / f"{name}.onnx"
            onnx_path.write_bytes(onx.SerializeToString())
            ref, outputs = reference(onnx_path, ds.batch)
            ref["name"] = name
            (outdir / f"{name}.ref.json").write_text(json.dumps(ref, allow_nan=False))
            inv = inventory(onx)
            ops[name] = inv
            print_inventory(name, inv)
            entry = {
                "name": name,
                "onnx": onnx_path.name,
                "ref": f"{name}.ref.json",
                "estimator": type(model).__name__ if not isinstance(model, Pipeline)
                else "Pipeline(" + ", ".join(type(s).__name__ for _, s in model.steps) + ")",
                "params": {k: v for k, v in final_estimator(model).get_params().items()
                           if isinstance(v, (int, float, str, bool, type(None), tuple))},
                "task": "classification" if spec.classifier else "regression",
                "data": spec.data,
                "labels": ds.info.get("labels"),
                "zipmap": zipmap if spec.classifier else None,
                "n_features": ds.X_train.shape[1],
                "input": ref["input"],
                "outputs": [{"name": o["name"], "type": o["type"]} for o in ref["outputs"]],
                "op_types": inv["op_types"],
                "score": score,
                "sklearn_vs_onnxruntime": agreement(model, ds.batch, outputs, spec.classifier),
            }
            index.append(entry)
        if spec.name == "logreg20":
            with open(outdir / "logreg20.pkl", "wb") as f:
                pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
            for e in index[-len(variants):]:
                e["pickle"] = "logreg20.pkl"
                e["mlflow_model"] = save_mlflow(model, outdir / "logreg20_mlflow", ds.batch)

    meta = {
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "target_opset": {(k or "ai.onnx"): v for k, v in TARGET_OPSET.items()},
        "seed": SEED,
        "batch_rows": BATCH_ROWS,
        "features": str(features),
        "datasets": {k: {"columns": d.columns, "n_train": len(d.X_train),
                         "n_test": len(d.X_test), **d.info} for k, d in datasets.items()},
        "models": index,
    }
    (outdir / "index.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
    (outdir / "ops.json").write_text(json.dumps(ops, indent=1, allow_nan=False))
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--features", type=Path,
                   help="features.parquet (default: generate with the slipway binary)")
    p.add_argument("--slipway", default=os.environ.get("SLIPWAY_BIN") or (
        str(DEFAULT_SLIPWAY) if DEFAULT_SLIPWAY.exists() else "slipway"),
                   help="slipway binary used to generate features (env SLIPWAY_BIN)")
    args = p.parse_args(argv)
    features = args.features or generate_features(args.slipway, args.outdir / "features.parquet")
    meta = build(args.outdir, features)
    print(f"wrote {len(meta['models'])} models to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
