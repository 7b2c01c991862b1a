#!/usr/bin/env python3
"""Writes the ONNX conformance cases the Rust test `onnx/tests/conformance.rs` runs.

Everything comes from the pip `onnx` package (nothing is fetched at run time):
  node/<case>/   every backend node test that `onnx.backend.test.case.node` generates for the
                 supported operators (not the `_expanded` function variants). The node tests feed
                 weights as graph inputs; every input after the first is bound to its test value
                 as an initializer, so that the model has one data input like a real network.
  light/<model>/ the "light" real architectures of onnx/backend/test/data/light with the input
                 the ONNX runner uses (arange(n)/n in the input's shape) and the shipped output.
Each case directory holds model.onnx, input_0.pb and output_0.pb (TensorProto).

usage: gen_conformance.py OUT_DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases

OPS = [
    "Conv", "Relu", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Gemm", "MatMul", "Add", "Sum", "Sub", "Mul", "Div", "Concat", "Flatten",
    "Reshape", "Clip", "Pad", "Dropout", "Identity", "Softmax", "Constant", "ConstantOfShape",
]


def write(path, model, inp, out):
    os.makedirs(path, exist_ok=True)
    onnx.save(model, os.path.join(path, "model.onnx"))
    with open(os.path.join(path, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(np.asarray(inp)).SerializeToString())
    with open(os.path.join(path, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(np.asarray(out)).SerializeToString())


def node_tests(out_dir):
    n = 0
    seen = set()
    for case in node_cases.collect_testcases(None):
        ops = [nd.op_type for nd in case.model.graph.node] if case.model else []
        op = next((o for o in ops if o in OPS), None)
        if op is None:
            continue
        if True:
            if case.name.endswith("_expanded") or case.name in seen or not case.data_sets:
                continue
            seen.add(case.name)
            model = onnx.ModelProto()
            model.CopyFrom(case.model)
            inputs, outputs = case.data_sets[0]
            g = model.graph
            if len(inputs) == 0 or len(outputs) == 0:
                continue
            # Bind inputs 1.. as initializers.
            keep = g.input[0]
            for vi, value in zip(list(g.input)[1:], inputs[1:]):
                if isinstance(value, (np.ndarray, np.generic)):
                    g.initializer.append(numpy_helper.from_array(np.asarray(value), vi.name))
            bound = {t.name for t in g.initializer}
            rest = [vi for vi in list(g.input)[1:] if vi.name not in bound]
            del g.input[:]
            g.input.extend([keep] + rest)
            if not isinstance(inputs[0], np.ndarray) or not isinstance(outputs[0], np.ndarray):
                continue
            write(os.path.join(out_dir, "node", case.name), model, inputs[0], outputs[0])
            with open(os.path.join(out_dir, "node", case.name, "op"), "w") as f:
                f.write(op)
            n += 1
    return n


def light_models(out_dir):
    src = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    n = 0
    for f in sorted(os.listdir(src)):
        if not f.endswith(".onnx"):
            continue
        name = f[: -len(".onnx")]
        model = onnx.load(os.path.join(src, f))
        inits = {t.name for t in model.graph.initializer}
        x = [i for i in model.graph.input if i.name not in inits][0]
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in x.type.tensor_type.shape.dim)
        size = int(np.prod(shape))
        inp = (np.arange(size).reshape(shape) / size).astype(np.float32)
        out = onnx.TensorProto()
        with open(os.path.join(src, name + "_output_0.pb"), "rb") as fh:
            out.ParseFromString(fh.read())
        write(os.path.join(out_dir, "light", name), model, inp, numpy_helper.to_array(out))
        n += 1
    return n


if __name__ == "__main__":
    out = sys.argv[1]
    print(f"onnx {onnx.__version__}: {node_tests(out)} node cases, {light_models(out)} light models -> {out}")
