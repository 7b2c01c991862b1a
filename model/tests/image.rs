//! Image input: PNG/JPEG decoding, bilinear resize, normalisation, corrupt input.
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_model::image::{decode, load_input, resize_bilinear, to_input, ImageError, RgbImage};
use cryptonas_model::InputSpec;

const CAT: &[u8] = include_bytes!("fixtures/cifar10-test-cat-0000.jpg");
const SHIP: &[u8] = include_bytes!("fixtures/cifar10-test-ship-0000.jpg");
const CAT_REF: &[u8] = include_bytes!("fixtures/cifar10-test-cat-0000.djpeg.ppm");
const SHIP_REF: &[u8] = include_bytes!("fixtures/cifar10-test-ship-0000.djpeg.ppm");

fn png_bytes(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if color == png::ColorType::Indexed {
            enc.set_palette(vec![255, 0, 0, 0, 0, 255]);
        }
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
    }
    out
}

fn u8s(img: &RgbImage) -> Vec<u8> {
    img.data.iter().map(|v| (v * 255.0).round() as u8).collect()
}

#[test]
fn png_color_types_decode_exactly() {
    let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
    let img = decode(&png_bytes(
        4,
        3,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &rgb,
    ))
    .unwrap();
    assert_eq!((img.width, img.height), (4, 3));
    assert_eq!(u8s(&img), rgb);

    let rgba = [10, 20, 30, 0, 40, 50, 60, 255];
    let img = decode(&png_bytes(
        2,
        1,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &rgba,
    ))
    .unwrap();
    assert_eq!(u8s(&img), vec![10, 20, 30, 40, 50, 60]);

    let gray = [0, 128, 255, 7];
    let img = decode(&png_bytes(
        2,
        2,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &gray,
    ))
    .unwrap();
    assert_eq!(
        u8s(&img),
        vec![0, 0, 0, 128, 128, 128, 255, 255, 255, 7, 7, 7]
    );

    // 16-bit samples are reduced to their high byte.
    let g16 = [0x12, 0x34, 0xAB, 0xCD];
    let img = decode(&png_bytes(
        2,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &g16,
    ))
    .unwrap();
    assert_eq!(u8s(&img), vec![0x12, 0x12, 0x12, 0xAB, 0xAB, 0xAB]);

    // 1-bit palette: indices 0b10 -> [blue, red] (palette red, blue).
    let img = decode(&png_bytes(
        2,
        1,
        png::ColorType::Indexed,
        png::BitDepth::One,
        &[0b0100_0000],
    ))
    .unwrap();
    assert_eq!(u8s(&img), vec![255, 0, 0, 0, 0, 255]);
}

fn ppm_pixels(ppm: &[u8]) -> Vec<u8> {
    // "P6\n32 32\n255\n" header, then RGB bytes.
    let mut newlines = 0;
    let start = ppm
        .iter()
        .position(|&b| {
            newlines += usize::from(b == b'\n');
            newlines == 3
        })
        .unwrap();
    ppm[start + 1..].to_vec()
}

#[test]
fn jpeg_matches_an_independent_decoder() {
    for (jpg, reference) in [(CAT, CAT_REF), (SHIP, SHIP_REF)] {
        let img = decode(jpg).unwrap();
        assert_eq!((img.width, img.height), (32, 32));
        let want = ppm_pixels(reference);
        let got = u8s(&img);
        assert_eq!(got.len(), want.len());
        let diffs: Vec<i32> = got
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = *diffs.iter().max().unwrap();
        println!("zune-jpeg vs djpeg: mean |diff| {mean:.3}, max {max} (of 255)");
        assert!(mean < 1.0 && max <= 8, "mean {mean} max {max}");
    }
}

#[test]
fn bilinear_resize_hand_values() {
    // 2x1 image [0, 1] (gray) -> 4x1 with half-pixel centres: src x = -0.25, 0.25, 0.75, 1.25
    // clamped -> 0, 0.25, 0.75, 1.
    let img = RgbImage {
        width: 2,
        height: 1,
        data: vec![0., 0., 0., 1., 1., 1.],
    };
    let up = resize_bilinear(&img, 4, 1);
    let r: Vec<f32> = up.data.chunks(3).map(|p| p[0]).collect();
    assert_eq!(r, vec![0.0, 0.25, 0.75, 1.0]);
    // 4x4 -> 2x2 averages each 2x2 block (src centre at 0.5, 2.5).
    let data: Vec<f32> = (0..16).flat_map(|i| [i as f32; 3]).collect();
    let img = RgbImage {
        width: 4,
        height: 4,
        data,
    };
    let down = resize_bilinear(&img, 2, 2);
    let r: Vec<f32> = down.data.chunks(3).map(|p| p[0]).collect();
    assert_eq!(r, vec![2.5, 4.5, 10.5, 12.5]);
    assert_eq!(resize_bilinear(&img, 4, 4), img);
}

#[test]
fn normalisation_is_chw_per_channel() {
    let img = RgbImage {
        width: 1,
        height: 2,
        data: vec![0.5, 0.25, 1.0, 0.0, 0.5, 0.75],
    };
    let spec = InputSpec {
        channels: 3,
        height: 2,
        width: 1,
        mean: vec![0.5, 0.5, 0.5],
        std: vec![0.5, 0.25, 0.5],
    };
    assert_eq!(
        to_input(&img, &spec).unwrap(),
        vec![0.0, -1.0, -1.0, 0.0, 1.0, 0.5]
    );
    let gray = InputSpec {
        channels: 1,
        height: 2,
        width: 1,
        mean: vec![0.0],
        std: vec![1.0],
    };
    let y = to_input(&img, &gray).unwrap();
    assert!((y[0] - (0.299 * 0.5 + 0.587 * 0.25 + 0.114)).abs() < 1e-6);
    let bad = InputSpec {
        channels: 2,
        ..gray
    };
    assert!(matches!(
        to_input(&img, &bad),
        Err(ImageError::Channels { channels: 2 })
    ));
}

#[test]
fn jpeg_to_model_input() {
    let spec = cryptonas_model::zoo::model_spec(&cryptonas_arch::cnet1(2), "t").unwrap();
    let x = load_input(CAT, &spec.input).unwrap();
    assert_eq!(x.len(), 3 * 32 * 32);
    assert!(x.iter().all(|v| v.is_finite() && v.abs() < 3.0));
    // A bigger PNG is resized to 32x32.
    let big: Vec<u8> = (0..64 * 48 * 3).map(|i| (i % 251) as u8).collect();
    let png = png_bytes(64, 48, png::ColorType::Rgb, png::BitDepth::Eight, &big);
    assert_eq!(load_input(&png, &spec.input).unwrap().len(), 3 * 32 * 32);
}

#[test]
fn corrupt_images_are_errors_not_panics() {
    assert!(matches!(decode(b""), Err(ImageError::UnknownFormat)));
    assert!(matches!(
        decode(b"GIF89a...."),
        Err(ImageError::UnknownFormat)
    ));
    let png = png_bytes(4, 4, png::ColorType::Rgb, png::BitDepth::Eight, &[9; 48]);
    // Every cut before the end of the image data fails (only the 12-byte IEND trailer is optional).
    for cut in 8..png.len() - 12 {
        assert!(decode(&png[..cut]).is_err(), "png cut at {cut}");
    }
    for cut in 2..CAT.len() - 2 {
        let _ = decode(&CAT[..cut]); // may decode partially; must not panic
    }
    assert!(matches!(decode(&CAT[..40]), Err(ImageError::Jpeg { .. })));
    let mut state = 99u64;
    for _ in 0..500 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut b = CAT.to_vec();
        let i = 2 + (state >> 33) as usize % (b.len() - 2);
        b[i] ^= (state >> 20) as u8 | 1;
        let _ = decode(&b);
        let mut p = png.clone();
        let i = 8 + (state >> 40) as usize % (p.len() - 8);
        p[i] ^= (state >> 12) as u8 | 1;
        let _ = decode(&p);
    }
}

/// CRC-32 (PNG's chunk checksum), bitwise.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header declares `w × h` RGB pixels followed by `idat` bytes of (garbage) data: a
/// decoder that trusts the header allocates for the declared size before reading any pixel.
fn png_declaring(w: u32, h: u32, idat: usize) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut chunk = |kind: &[u8; 4], body: &[u8]| {
        out.extend((body.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(body);
        out.extend_from_slice(&c);
        out.extend(crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &vec![0u8; idat]);
    chunk(b"IEND", &[]);
    out
}

/// The cat fixture with its frame header (SOF0) rewritten to declare `w × h`.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut j = CAT.to_vec();
    let sof = j
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("baseline JPEG fixture");
    // FF C0, length (2), precision (1), height (2), width (2).
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[test]
fn image_bombs_are_refused_from_the_header() {
    use cryptonas_model::image::{decode_with, ImageLimits};
    // A ≈ 1 KB JPEG declaring 8192 × 8192 (201 MB of RGB): the decompression ratio gives it away.
    let bomb = jpeg_declaring(8192, 8192);
    assert!(bomb.len() < 4096);
    match decode(&bomb) {
        Err(ImageError::TooLarge { what, .. }) => assert_eq!(what, "pixels"),
        other => panic!("8192² JPEG bomb: {other:?}"),
    }
    let bomb = jpeg_declaring(2048, 2048);
    match decode(&bomb) {
        Err(ImageError::TooLarge { what, .. }) => assert_eq!(what, "decompression ratio"),
        other => panic!("2048² JPEG bomb: {other:?}"),
    }
    // PNG headers declaring more pixels, or more than 1024× their size, than allowed.
    match decode(&png_declaring(8192, 8192, 64)) {
        Err(ImageError::TooLarge { what, .. }) => assert_eq!(what, "pixels"),
        other => panic!("8192² PNG bomb: {other:?}"),
    }
    match decode(&png_declaring(3000, 3000, 1000)) {
        Err(ImageError::TooLarge { what, .. }) => assert_eq!(what, "decompression ratio"),
        other => panic!("3000² PNG bomb: {other:?}"),
    }
    // Tighter limits, as a server configures them.
    let strict = ImageLimits {
        max_bytes: 512,
        max_side: 16,
        max_pixels: 256,
        max_ratio: 64,
    };
    assert!(matches!(
        decode_with(CAT, &strict),
        Err(ImageError::TooLarge {
            what: "encoded bytes",
            ..
        })
    ));
    let strict = ImageLimits {
        max_bytes: 1 << 20,
        ..strict
    };
    assert!(matches!(
        decode_with(CAT, &strict),
        Err(ImageError::Size { max_side: 16, .. })
    ));
    let text = decode_with(&png_declaring(16, 17, 8), &strict)
        .unwrap_err()
        .to_string();
    assert!(text.contains("16x17 outside 1..=16"), "{text}");
    // Real images within the limits still decode.
    assert_eq!(decode(CAT).unwrap().width, 32);
    assert_eq!(
        decode_with(
            CAT,
            &ImageLimits {
                max_side: 32,
                max_pixels: 1024,
                ..strict
            }
        )
        .unwrap()
        .height,
        32
    );
}
