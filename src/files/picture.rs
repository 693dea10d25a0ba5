//! Pictures: an uploaded JPEG, PNG, WebP or GIF is decoded and written anew, so what we
//! serve inline is pixels we encoded ourselves — turned upright by its EXIF orientation,
//! with no EXIF (GPS included) or other metadata left — plus a thumbnail for the grid.
//! Decoding is CPU work: it runs on the blocking pool, a few at a time, with caps on
//! dimensions and memory so a small file cannot unpack into gigabytes.

use std::io::Cursor;
use std::sync::LazyLock;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;

/// The raster formats we accept as pictures (anything else is a plain file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raster {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl Raster {
    /// From the type sniffed from the bytes.
    pub fn from_mime(mime: &str) -> Option<Raster> {
        match mime {
            "image/jpeg" => Some(Raster::Jpeg),
            "image/png" => Some(Raster::Png),
            "image/gif" => Some(Raster::Gif),
            "image/webp" => Some(Raster::Webp),
            _ => None,
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Raster::Jpeg => ImageFormat::Jpeg,
            Raster::Png => ImageFormat::Png,
            Raster::Gif => ImageFormat::Gif,
            Raster::Webp => ImageFormat::WebP,
        }
    }
}

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 400;
/// Widest and tallest picture decoded (a bigger one is refused, whatever its file size).
const MAX_SIDE: u32 = 10_000;
/// Most memory one decode may claim.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes at once: each may hold hundreds of megabytes of pixels.
static DECODES: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// A picture written anew: the full image and its thumbnail, with their types.
pub struct Picture {
    pub full: Bytes,
    pub full_type: &'static str,
    pub thumb: Bytes,
    pub thumb_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Re-encodes `bytes` (sniffed as `raster`) off the async runtime.
pub async fn process(bytes: Bytes, raster: Raster) -> Result<Picture, String> {
    let _permit = DECODES.acquire().await.map_err(|_| "shutting down".to_string())?;
    tokio::task::spawn_blocking(move || reencode(&bytes, raster)).await.map_err(|e| e.to_string())?
}

/// JPEG stays JPEG; the rest become PNG (lossless; a GIF keeps its first frame).
pub fn reencode(bytes: &[u8], raster: Raster) -> Result<Picture, String> {
    let image = decode(bytes, raster)?;
    let (width, height) = (image.width(), image.height());
    let thumb = if width > THUMB_SIZE || height > THUMB_SIZE { image.thumbnail(THUMB_SIZE, THUMB_SIZE) } else { image.clone() };
    let (full, full_type) = encode(image, raster)?;
    let (thumb, thumb_type) = encode(thumb, raster)?;
    Ok(Picture { full, full_type, thumb, thumb_type, width, height })
}

/// Side of an avatar or server icon, in pixels (shown at 32–96 CSS px, so sharp at 2×).
pub const SQUARE_SIZE: u32 = 256;

/// An avatar or icon: decoded like any picture (orientation applied, metadata gone),
/// its centre square cut out and scaled to `SQUARE_SIZE`, written as PNG. Off the runtime.
pub async fn square(bytes: Bytes, raster: Raster) -> Result<Bytes, String> {
    let _permit = DECODES.acquire().await.map_err(|_| "shutting down".to_string())?;
    tokio::task::spawn_blocking(move || square_now(&bytes, raster)).await.map_err(|e| e.to_string())?
}

pub fn square_now(bytes: &[u8], raster: Raster) -> Result<Bytes, String> {
    let image = decode(bytes, raster)?;
    let side = image.width().min(image.height());
    let (x, y) = ((image.width() - side) / 2, (image.height() - side) / 2);
    let cropped = image.crop_imm(x, y, side, side);
    let scaled = if side > SQUARE_SIZE { cropped.resize_exact(SQUARE_SIZE, SQUARE_SIZE, image::imageops::FilterType::Lanczos3) } else { cropped };
    Ok(encode(scaled, Raster::Png)?.0)
}

fn decode(bytes: &[u8], raster: Raster) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), raster.format());
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn encode(image: DynamicImage, raster: Raster) -> Result<(Bytes, &'static str), String> {
    let mut out = Vec::new();
    if raster == Raster::Jpeg {
        let image = match image {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image,
            other => DynamicImage::ImageRgb8(other.to_rgb8()),
        };
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
        image.write_with_encoder(encoder).map_err(|e| e.to_string())?;
        return Ok((Bytes::from(out), "image/jpeg"));
    }
    image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok((Bytes::from(out), "image/png"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tall_picture_gets_a_small_thumbnail_and_keeps_its_size() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(300, 900, image::Rgb([200, 10, 10])));
        let mut png = Vec::new();
        image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).expect("png");
        let picture = reencode(&png, Raster::Png).expect("re-encoded");
        assert_eq!((picture.width, picture.height), (300, 900));
        let thumb = image::load_from_memory(&picture.thumb).expect("thumb decodes");
        assert_eq!((thumb.width(), thumb.height()), (133, 400));
    }

    #[test]
    fn an_avatar_is_the_centre_square() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(900, 300, image::Rgb([200, 10, 10])));
        let mut png = Vec::new();
        image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).expect("png");
        let square = image::load_from_memory(&square_now(&png, Raster::Png).expect("square")).expect("decodes");
        assert_eq!((square.width(), square.height()), (SQUARE_SIZE, SQUARE_SIZE));
    }

    #[test]
    fn a_picture_wider_than_the_cap_is_refused() {
        // Tiny as a file, but wider than any picture we decode.
        let image = DynamicImage::ImageLuma8(image::GrayImage::new(MAX_SIDE + 1, 1));
        let mut png = Vec::new();
        image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).expect("png");
        assert!(png.len() < 64 * 1024);
        assert!(reencode(&png, Raster::Png).is_err());
    }
}
