#!/usr/bin/env python3
"""Writes maxpool_cnn.onnx beside this script: a CIFAR-size CNN with random weights (seeded) for the
end-to-end tests of max pooling and Clip in private inference (tests/tests/onnx_maxpool.rs, the
page test through scripts/test.sh, the README's "Bring your own model" example).

  x 1x3x32x32 -> Conv 3->8 3x3 -> Relu -> MaxPool 2x2/2        (ReLU fused into the pool)
              -> Conv 8->8 3x3 -> Clip(0, 6)                     (ReLU6: garbled clipped ReLU)
              -> MaxPool 3x3/2 pad 1                             (overlapping windows, padding)
              -> GlobalAveragePool -> Flatten -> Gemm 8->10 -> Softmax

usage: .venv/bin/python tests/data/maxpool_cnn.py   (the onnx package; the file is committed)
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(23)


def init(name, shape, scale=None):
    fan = int(np.prod(shape[1:])) or 1
    v = rng.normal(0, scale if scale is not None else np.sqrt(2.0 / fan), shape)
    return numpy_helper.from_array(v.astype(np.float32), name)


inits = [
    init("conv1.w", (8, 3, 3, 3)), init("conv1.b", (8,), 0.1),
    init("conv2.w", (8, 8, 3, 3)), init("conv2.b", (8,), 0.1),
    init("fc.w", (10, 8)), init("fc.b", (10,), 0.1),
    numpy_helper.from_array(np.array(0.0, dtype=np.float32), "clip.min"),
    numpy_helper.from_array(np.array(6.0, dtype=np.float32), "clip.max"),
]
nodes = [
    helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1] * 4),
    helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
    helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1] * 4),
    helper.make_node("Clip", ["c2", "clip.min", "clip.max"], ["r2"], name="relu6"),
    helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4),
    helper.make_node("GlobalAveragePool", ["p2"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
    helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
]
graph = helper.make_graph(
    nodes, "maxpool_cnn",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
    [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="maxpool_cnn.py")
onnx.checker.check_model(model)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "maxpool_cnn.onnx")
onnx.save(model, out)
print(f"wrote {out} ({os.path.getsize(out)} bytes)")
