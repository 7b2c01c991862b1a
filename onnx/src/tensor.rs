//! Constant tensors: decoding `TensorProto`s (bounded, checked) and folding constant
//! sub-graphs (shapes, `Unsqueeze`, arithmetic on weights).

use crate::proto::{DataType, TensorProto};

/// Largest constant the importer materialises (elements); checked before allocating.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// A constant tensor. Values are held in f64, which represents every f32 and every integer up
/// to 2^53 exactly (shapes, axes, indices).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    /// Dimensions (empty = scalar).
    pub dims: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
    /// Whether the values are integers (INT64/INT32/...), for messages and casts.
    pub integer: bool,
}

/// Element count of `dims`, or an error when it overflows or exceeds the limit.
pub fn checked_len(dims: &[usize]) -> Result<usize, String> {
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    if n > MAX_TENSOR_ELEMENTS {
        return Err(format!(
            "dimensions {dims:?} declare {n} elements, more than the limit of {MAX_TENSOR_ELEMENTS}"
        ));
    }
    Ok(n)
}

impl Const {
    /// A scalar.
    pub fn scalar(v: f64) -> Const {
        Const {
            dims: vec![],
            data: vec![v],
            integer: false,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Decode a `TensorProto` (any of its storage fields) with every size checked first.
    pub fn from_proto(t: &TensorProto) -> Result<Const, String> {
        if t.data_location == 1 || !t.external_data.is_empty() {
            return Err(
                "its data is stored in an external file; re-save the model with \
                 onnx.save(model, path, save_as_external_data=False) (models under 2 GB)"
                    .into(),
            );
        }
        if t.segment.is_some() {
            return Err("segmented tensors are not supported".into());
        }
        let mut dims = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            dims.push(usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?);
        }
        let n = checked_len(&dims)?;
        let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
        let (width, integer) = match dt {
            DataType::Float => (4, false),
            DataType::Double => (8, false),
            DataType::Int64 | DataType::Uint64 => (8, true),
            DataType::Int32 | DataType::Uint32 => (4, true),
            DataType::Int16 | DataType::Uint16 => (2, true),
            DataType::Int8 | DataType::Uint8 | DataType::Bool => (1, true),
            other => {
                return Err(format!(
                    "data type {other:?} ({}) is not supported; convert the model to float32",
                    t.data_type
                ))
            }
        };
        let data: Vec<f64> = if !t.raw_data.is_empty() || n == 0 {
            if t.raw_data.len() != n * width {
                return Err(format!(
                    "raw data has {} bytes, dimensions {dims:?} of {dt:?} need {}",
                    t.raw_data.len(),
                    n * width
                ));
            }
            let r = &t.raw_data;
            match dt {
                DataType::Float => r
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                DataType::Double => r
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                DataType::Int64 => r
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                    .collect(),
                DataType::Uint64 => r
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                    .collect(),
                DataType::Int32 => r
                    .chunks_exact(4)
                    .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                DataType::Uint32 => r
                    .chunks_exact(4)
                    .map(|c| f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                DataType::Int16 => r
                    .chunks_exact(2)
                    .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                DataType::Uint16 => r
                    .chunks_exact(2)
                    .map(|c| f64::from(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                DataType::Int8 => r.iter().map(|&b| f64::from(b as i8)).collect(),
                _ => r.iter().map(|&b| f64::from(b)).collect(),
            }
        } else {
            let (len, vals): (usize, Vec<f64>) = match dt {
                DataType::Float => (
                    t.float_data.len(),
                    t.float_data.iter().map(|&v| f64::from(v)).collect(),
                ),
                DataType::Double => (t.double_data.len(), t.double_data.clone()),
                DataType::Int64 => (
                    t.int64_data.len(),
                    t.int64_data.iter().map(|&v| v as f64).collect(),
                ),
                DataType::Uint64 | DataType::Uint32 => (
                    t.uint64_data.len(),
                    t.uint64_data.iter().map(|&v| v as f64).collect(),
                ),
                _ => (
                    t.int32_data.len(),
                    t.int32_data.iter().map(|&v| f64::from(v)).collect(),
                ),
            };
            if len != n {
                return Err(format!("has {len} values, dimensions {dims:?} need {n}"));
            }
            vals
        };
        if !integer {
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(format!("value {} at index {i} is not finite", data[i]));
            }
        }
        Ok(Const {
            dims,
            data,
            integer,
        })
    }

    /// The values as i64 (for shapes, axes, pads); errors on non-integers.
    pub fn ints(&self) -> Result<Vec<i64>, String> {
        self.data
            .iter()
            .map(|&v| {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(v as i64)
                } else {
                    Err(format!("expected integers, found {v}"))
                }
            })
            .collect()
    }

    /// NumPy-style broadcast of two shapes.
    pub fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
        let r = a.len().max(b.len());
        let mut out = vec![0; r];
        for i in 0..r {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            out[i] = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return None,
            };
        }
        Some(out)
    }

    /// Element-wise binary operation with NumPy broadcasting.
    pub fn zip(&self, other: &Const, f: impl Fn(f64, f64) -> f64) -> Result<Const, String> {
        let dims = Const::broadcast_dims(&self.dims, &other.dims).ok_or_else(|| {
            format!(
                "shapes {:?} and {:?} do not broadcast",
                self.dims, other.dims
            )
        })?;
        let n = checked_len(&dims)?;
        let r = dims.len();
        let index = |src: &Const, mut flat: usize| -> usize {
            // Map an output index to the source index (broadcast dims repeat).
            let mut idx = 0;
            let mut stride = 1;
            let off = r - src.dims.len();
            for ax in (0..r).rev() {
                let d = dims[ax];
                let pos = flat % d.max(1);
                flat /= d.max(1);
                if ax >= off {
                    let sd = src.dims[ax - off];
                    if sd != 1 {
                        idx += pos * stride;
                    }
                    stride *= sd;
                }
            }
            idx
        };
        let data = (0..n)
            .map(|i| f(self.data[index(self, i)], other.data[index(other, i)]))
            .collect();
        Ok(Const {
            dims,
            data,
            integer: self.integer && other.integer,
        })
    }
}

/// Per-channel values of a constant that broadcasts against a tensor of ONNX rank `rank` with
/// `c` channels on axis 1 and nothing varying on other axes: shapes `[]`, `[1]`, `[C]` (rank 2),
/// `[C, 1, 1]`, `[1, C, 1, 1]`, ... Returns None when it varies along another axis.
pub fn per_channel(k: &Const, rank: usize, c: usize) -> Option<Vec<f64>> {
    if k.len() == 1 {
        return Some(vec![k.data[0]; c]);
    }
    if k.dims.len() > rank {
        return None;
    }
    // Align k's dims to the right of the tensor's rank; only axis 1 may be > 1.
    let off = rank - k.dims.len();
    for (i, &d) in k.dims.iter().enumerate() {
        let ax = i + off;
        if ax == 1 {
            if d != c && d != 1 {
                return None;
            }
        } else if d != 1 {
            return None;
        }
    }
    if k.len() == c {
        Some(k.data.clone())
    } else {
        None
    }
}
