//! Model → ONNX (opset 17), the inverse of the importer, so that a bundled model can be checked by
//! other tools (onnxruntime) and round-tripped.

use cryptonas_model::{Model, Op};
use prost::Message;

use crate::proto::{
    AttributeProto, AttributeType, DataType, Dimension, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto,
};

/// Opset the exporter writes.
pub const EXPORT_OPSET: i64 = 17;

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[usize], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: Vec<String>,
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs,
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: dims }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn dim(v: usize) -> Dimension {
    Dimension {
        dim_value: Some(v as i64),
        ..Default::default()
    }
}

/// Serialises a validated model as an ONNX file (batch dimension symbolic `N`, output
/// `[N, classes]`). Class names and the input normalisation go into `metadata_props`
/// (`cryptonas.classes`, `cryptonas.mean`, `cryptonas.std`, JSON).
pub fn export_onnx(model: &Model) -> Result<Vec<u8>, String> {
    let spec = &model.spec;
    let g = &model.graph;
    let w = |name: &str| -> Result<&cryptonas_model::Tensor, String> {
        model
            .get_tensor(name)
            .ok_or_else(|| format!("tensor {name} missing"))
    };
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    // Rank of each node's ONNX value (4, or 2 after a linear layer).
    let mut rank = vec![4usize; spec.nodes.len()];
    let val = |i: usize| spec.nodes[i].id.clone();
    for &i in &g.order {
        let n = &spec.nodes[i];
        let id = n.id.as_str();
        let ins: Vec<String> = g.inputs[i].iter().map(|&j| val(j)).collect();
        let x = g.inputs[i].first().map(|&j| g.shapes[j]);
        match &n.op {
            Op::Input => {}
            Op::Conv2d {
                kernel,
                stride,
                padding,
                groups,
                bias,
                ..
            } => {
                let wt = w(&format!("{id}.weight"))?;
                inits.push(tensor(&format!("{id}.weight"), &wt.shape, wt.data.clone()));
                let mut inputs = vec![ins[0].clone(), format!("{id}.weight")];
                if *bias {
                    let b = w(&format!("{id}.bias"))?;
                    inits.push(tensor(&format!("{id}.bias"), &b.shape, b.data.clone()));
                    inputs.push(format!("{id}.bias"));
                }
                let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                nodes.push(node(
                    "Conv",
                    id,
                    inputs,
                    id,
                    vec![
                        ints("kernel_shape", &[k, k]),
                        ints("strides", &[s, s]),
                        ints("pads", &[p, p, p, p]),
                        int("group", *groups as i64),
                    ],
                ));
            }
            Op::BatchNorm { eps } => {
                let mut inputs = vec![ins[0].clone()];
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    let v = w(&format!("{id}.{t}"))?;
                    inits.push(tensor(&format!("{id}.{t}"), &v.shape, v.data.clone()));
                    inputs.push(format!("{id}.{t}"));
                }
                nodes.push(node(
                    "BatchNormalization",
                    id,
                    inputs,
                    id,
                    vec![float("epsilon", *eps)],
                ));
            }
            Op::Relu => nodes.push(node("Relu", id, ins, id, vec![])),
            Op::Dropout { .. } => nodes.push(node("Identity", id, ins, id, vec![])),
            Op::Concat => nodes.push(node("Concat", id, ins, id, vec![int("axis", 1)])),
            Op::Add => nodes.push(node("Sum", id, ins, id, vec![])),
            Op::FactorizedReduction { out_channels } => {
                let x = x.ok_or("factorized reduction without input")?;
                let half = out_channels / 2;
                let p1 = w(&format!("{id}.path1.weight"))?;
                inits.push(tensor(
                    &format!("{id}.path1.weight"),
                    &p1.shape,
                    p1.data.clone(),
                ));
                nodes.push(node(
                    "Conv",
                    &format!("{id}.path1"),
                    vec![ins[0].clone(), format!("{id}.path1.weight")],
                    &format!("{id}.path1"),
                    vec![ints("kernel_shape", &[1, 1]), ints("strides", &[2, 2])],
                ));
                // Path 2 = x shifted up-left then 1×1 stride 2 = a 2×2 stride-2 conv whose only
                // non-zero tap is (1, 1); odd sizes need one row/column of zeros at the end.
                let p2 = w(&format!("{id}.path2.weight"))?;
                let mut k2 = vec![0f32; half * x.c * 4];
                for (oc, &v) in p2.data.iter().enumerate() {
                    k2[oc * 4 + 3] = v;
                }
                inits.push(tensor(
                    &format!("{id}.path2.weight"),
                    &[half, x.c, 2, 2],
                    k2,
                ));
                let (eh, ew) = ((x.h % 2) as i64, (x.w % 2) as i64);
                nodes.push(node(
                    "Conv",
                    &format!("{id}.path2"),
                    vec![ins[0].clone(), format!("{id}.path2.weight")],
                    &format!("{id}.path2"),
                    vec![
                        ints("kernel_shape", &[2, 2]),
                        ints("strides", &[2, 2]),
                        ints("pads", &[0, 0, eh, ew]),
                    ],
                ));
                nodes.push(node(
                    "Concat",
                    &format!("{id}.cat"),
                    vec![format!("{id}.path1"), format!("{id}.path2")],
                    &format!("{id}.cat"),
                    vec![int("axis", 1)],
                ));
                let mut inputs = vec![format!("{id}.cat")];
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    let v = w(&format!("{id}.bn.{t}"))?;
                    inits.push(tensor(&format!("{id}.bn.{t}"), &v.shape, v.data.clone()));
                    inputs.push(format!("{id}.bn.{t}"));
                }
                nodes.push(node(
                    "BatchNormalization",
                    id,
                    inputs,
                    id,
                    vec![float("epsilon", cryptonas_model::zoo::BN_EPS)],
                ));
            }
            Op::GlobalAvgPool => nodes.push(node("GlobalAveragePool", id, ins, id, vec![])),
            Op::Linear { .. } => {
                let src = if rank[g.inputs[i][0]] == 2 {
                    ins[0].clone()
                } else {
                    let f = format!("{id}.flatten");
                    nodes.push(node("Flatten", &f, ins, &f, vec![int("axis", 1)]));
                    f
                };
                for t in ["weight", "bias"] {
                    let v = w(&format!("{id}.{t}"))?;
                    inits.push(tensor(&format!("{id}.{t}"), &v.shape, v.data.clone()));
                }
                nodes.push(node(
                    "Gemm",
                    id,
                    vec![src, format!("{id}.weight"), format!("{id}.bias")],
                    id,
                    vec![int("transB", 1)],
                ));
                rank[i] = 2;
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
                padding_end,
            }
            | Op::AvgPool {
                kernel,
                stride,
                padding,
                padding_end,
                ..
            } => {
                let (k, s) = (*kernel as i64, *stride as i64);
                let (p, e) = (*padding as i64, *padding_end as i64);
                let mut attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[s, s]),
                    ints("pads", &[p, p, e, e]),
                ];
                let op = if let Op::AvgPool {
                    count_include_pad, ..
                } = n.op
                {
                    attrs.push(int("count_include_pad", i64::from(count_include_pad)));
                    "AveragePool"
                } else {
                    "MaxPool"
                };
                nodes.push(node(op, id, ins, id, attrs));
            }
            Op::ChannelAffine => {
                let c = x.ok_or("affine without input")?.c;
                for t in ["scale", "shift"] {
                    let v = w(&format!("{id}.{t}"))?;
                    inits.push(tensor(&format!("{id}.{t}"), &[c, 1, 1], v.data.clone()));
                }
                let m = format!("{id}.mul");
                nodes.push(node(
                    "Mul",
                    &m,
                    vec![ins[0].clone(), format!("{id}.scale")],
                    &m,
                    vec![],
                ));
                nodes.push(node("Add", id, vec![m, format!("{id}.shift")], id, vec![]));
            }
            Op::Clip { min, max } => {
                inits.push(tensor(&format!("{id}.min"), &[], vec![*min]));
                inits.push(tensor(&format!("{id}.max"), &[], vec![*max]));
                nodes.push(node(
                    "Clip",
                    id,
                    vec![ins[0].clone(), format!("{id}.min"), format!("{id}.max")],
                    id,
                    vec![],
                ));
            }
            Op::Flatten => {
                nodes.push(node("Flatten", id, ins, id, vec![int("axis", 1)]));
                rank[i] = 2;
            }
        }
        if let Some(&j) = g.inputs[i].first() {
            if matches!(
                n.op,
                Op::Relu
                    | Op::Dropout { .. }
                    | Op::ChannelAffine
                    | Op::Clip { .. }
                    | Op::BatchNorm { .. }
                    | Op::Add
            ) {
                rank[i] = rank[j];
            }
        }
    }
    let mut output = val(g.output);
    let classes = spec.classes.len();
    if rank[g.output] != 2 {
        let f = "logits".to_string();
        nodes.push(node("Flatten", &f, vec![output], &f, vec![int("axis", 1)]));
        output = f;
    }
    let inp = &spec.input;
    let batch = Dimension {
        dim_param: Some("N".into()),
        ..Default::default()
    };
    let meta = |k: &str, v: String| StringStringEntryProto {
        key: k.into(),
        value: v,
    };
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: EXPORT_OPSET,
        }],
        producer_name: "cryptonas".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            name: spec.name.clone(),
            node: nodes,
            initializer: inits,
            input: vec![value_info(
                &val(g.input),
                vec![
                    batch.clone(),
                    dim(inp.channels),
                    dim(inp.height),
                    dim(inp.width),
                ],
            )],
            output: vec![value_info(&output, vec![batch, dim(classes)])],
            ..Default::default()
        }),
        metadata_props: vec![
            meta(
                "cryptonas.classes",
                serde_json::to_string(&spec.classes).map_err(|e| e.to_string())?,
            ),
            meta(
                "cryptonas.mean",
                serde_json::to_string(&inp.mean).map_err(|e| e.to_string())?,
            ),
            meta(
                "cryptonas.std",
                serde_json::to_string(&inp.std).map_err(|e| e.to_string())?,
            ),
        ],
        ..Default::default()
    };
    Ok(m.encode_to_vec())
}
