//! Image input: decode PNG/JPEG (pure Rust), bilinear resize to the model's input, normalise
//! with the model's stored mean/std into the CHW f32 tensor every engine takes.

use thiserror::Error;

use crate::format::InputSpec;

/// Largest accepted width/height of [`ImageLimits::DEFAULT`].
pub const MAX_SIDE: usize = 8192;

/// Bounds on an image to decode, all checked from the header before any pixel buffer is
/// allocated (decompression bombs: a 1 KB JPEG can declare 8192 × 8192 pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest encoded size, in bytes.
    pub max_bytes: usize,
    /// Largest width and height, in pixels.
    pub max_side: usize,
    /// Largest width × height.
    pub max_pixels: usize,
    /// Largest ratio of decoded RGB bytes (3 per pixel) to encoded bytes; images that decode to at
    /// most [`Self::RATIO_FLOOR`] bytes are exempt (tiny images compress well too).
    pub max_ratio: usize,
}

impl ImageLimits {
    /// Decoded sizes up to this many bytes are exempt from the ratio check.
    pub const RATIO_FLOOR: usize = 1 << 20;

    /// Generous limits for a user's own images (a 16-megapixel photo decodes; a bomb does not).
    pub const DEFAULT: ImageLimits = ImageLimits {
        max_bytes: 32 << 20,
        max_side: MAX_SIDE,
        max_pixels: 1 << 24,
        max_ratio: 1024,
    };

    /// Checks a header's dimensions against the limits (`encoded` is the input's length).
    pub fn check(&self, width: usize, height: usize, encoded: usize) -> Result<(), ImageError> {
        if width == 0 || height == 0 || width > self.max_side || height > self.max_side {
            return Err(ImageError::Size {
                width,
                height,
                max_side: self.max_side,
            });
        }
        let pixels = width.saturating_mul(height);
        if pixels > self.max_pixels {
            return Err(ImageError::TooLarge {
                what: "pixels",
                value: pixels,
                limit: self.max_pixels,
            });
        }
        let decoded = pixels.saturating_mul(3);
        let ratio_limit = encoded.max(1).saturating_mul(self.max_ratio);
        if decoded > Self::RATIO_FLOOR && decoded > ratio_limit {
            return Err(ImageError::TooLarge {
                what: "decompression ratio",
                value: decoded / encoded.max(1),
                limit: self.max_ratio,
            });
        }
        Ok(())
    }
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an image could not be turned into a model input.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Neither a PNG nor a JPEG signature.
    #[error("unrecognised image format (expected PNG or JPEG)")]
    UnknownFormat,
    /// The PNG decoder failed.
    #[error("corrupt PNG: {detail}")]
    Png {
        /// Decoder message.
        detail: String,
    },
    /// The JPEG decoder failed.
    #[error("corrupt JPEG: {detail}")]
    Jpeg {
        /// Decoder message.
        detail: String,
    },
    /// Width or height is 0 or above the limit.
    #[error("image size {width}x{height} outside 1..={max_side}")]
    Size {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// The largest side allowed.
        max_side: usize,
    },
    /// The image exceeds one of its [`ImageLimits`].
    #[error("image too large: {what} {value} above the limit of {limit}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// The image's value.
        value: usize,
        /// The limit.
        limit: usize,
    },
    /// The model wants a channel count images cannot provide.
    #[error("model input has {channels} channels; images give 1 (gray) or 3 (RGB)")]
    Channels {
        /// Channels the model wants.
        channels: usize,
    },
}

/// A decoded image: RGB, row-major HWC, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` values in [0, 1].
    pub data: Vec<f32>,
}

/// Decodes PNG or JPEG bytes (sniffed from the signature) to RGB in [0, 1] under
/// [`ImageLimits::DEFAULT`]. Alpha is dropped, gray is replicated, palettes and 16-bit samples are
/// expanded/reduced to 8 bits.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    decode_with(bytes, &ImageLimits::DEFAULT)
}

/// [`decode`] under the given limits, checked from the header before any pixel buffer exists.
pub fn decode_with(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, ImageError> {
    if bytes.len() > limits.max_bytes {
        return Err(ImageError::TooLarge {
            what: "encoded bytes",
            value: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        decode_png(bytes, limits)
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(bytes, limits)
    } else {
        Err(ImageError::UnknownFormat)
    }
}

fn to_rgb(px: &[u8], channels: usize, width: usize, height: usize) -> RgbImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for p in px.chunks_exact(channels).take(width * height) {
        let (r, g, b) = match channels {
            1 | 2 => (p[0], p[0], p[0]),
            _ => (p[0], p[1], p[2]),
        };
        data.extend([r, g, b].map(|v| f32::from(v) / 255.0));
    }
    RgbImage {
        width,
        height,
        data,
    }
}

fn decode_png(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, ImageError> {
    let err = |e: png::DecodingError| ImageError::Png {
        detail: e.to_string(),
    };
    // The decoder's own allocation cap (its buffers, up to 8 bytes per pixel with 16-bit RGBA),
    // a second line behind the header check below.
    let png_limits = png::Limits {
        bytes: limits.max_pixels.saturating_mul(8).saturating_add(1 << 20),
    };
    let mut dec = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png_limits);
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(err)?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    limits.check(w, h, bytes.len())?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(err)?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(ImageError::Png {
                detail: "palette was not expanded".into(),
            })
        }
    };
    if frame.bit_depth != png::BitDepth::Eight || buf.len() < w * h * channels {
        return Err(ImageError::Png {
            detail: format!("unexpected {:?} output", frame.bit_depth),
        });
    }
    // Rows may be padded to line_size.
    let line = frame.line_size;
    let mut px = Vec::with_capacity(w * h * channels);
    for row in buf.chunks(line).take(h) {
        px.extend_from_slice(&row[..w * channels]);
    }
    Ok(to_rgb(&px, channels, w, h))
}

fn decode_jpeg(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, ImageError> {
    use zune_jpeg::zune_core::{
        bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
    };
    let opts = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        // JPEG's own ceiling: our limits are checked right after the headers, with our errors.
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX));
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
    let err = |e: zune_jpeg::errors::DecodeErrors| ImageError::Jpeg {
        detail: format!("{e:?}"),
    };
    dec.decode_headers().map_err(err)?;
    let (w, h) = dec.dimensions().ok_or_else(|| ImageError::Jpeg {
        detail: "no frame header".into(),
    })?;
    limits.check(w, h, bytes.len())?;
    let px = dec.decode().map_err(err)?;
    let channels = dec.output_colorspace().map_or(3, |c| c.num_components());
    if !(1..=4).contains(&channels) || px.len() < w * h * channels {
        return Err(ImageError::Jpeg {
            detail: format!("decoder returned {} bytes for {w}x{h}x{channels}", px.len()),
        });
    }
    Ok(to_rgb(&px, channels, w, h))
}

/// Bilinear resize with half-pixel centres (PyTorch `align_corners=False`, no antialiasing).
pub fn resize_bilinear(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    if img.width == width && img.height == height {
        return img.clone();
    }
    let sx = img.width as f32 / width as f32;
    let sy = img.height as f32 / height as f32;
    let coord = |d: usize, s: f32, n: usize| {
        let f = ((d as f32 + 0.5) * s - 0.5).clamp(0.0, (n - 1) as f32);
        let i0 = f.floor() as usize;
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, f - i0 as f32)
    };
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let (y0, y1, fy) = coord(y, sy, img.height);
        for x in 0..width {
            let (x0, x1, fx) = coord(x, sx, img.width);
            for c in 0..3 {
                let p = |yy: usize, xx: usize| img.data[(yy * img.width + xx) * 3 + c];
                let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                let bot = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                data.push(top * (1.0 - fy) + bot * fy);
            }
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

/// Resize to the model's input and normalise: CHW `(x − mean[c]) / std[c]`. One-channel models get
/// the luma (ITU-R BT.601) of the image.
pub fn to_input(img: &RgbImage, input: &InputSpec) -> Result<Vec<f32>, ImageError> {
    if input.channels != 1 && input.channels != 3 {
        return Err(ImageError::Channels {
            channels: input.channels,
        });
    }
    if input.mean.len() != input.channels || input.std.len() != input.channels {
        return Err(ImageError::Channels {
            channels: input.channels,
        });
    }
    ImageLimits::DEFAULT.check(input.width, input.height, usize::MAX)?;
    let r = resize_bilinear(img, input.width, input.height);
    let hw = input.width * input.height;
    let mut out = vec![0f32; input.channels * hw];
    for (i, px) in r.data.chunks_exact(3).enumerate() {
        if input.channels == 1 {
            let y = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2];
            out[i] = (y - input.mean[0]) / input.std[0];
        } else {
            for c in 0..3 {
                out[c * hw + i] = (px[c] - input.mean[c]) / input.std[c];
            }
        }
    }
    Ok(out)
}

/// Resize to the model's input without normalising: CHW pixel values in [0, 255] (fractional
/// only where resizing interpolates), for a normal form with the normalisation folded in
/// ([`NormalForm::fold_normalisation`](crate::NormalForm::fold_normalisation)).
pub fn to_raw_input(img: &RgbImage, input: &InputSpec) -> Result<Vec<f32>, ImageError> {
    let unit = InputSpec {
        mean: vec![0.0; input.channels],
        std: vec![1.0 / 255.0; input.channels],
        ..input.clone()
    };
    if input.mean.len() != input.channels || input.std.len() != input.channels {
        return Err(ImageError::Channels {
            channels: input.channels,
        });
    }
    let mut v = to_input(img, &unit)?;
    // Undo the float error of x / (1/255) so decoded 8-bit pixels stay exact integers.
    if img.width == input.width && img.height == input.height {
        v.iter_mut().for_each(|p| *p = p.round());
    }
    Ok(v)
}

/// Decode and resize image bytes to raw pixels in [0, 255] (see [`to_raw_input`]).
pub fn load_raw_input(bytes: &[u8], input: &InputSpec) -> Result<Vec<f32>, ImageError> {
    to_raw_input(&decode(bytes)?, input)
}

/// Decode, resize and normalise image bytes for a model.
pub fn load_input(bytes: &[u8], input: &InputSpec) -> Result<Vec<f32>, ImageError> {
    to_input(&decode(bytes)?, input)
}

/// [`load_input`] under the given limits.
pub fn load_input_with(
    bytes: &[u8],
    input: &InputSpec,
    limits: &ImageLimits,
) -> Result<Vec<f32>, ImageError> {
    to_input(&decode_with(bytes, limits)?, input)
}
