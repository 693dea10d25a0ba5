//! files-bench: what a picture costs the server (issue 12, acceptance 8): the whole
//! pipeline an uploaded picture goes through (`files::picture::reencode`: decode, turn
//! upright, write the full image anew, scale and write the thumbnail), per image.
//!
//! cargo bench --bench files_bench
//!
//! Pinned to one core (CPU 0, or BENCH_CPU). The time reported is this thread's CPU time
//! (CLOCK_THREAD_CPUTIME_ID), which other processes on a shared machine barely move; the
//! wall time is printed beside it. The pictures are made here: a phone photo (smooth
//! light and fine noise, as JPEG), a screenshot (flat panels and text-like strokes, as
//! PNG), and smaller ones in each accepted format.

#[path = "support/cpu.rs"]
#[allow(dead_code)]
mod cpu;

use std::io::Cursor;
use std::time::Instant;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reale::files::picture::{Raster, reencode};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cpu: usize = std::env::var("BENCH_CPU").ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    cpu::pin_to(cpu);
    let cases = [
        ("phone photo 4032×3024 JPEG", photo(4032, 3024), ImageFormat::Jpeg, Raster::Jpeg),
        ("photo 1600×1200 JPEG", photo(1600, 1200), ImageFormat::Jpeg, Raster::Jpeg),
        ("screenshot 1920×1080 PNG", screenshot(1920, 1080), ImageFormat::Png, Raster::Png),
        ("picture 1024×768 WebP (lossless)", photo(1024, 768), ImageFormat::WebP, Raster::Webp),
        ("picture 800×600 GIF", screenshot(800, 600), ImageFormat::Gif, Raster::Gif),
    ];
    println!("{:<34} {:>10} {:>12} {:>12} {:>10} {:>10}", "picture", "file", "CPU/image", "wall/image", "full", "thumb");
    for (label, image, format, raster) in cases {
        let bytes = encode(&image, format);
        // One untimed run warms the allocator and caches.
        let first = reencode(&bytes, raster).expect("a picture we made decodes");
        let rounds = if image.width() > 2000 { 5 } else { 20 };
        let (cpu0, wall0) = (thread_cpu_secs(), Instant::now());
        for _ in 0..rounds {
            std::hint::black_box(reencode(std::hint::black_box(&bytes), raster).expect("re-encoded"));
        }
        let (cpu, wall) = ((thread_cpu_secs() - cpu0) / rounds as f64, wall0.elapsed().as_secs_f64() / rounds as f64);
        println!(
            "{label:<34} {:>8} KB {:>9.1} ms {:>9.1} ms {:>7} KB {:>7} KB",
            bytes.len() / 1024,
            cpu * 1e3,
            wall * 1e3,
            first.full.len() / 1024,
            first.thumb.len() / 1024
        );
    }
}

/// Smooth light across the frame with fine noise on top, as a camera gives.
fn photo(width: u32, height: u32) -> DynamicImage {
    let mut seed = 0x2545_f491_u32;
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed % 24) as i32 - 12;
        let shade = |base: u32, span: u32| (base as i32 + noise).clamp(0, 255) as u8 + (span % 2) as u8;
        Rgb([shade(x * 200 / width + 20, x), shade(y * 180 / height + 40, y), shade((x + y) * 120 / (width + height) + 60, x ^ y)])
    }))
}

/// Flat panels with rows of short dark strokes, as text on a screen.
fn screenshot(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let panel = if x < width / 5 { [47, 49, 54] } else { [255, 255, 255] };
        let in_text = y % 22 < 14 && (x / 7 + y / 22) % 9 != 0 && (x % 7) < 5 && x % 400 > 30;
        if in_text && (x * 31 + y * 17) % 5 != 0 { Rgb([30, 31, 34]) } else { Rgb(panel) }
    }))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => image.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)).expect("jpeg"),
        _ => image.write_to(&mut Cursor::new(&mut out), format).expect("encode"),
    }
    out
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer and a clock every Linux has.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
