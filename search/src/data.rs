//! Datasets as plain `u8` images (CHW), class-balanced splits, normalisation and augmentation.
//!
//! CIFAR-10 comes from the JPEG tar.gz (`cifar10-jpeg/{train,test}/<class>/NNNN.jpg`, classes in
//! alphabetical order = standard labels), decoded with `zune-jpeg` like everywhere else in the
//! project. Fashion-MNIST comes from the four gzip IDX files.

use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::SearchError;
use cryptonas_arch::InputShape;

/// Default location of the CIFAR-10 JPEG archive, relative to the repository root.
pub const DEFAULT_CIFAR: &str = "../shared/data/cifar10-jpeg.tar.gz";
/// Default directory of the Fashion-MNIST IDX files.
pub const DEFAULT_FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// CIFAR-10 class names in label order (the archive's folder names; the model crate's list).
pub use cryptonas_model::zoo::CIFAR10_CLASSES as CIFAR_CLASSES;

/// Which dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10 (JPEG-q75 copy), 3×32×32, 10 classes.
    Cifar10,
    /// Fashion-MNIST, 1×28×28, 10 classes.
    FashionMnist,
}

impl DatasetKind {
    /// Image shape.
    pub fn shape(self) -> InputShape {
        match self {
            DatasetKind::Cifar10 => InputShape::CIFAR,
            DatasetKind::FashionMnist => InputShape::FASHION,
        }
    }

    /// Name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "CIFAR-10 (JPEG-q75 copy)",
            DatasetKind::FashionMnist => "Fashion-MNIST",
        }
    }

    /// Default data path.
    pub fn default_path(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => DEFAULT_CIFAR,
            DatasetKind::FashionMnist => DEFAULT_FASHION,
        }
    }

    /// Whether horizontal flips are a valid augmentation.
    pub fn flip(self) -> bool {
        true
    }

    /// Padding for random crops (4 on CIFAR as in the recipe, 2 on 28×28 Fashion-MNIST).
    pub fn crop_pad(self) -> usize {
        match self {
            DatasetKind::Cifar10 => 4,
            DatasetKind::FashionMnist => 2,
        }
    }
}

/// Images and labels of one part (train or test).
#[derive(Clone, Debug, Default)]
pub struct Images {
    /// `n · C·H·W` bytes, CHW per image.
    pub pixels: Vec<u8>,
    /// `n` labels.
    pub labels: Vec<u8>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A loaded dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which one.
    pub kind: DatasetKind,
    /// Image shape.
    pub shape: InputShape,
    /// Number of classes.
    pub classes: usize,
    /// Training images (to be split into train/validation).
    pub train: Images,
    /// Test images.
    pub test: Images,
}

fn ds_err(path: &Path, msg: impl Into<String>) -> SearchError {
    SearchError::Dataset {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

impl Dataset {
    /// Loads `kind` from `path` (the tar.gz for CIFAR-10, the directory for Fashion-MNIST).
    pub fn load(kind: DatasetKind, path: &Path) -> Result<Dataset, SearchError> {
        match kind {
            DatasetKind::Cifar10 => load_cifar10(path),
            DatasetKind::FashionMnist => load_fashion(path),
        }
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.shape.channels * self.shape.height * self.shape.width
    }
}

/// Decodes one 32×32 RGB JPEG into CHW bytes.
pub fn decode_jpeg_chw(bytes: &[u8], path: &Path, name: &str) -> Result<Vec<u8>, SearchError> {
    let mut dec = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(bytes));
    let rgb = dec
        .decode()
        .map_err(|e| ds_err(path, format!("{name}: JPEG decode failed: {e:?}")))?;
    let (w, h) = dec.dimensions().unwrap_or((0, 0));
    if w != 32 || h != 32 || rgb.len() != 32 * 32 * 3 {
        return Err(ds_err(
            path,
            format!(
                "{name}: expected a 32×32 RGB image, got {w}×{h} ({} bytes)",
                rgb.len()
            ),
        ));
    }
    let mut chw = vec![0u8; rgb.len()];
    for p in 0..1024 {
        for c in 0..3 {
            chw[c * 1024 + p] = rgb[p * 3 + c];
        }
    }
    Ok(chw)
}

/// Loads CIFAR-10 from the JPEG tar.gz. Files are sorted by name so the order is reproducible.
pub fn load_cifar10(path: &Path) -> Result<Dataset, SearchError> {
    let file = std::fs::File::open(path).map_err(|e| {
        ds_err(
            path,
            format!("cannot open ({e}); pass --data <path to cifar10-jpeg.tar.gz>"),
        )
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries: Vec<(bool, u8, String, Vec<u8>)> = Vec::new();
    let iter = archive
        .entries()
        .map_err(|e| ds_err(path, format!("not a tar.gz: {e}")))?;
    for entry in iter {
        let mut entry = entry.map_err(|e| ds_err(path, format!("corrupt archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| ds_err(path, format!("bad entry name: {e}")))?
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".jpg") {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        let n = parts.len();
        if n < 3 {
            continue;
        }
        let is_train = match parts[n - 3] {
            "train" => true,
            "test" => false,
            _ => continue,
        };
        let Some(label) = CIFAR_CLASSES.iter().position(|c| *c == parts[n - 2]) else {
            return Err(ds_err(
                path,
                format!("{name}: unknown class {:?}", parts[n - 2]),
            ));
        };
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| ds_err(path, format!("{name}: {e}")))?;
        entries.push((is_train, label as u8, name, bytes));
    }
    entries.sort_by(|a, b| a.2.cmp(&b.2));
    let mut train = Images::default();
    let mut test = Images::default();
    for (is_train, label, name, bytes) in &entries {
        let chw = decode_jpeg_chw(bytes, path, name)?;
        let part = if *is_train { &mut train } else { &mut test };
        part.pixels.extend_from_slice(&chw);
        part.labels.push(*label);
    }
    if train.is_empty() || test.is_empty() {
        return Err(ds_err(
            path,
            format!(
                "found {} train and {} test JPEGs; expected cifar10-jpeg/{{train,test}}/<class>/*.jpg",
                train.len(),
                test.len()
            ),
        ));
    }
    Ok(Dataset {
        kind: DatasetKind::Cifar10,
        shape: InputShape::CIFAR,
        classes: 10,
        train,
        test,
    })
}

fn read_gz(path: &Path) -> Result<Vec<u8>, SearchError> {
    let file = std::fs::File::open(path).map_err(|e| ds_err(path, format!("cannot open ({e})")))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .map_err(|e| ds_err(path, format!("not gzip: {e}")))?;
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Parses an IDX image file (magic 0x803) into `(count, rows, cols, pixels)`.
fn parse_idx_images(b: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>), SearchError> {
    if b.len() < 16 || be32(b, 0) != 0x803 {
        return Err(ds_err(path, "not an IDX image file (magic 0x00000803)"));
    }
    let (n, r, c) = (be32(b, 4), be32(b, 8), be32(b, 12));
    if b.len() != 16 + n * r * c {
        return Err(ds_err(
            path,
            format!(
                "IDX header says {n}×{r}×{c} but the body has {} bytes",
                b.len() - 16
            ),
        ));
    }
    Ok((n, r, c, b[16..].to_vec()))
}

fn parse_idx_labels(b: &[u8], path: &Path) -> Result<Vec<u8>, SearchError> {
    if b.len() < 8 || be32(b, 0) != 0x801 {
        return Err(ds_err(path, "not an IDX label file (magic 0x00000801)"));
    }
    let n = be32(b, 4);
    if b.len() != 8 + n {
        return Err(ds_err(path, "IDX label count does not match the file size"));
    }
    if let Some(&bad) = b[8..].iter().find(|&&l| l >= 10) {
        return Err(ds_err(path, format!("label {bad} out of range 0..10")));
    }
    Ok(b[8..].to_vec())
}

/// Loads Fashion-MNIST from a directory with the four `*-idx?-ubyte.gz` files.
pub fn load_fashion(dir: &Path) -> Result<Dataset, SearchError> {
    let part = |img: &str, lab: &str| -> Result<Images, SearchError> {
        let ip = dir.join(img);
        let lp = dir.join(lab);
        let (n, r, c, pixels) = parse_idx_images(&read_gz(&ip)?, &ip)?;
        if (r, c) != (28, 28) {
            return Err(ds_err(&ip, format!("expected 28×28 images, got {r}×{c}")));
        }
        let labels = parse_idx_labels(&read_gz(&lp)?, &lp)?;
        if labels.len() != n {
            return Err(ds_err(
                &lp,
                format!("{} labels for {n} images", labels.len()),
            ));
        }
        Ok(Images { pixels, labels })
    };
    Ok(Dataset {
        kind: DatasetKind::FashionMnist,
        shape: InputShape::FASHION,
        classes: 10,
        train: part("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
        test: part("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
    })
}

/// Indices of a class-balanced train/validation split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Training indices (shuffled).
    pub train: Vec<usize>,
    /// Validation indices (shuffled).
    pub val: Vec<usize>,
}

/// Splits `labels` so that validation holds exactly `val_per_class` images of every class
/// (deterministic for a seed). With `train_per_class`, the training part is capped per class too
/// (the class-balanced proxy subsets of the search).
pub fn balanced_split(
    labels: &[u8],
    classes: usize,
    val_per_class: usize,
    train_per_class: Option<usize>,
    seed: u64,
) -> Result<Split, SearchError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        let l = usize::from(l);
        if l >= classes {
            return Err(SearchError::Invalid {
                what: format!("label {l} at index {i} is outside 0..{classes}"),
            });
        }
        by_class[l].push(i);
    }
    let mut split = Split {
        train: Vec::new(),
        val: Vec::new(),
    };
    for (c, idx) in by_class.iter_mut().enumerate() {
        let need = val_per_class + train_per_class.unwrap_or(0);
        if idx.len() < need.max(val_per_class + 1) {
            return Err(SearchError::Invalid {
                what: format!(
                    "class {c} has {} images, fewer than the {need} the split asks for",
                    idx.len()
                ),
            });
        }
        idx.shuffle(&mut rng);
        split.val.extend_from_slice(&idx[..val_per_class]);
        let rest = &idx[val_per_class..];
        let take = train_per_class.map_or(rest.len(), |t| t.min(rest.len()));
        split.train.extend_from_slice(&rest[..take]);
    }
    split.train.shuffle(&mut rng);
    split.val.shuffle(&mut rng);
    Ok(split)
}

/// Per-channel mean and standard deviation (in 0..1 units) for input normalisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl Normalization {
    /// Statistics of the images at `indices`.
    pub fn fit(images: &Images, shape: InputShape, indices: &[usize]) -> Normalization {
        let plane = shape.height * shape.width;
        let img = shape.channels * plane;
        let mut sum = vec![0f64; shape.channels];
        let mut sq = vec![0f64; shape.channels];
        for &i in indices {
            for (c, (s, q)) in sum.iter_mut().zip(sq.iter_mut()).enumerate() {
                for &p in &images.pixels[i * img + c * plane..i * img + (c + 1) * plane] {
                    let v = f64::from(p) / 255.0;
                    *s += v;
                    *q += v * v;
                }
            }
        }
        let n = (indices.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - m * m).max(1e-12)).sqrt() as f32)
            .collect();
        Normalization {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }
}

/// Training-time augmentation of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Padding for the random crop (the image is shifted by up to this many pixels each way).
    pub pad: usize,
    /// Side of the square that Cutout (DeVries & Taylor, 2017) sets to the mean, centred
    /// uniformly over the image and clipped at its borders; 0 turns it off.
    pub cutout: usize,
}

/// Builds a normalised `f32` batch (NCHW) of the images at `indices`. With `augment`, each image
/// is zero-padded by `pad` (after normalisation, as in the recipe), randomly cropped back,
/// flipped left-right with probability 1/2, and, with `cutout`, has one square zeroed (the mean,
/// after normalisation).
pub fn make_batch<R: Rng>(
    images: &Images,
    shape: InputShape,
    indices: &[usize],
    norm: &Normalization,
    augment: Option<(&mut R, Augment)>,
) -> Vec<f32> {
    let (ch, h, w) = (shape.channels, shape.height, shape.width);
    let img = ch * h * w;
    let mut out = vec![0f32; indices.len() * img];
    let scale: Vec<f32> = norm.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let shift: Vec<f32> = norm
        .mean
        .iter()
        .zip(&norm.std)
        .map(|(m, s)| m / s)
        .collect();
    let mut aug = augment;
    for (b, &i) in indices.iter().enumerate() {
        let src = &images.pixels[i * img..(i + 1) * img];
        let dst = &mut out[b * img..(b + 1) * img];
        let (dy, dx, flip, hole) = match aug.as_mut() {
            Some((rng, a)) => {
                let p = a.pad as i64;
                let (dy, dx) = (rng.random_range(-p..=p), rng.random_range(-p..=p));
                let flip = rng.random_bool(0.5);
                let hole = (a.cutout > 0).then(|| {
                    let (cy, cx) = (rng.random_range(0..h), rng.random_range(0..w));
                    let (lo, hi) = (a.cutout / 2, a.cutout - a.cutout / 2);
                    (
                        cy.saturating_sub(lo)..(cy + hi).min(h),
                        cx.saturating_sub(lo)..(cx + hi).min(w),
                    )
                });
                (dy as isize, dx as isize, flip, hole)
            }
            None => (0, 0, false, None),
        };
        for c in 0..ch {
            for y in 0..h {
                let sy = y as isize + dy;
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    let cut = hole
                        .as_ref()
                        .is_some_and(|(ys, xs)| ys.contains(&y) && xs.contains(&x));
                    let v = if cut || sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                        0.0
                    } else {
                        let p = src[c * h * w + sy as usize * w + sx as usize];
                        f32::from(p) * scale[c] - shift[c]
                    };
                    dst[c * h * w + y * w + x] = v;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dataset_is_a_clear_error() {
        let e = Dataset::load(DatasetKind::Cifar10, Path::new("/nonexistent/cifar.tar.gz"))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/cifar.tar.gz") && msg.contains("cannot open"),
            "{msg}"
        );
        let e = Dataset::load(DatasetKind::FashionMnist, Path::new("/nonexistent")).unwrap_err();
        assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
    }

    #[test]
    fn corrupt_archive_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("search-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.tar.gz");
        std::fs::write(&p, b"not a gzip file at all").unwrap();
        let e = load_cifar10(&p).unwrap_err();
        assert!(matches!(e, SearchError::Dataset { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn split_is_class_balanced_and_disjoint() {
        let labels: Vec<u8> = (0..1000).map(|i| (i * 7 % 10) as u8).collect();
        let s = balanced_split(&labels, 10, 20, None, 3).unwrap();
        assert_eq!(s.val.len(), 200);
        assert_eq!(s.train.len(), 800);
        let mut counts = [0; 10];
        for &i in &s.val {
            counts[usize::from(labels[i])] += 1;
        }
        assert_eq!(counts, [20; 10]);
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let sub = balanced_split(&labels, 10, 20, Some(30), 3).unwrap();
        assert_eq!(sub.train.len(), 300);
        assert!(balanced_split(&labels, 10, 100, None, 3).is_err());
    }

    #[test]
    fn batch_normalises_and_augments() {
        let shape = InputShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let images = Images {
            pixels: (0..16).map(|v| v * 10).collect(),
            labels: vec![0],
        };
        let norm = Normalization::fit(&images, shape, &[0]);
        let b = make_batch::<rand_chacha::ChaCha8Rng>(&images, shape, &[0], &norm, None);
        let mean: f32 = b.iter().sum::<f32>() / 16.0;
        let var: f32 = b.iter().map(|v| v * v).sum::<f32>() / 16.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut moved = false;
        for _ in 0..20 {
            let aug = Augment { pad: 1, cutout: 0 };
            let a = make_batch(&images, shape, &[0], &norm, Some((&mut rng, aug)));
            // Every augmented value is either padding (0) or one of the original values.
            assert!(a
                .iter()
                .all(|v| *v == 0.0 || b.iter().any(|o| (o - v).abs() < 1e-6)));
            moved |= a != b;
        }
        assert!(moved);
    }

    #[test]
    fn cutout_zeroes_one_clipped_square() {
        let shape = InputShape {
            channels: 2,
            height: 8,
            width: 8,
        };
        // Every pixel differs from the mean, so a normalised 0 can only come from the cutout.
        let images = Images {
            pixels: (0..128)
                .map(|v| if v % 2 == 0 { 10 } else { 250 })
                .collect(),
            labels: vec![0],
        };
        let norm = Normalization::fit(&images, shape, &[0]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let aug = Augment { pad: 0, cutout: 4 };
        let mut sizes = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let a = make_batch(&images, shape, &[0], &norm, Some((&mut rng, aug)));
            let zeros: Vec<(usize, usize)> = (0..64)
                .filter(|&i| a[i] == 0.0)
                .map(|i| (i / 8, i % 8))
                .collect();
            // Both channels lose the same pixels.
            assert!(zeros.iter().all(|&(y, x)| a[64 + y * 8 + x] == 0.0));
            assert_eq!(a[64..].iter().filter(|v| **v == 0.0).count(), zeros.len());
            // The zeros form a rectangle of at most 4 × 4 (clipped at the border).
            let ys: std::collections::BTreeSet<_> = zeros.iter().map(|p| p.0).collect();
            let xs: std::collections::BTreeSet<_> = zeros.iter().map(|p| p.1).collect();
            assert_eq!(zeros.len(), ys.len() * xs.len());
            assert!(ys.len() <= 4 && xs.len() <= 4 && !zeros.is_empty());
            sizes.insert(zeros.len());
        }
        // Centred anywhere: whole squares inside, clipped ones at the borders.
        assert!(sizes.contains(&16) && sizes.iter().any(|&n| n < 16));
    }
}
