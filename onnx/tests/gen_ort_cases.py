#!/usr/bin/env python3
"""Writes whole-model cases with onnxruntime as the reference, for `onnx/tests/conformance.rs`.

  ort/<name>/    small CIFAR-size CNNs (3×32×32, 10 classes) built here with random weights:
                 residual adds, concats, depthwise convolutions, max and average pools, BN, Gemm.
  ort/light_random_<model>/  the light real models of the onnx package with their constant
                 (ConstantOfShape) weights replaced by random ones, so that the logits are not
                 uniform: a much stronger check than the shipped outputs.
Each holds model.onnx, input_0.pb (a random image) and output_0.pb (onnxruntime's output).
  ort/export_<name>/  with --exported FILE...: models exported by cryptonas-export-onnx (the
                 bundled models), so that onnxruntime checks the exporter and the model semantics.
usage: gen_ort_cases.py OUT_DIR [--exported FILE.onnx ...]
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1234)


def init(name, shape, kind="w"):
    if kind == "w":
        fan = int(np.prod(shape[1:])) or 1
        v = rng.normal(0, np.sqrt(2.0 / fan), shape)
    elif kind == "var":
        v = rng.uniform(0.5, 1.5, shape)
    else:
        v = rng.normal(0, 0.1, shape)
    return numpy_helper.from_array(v.astype(np.float32), name)


class Net:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def conv(self, x, cin, cout, k=3, s=1, p=1, g=1, bias=True):
        n = self.name("conv")
        self.inits.append(init(n + ".w", (cout, cin // g, k, k)))
        ins = [x, n + ".w"]
        if bias:
            self.inits.append(init(n + ".b", (cout,), "b"))
            ins.append(n + ".b")
        self.nodes.append(helper.make_node("Conv", ins, [n], name=n, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=g))
        return n

    def bn(self, x, c):
        n = self.name("bn")
        for suffix, kind in [("s", "var"), ("b", "b"), ("m", "b"), ("v", "var")]:
            self.inits.append(init(f"{n}.{suffix}", (c,), kind))
        self.nodes.append(helper.make_node("BatchNormalization", [x] + [f"{n}.{s}" for s in "sbmv"], [n], name=n, epsilon=1e-5))
        return n

    def op(self, op, ins, **kw):
        n = self.name(op.lower())
        self.nodes.append(helper.make_node(op, ins, [n], name=n, **kw))
        return n

    def model(self, out, opset=17):
        g = helper.make_graph(
            self.nodes, "net",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            self.inits,
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def residual():
    t = Net()
    a = t.op("Relu", [t.bn(t.conv("x", 3, 16, bias=False), 16)])
    b = t.op("Relu", [t.bn(t.conv(a, 16, 16), 16)])
    b = t.bn(t.conv(b, 16, 16), 16)
    r = t.op("Relu", [t.op("Add", [a, b])])
    p = t.op("MaxPool", [r], kernel_shape=[2, 2], strides=[2, 2])
    g = t.op("GlobalAveragePool", [p])
    f = t.op("Flatten", [g])
    t.inits += [init("fc.w", (10, 16)), init("fc.b", (10,), "b")]
    out = t.op("Gemm", [f, "fc.w", "fc.b"], transB=1)
    return t.model(t.op("Softmax", [out], axis=1))


def inception():
    t = Net()
    a = t.op("Relu", [t.conv("x", 3, 8)])
    b1 = t.op("Relu", [t.conv(a, 8, 8, k=1, p=0)])
    b2 = t.op("Relu", [t.conv(a, 8, 8, k=5, p=2)])
    b3 = t.op("MaxPool", [a], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    c = t.op("Concat", [b1, b2, b3], axis=1)
    d = t.op("AveragePool", [c], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    r = t.op("Relu", [t.conv(d, 24, 16, s=2)])
    f = t.op("Reshape", [r, "shape"])
    t.inits.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape"))
    t.inits += [init("fc.w", (16 * 8 * 8, 10))]
    return t.model(t.op("MatMul", [f, "fc.w"]))


def mobilenet():
    t = Net()
    a = t.op("Relu", [t.bn(t.conv("x", 3, 16, s=2, bias=False), 16)])
    dw = t.op("Relu", [t.bn(t.conv(a, 16, 16, g=16, bias=False), 16)])
    pw = t.op("Relu", [t.bn(t.conv(dw, 16, 32, k=1, p=0, bias=False), 32)])
    pd = t.op("Pad", [pw, "pads"], mode="constant")
    t.inits.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads"))
    dw2 = t.op("Relu", [t.conv(pd, 32, 32, p=0, g=32, s=2)])
    m = t.op("Mul", [dw2, "scale"])
    t.inits.append(init("scale", (1, 32, 1, 1), "var"))
    s = t.op("Sub", [m, "shift"])
    t.inits.append(init("shift", (32, 1, 1), "b"))
    g = t.op("GlobalAveragePool", [t.op("Relu", [s])])
    f = t.op("Flatten", [g])
    t.inits += [init("fc.w", (10, 32)), init("fc.b", (10,), "b")]
    out = t.op("Gemm", [f, "fc.w", "fc.b"], transB=1, alpha=0.5, beta=2.0)
    return t.model(out, opset=13)


def randomise_light(model):
    """Replace every ConstantOfShape weight by a random initializer of the same shape."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    keep = []
    for nd in g.node:
        if nd.op_type == "ConstantOfShape" and nd.input[0] in inits:
            shape = tuple(int(v) for v in inits[nd.input[0]])
            kind = "w" if len(shape) > 1 else "var"
            g.initializer.append(init(nd.output[0], shape, kind))
        else:
            keep.append(nd)
    # Compare logits, not a saturated softmax: drop a final Softmax.
    if keep and keep[-1].op_type == "Softmax" and keep[-1].output[0] == g.output[0].name:
        last = keep.pop()
        g.output[0].name = last.input[0]
    del g.node[:]
    g.node.extend(keep)
    return model


def write(out, name, model):
    d = os.path.join(out, "ort", name)
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(d, "model.onnx"))
    inits = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    shape = [x.dim_value or 1 for x in inp.type.tensor_type.shape.dim]
    x = rng.normal(0, 1, shape).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {inp.name: x})[0]
    for f, v in [("input_0.pb", x), ("output_0.pb", y)]:
        with open(os.path.join(d, f), "wb") as fh:
            fh.write(numpy_helper.from_array(v).SerializeToString())


if __name__ == "__main__":
    out = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "--exported":
        for f in sys.argv[3:]:
            write(out, "export_" + os.path.basename(f)[: -len(".onnx")], onnx.load(f))
        print(f"onnxruntime {ort.__version__}: {len(sys.argv) - 3} exported models -> {out}/ort")
        sys.exit(0)
    for name, f in [("cifar_residual", residual), ("cifar_inception", inception), ("cifar_mobilenet", mobilenet)]:
        write(out, name, f())
    src = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    for name in ["resnet50", "squeezenet", "vgg19", "densenet121", "inception_v2", "shufflenet"]:
        m = onnx.load(os.path.join(src, f"light_{name}.onnx"))
        write(out, f"light_random_{name}", randomise_light(m))
    print(f"onnxruntime {ort.__version__}: 3 CIFAR CNNs, 6 randomised light models -> {out}/ort")
