//! What pages show of attachments, and the rules for how each kind may be served.

use super::store::AttachmentRow;

/// An attachment as the message partial shows it: a picture in the grid, or a card.
#[derive(Clone)]
pub struct AttachmentView {
    pub url: String,
    pub thumb_url: Option<String>,
    pub name: String,
    pub size_label: String,
    pub type_label: String,
    pub width: u32,
    pub height: u32,
}

impl AttachmentView {
    pub fn from_row(row: &AttachmentRow) -> AttachmentView {
        let url = format!("/c/{}/files/{}", row.conversation_id, row.id);
        let thumb_url = row.thumb_key.as_ref().map(|_| format!("{url}/thumb"));
        // The thumbnail's own size, so the grid keeps its place while pictures load.
        let (width, height) = thumb_dimensions(row.width.unwrap_or(0).max(0) as u32, row.height.unwrap_or(0).max(0) as u32);
        AttachmentView {
            url,
            thumb_url,
            name: row.name.clone(),
            size_label: size_label(row.size),
            type_label: type_label(&row.content_type),
            width,
            height,
        }
    }
}

fn thumb_dimensions(width: u32, height: u32) -> (u32, u32) {
    let side = super::picture::THUMB_SIZE;
    if width <= side && height <= side || width == 0 || height == 0 {
        return (width, height);
    }
    if width >= height {
        (side, ((height as u64 * side as u64) / width as u64).max(1) as u32)
    } else {
        (((width as u64 * side as u64) / height as u64).max(1) as u32, side)
    }
}

/// Shown inline only: a picture we decoded and encoded ourselves (it has a thumbnail).
pub fn is_inline(row: &AttachmentRow) -> bool {
    row.thumb_key.is_some() && matches!(row.content_type.as_str(), "image/jpeg" | "image/png")
}

/// The type a download is sent with: markup, text and scripts (which `infer` can name)
/// go as plain bytes, so no browser treats them as anything to run.
pub fn served_type(content_type: &str) -> &str {
    let risky = content_type.starts_with("text/")
        || ["xml", "html", "javascript", "svg", "ecmascript"].iter().any(|word| content_type.contains(word));
    if risky { "application/octet-stream" } else { content_type }
}

pub fn thumb_type(content_type: &str) -> &'static str {
    if content_type == "image/jpeg" { "image/jpeg" } else { "image/png" }
}

/// "512 bytes", "1.5 KB", "12.3 MB".
pub fn size_label(size: i64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if size < 1024 {
        return format!("{size} bytes");
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A short name for the type: "PDF", "ZIP", "PNG image", or "File" when unknown.
pub fn type_label(content_type: &str) -> String {
    match content_type {
        "application/octet-stream" => "File".into(),
        "application/pdf" => "PDF".into(),
        other => match other.split_once('/') {
            Some(("image", sub)) => format!("{} image", sub.to_uppercase()),
            Some((_, sub)) => sub.trim_start_matches("x-").to_uppercase(),
            None => "File".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(size_label(512), "512 bytes");
        assert_eq!(size_label(1536), "1.5 KB");
        assert_eq!(size_label(10 * 1024 * 1024), "10.0 MB");
        assert_eq!(type_label("application/pdf"), "PDF");
        assert_eq!(type_label("application/zip"), "ZIP");
        assert_eq!(type_label("application/octet-stream"), "File");
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("application/pdf"), "application/pdf");
        assert_eq!(thumb_dimensions(1200, 600), (400, 200));
        assert_eq!(thumb_dimensions(100, 50), (100, 50));
    }
}
