//! Attachments: uploads with a size limit and a checked content type, thumbnails for
//! images, and downloads through signed URLs (so `<img src>` works without a header).
//!
//! Files are stored under their attachment id, never under the name a client gave, so
//! no name can reach outside the store. The name is cleaned and only shown.

use std::io;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ChatError;
use crate::model::UserId;
use crate::model::perms::Perms;
use crate::routes::api::Authed;
use crate::routes::guilds::{in_channel, parse_id, require};
use crate::service::attachments::{url_escape, verify};
use crate::{ChatState, now_ms};

pub use crate::service::attachments::AttachmentView;

/// Attachments per message.
pub const MAX_PER_MESSAGE: usize = 10;
/// Thumbnails fit in this square.
pub const THUMB_SIZE: u32 = 320;
/// Images larger than this in either dimension get no thumbnail (decompression bombs).
pub const MAX_IMAGE_SIDE: u32 = 12_000;
/// Largest avatar upload.
pub const MAX_AVATAR_BYTES: usize = 8 * 1024 * 1024;
/// Avatars are stored as squares of this side.
pub const AVATAR_SIZE: u32 = 256;

pub fn router(state: ChatState) -> Router {
    let limit = state.config.max_upload_bytes;
    Router::new()
        .route(
            "/api/v1/channels/{channel}/attachments",
            post(upload).layer(DefaultBodyLimit::max(limit)),
        )
        .route(
            "/api/v1/users/@me/avatar",
            axum::routing::put(set_avatar).layer(DefaultBodyLimit::max(MAX_AVATAR_BYTES)),
        )
        .route("/api/v1/avatars/{user}/{file}", get(avatar))
        .route("/api/v1/attachments/{id}/{name}", get(download))
        .route(
            "/api/v1/attachments/{id}/thumbnail/{name}",
            get(download_thumbnail),
        )
        .with_state(state)
}

pub use crate::store::attachments::Attachment;

/// A client's file name made safe to show and to put in a header: no directories, no
/// control or quoting characters, no leading dots, at most 128 characters.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | ';' | ':' | '*' | '?' | '<' | '>' | '|'))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let cut: String = cleaned.chars().take(128).collect();
    if cut.is_empty() { "file".into() } else { cut }
}

/// The type the bytes are, by their signature.
pub fn sniff(b: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| b.starts_with(p);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" {
        Some("video/mp4")
    } else if starts(b"\x1a\x45\xdf\xa3") {
        Some("video/webm")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if starts(b"ID3") || starts(b"\xff\xfb") {
        Some("audio/mpeg")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if starts(b"PK\x03\x04") {
        Some("application/zip")
    } else {
        None
    }
}

/// The content type to store: the sniffed one when the bytes have a signature. A
/// declared media or PDF type the bytes do not bear out is refused; anything else
/// unrecognised is text (when it says so and is UTF-8) or opaque bytes.
pub fn check_type(declared: &str, bytes: &[u8]) -> Result<String, ChatError> {
    let declared = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let strict = declared.starts_with("image/")
        || declared.starts_with("video/")
        || declared.starts_with("audio/")
        || declared == "application/pdf";
    let mismatch = || {
        ChatError::bad_request(
            "content_type_mismatch",
            format!("the file is not {declared}"),
        )
    };
    match sniff(bytes) {
        Some(t) => {
            let same_family = declared.split('/').next() == t.split('/').next();
            // MP4 and Ogg hold audio or video: either declared type is true of the bytes.
            let container = |c: &str| {
                matches!(
                    (t, declared.as_str()),
                    ("video/mp4", "audio/mp4") | ("audio/ogg", "video/ogg")
                ) && c == t
            };
            if container(t) {
                return Ok(declared.clone());
            }
            if strict && !same_family {
                return Err(mismatch());
            }
            Ok(t.to_owned())
        }
        None if strict => Err(mismatch()),
        None if declared == "text/plain" && std::str::from_utf8(bytes).is_ok() => {
            Ok("text/plain; charset=utf-8".into())
        }
        None => Ok("application/octet-stream".into()),
    }
}

/// Decodes an image of a type the server reads, within size limits (no decompression
/// bombs).
fn decode_image(content_type: &str, bytes: &[u8]) -> Option<image::DynamicImage> {
    let format = match content_type {
        "image/png" => image::ImageFormat::Png,
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/gif" => image::ImageFormat::Gif,
        "image/webp" => image::ImageFormat::WebP,
        _ => return None,
    };
    let mut reader = image::ImageReader::with_format(io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    reader.decode().ok()
}

fn png_of(img: &image::DynamicImage) -> Option<Vec<u8>> {
    let mut out = io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

/// A thumbnail and the image's size, for the image types the server decodes.
fn thumbnail(content_type: &str, bytes: &[u8]) -> Option<(Vec<u8>, u32, u32)> {
    let img = decode_image(content_type, bytes)?;
    let (w, h) = (img.width(), img.height());
    Some((png_of(&img.thumbnail(THUMB_SIZE, THUMB_SIZE))?, w, h))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    filename: Option<String>,
}

async fn upload(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<AttachmentView>), ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, id, user).await?;
    require(
        p,
        crate::routes::guilds::send_permission(&c) | Perms::ATTACH_FILES,
    )?;
    let Some(blobs) = state.blobs.clone() else {
        return Err(ChatError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "uploads_unavailable",
            "this server stores no attachments",
        ));
    };
    let bytes = body.map_err(|_| {
        ChatError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!(
                "files are limited to {} bytes",
                state.config.max_upload_bytes
            ),
        )
    })?;
    if bytes.is_empty() {
        return Err(ChatError::bad_request("empty_file", "the file is empty"));
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let content_type = check_type(declared, &bytes)?;
    let filename = clean_filename(q.filename.as_deref().unwrap_or("file"));
    let aid = state.ids.next();
    let data = bytes.to_vec();
    let ct = content_type.clone();
    let thumb = tokio::task::spawn_blocking(move || thumbnail(&ct, &data))
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?;
    blobs
        .put(aid, false, bytes.to_vec())
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?;
    let (mut width, mut height) = (None, None);
    if let Some((png, w, h)) = thumb {
        blobs
            .put(aid, true, png)
            .await
            .map_err(|e| ChatError::Internal(e.to_string()))?;
        (width, height) = (Some(i64::from(w)), Some(i64::from(h)));
    }
    let a = Attachment {
        id: aid,
        uploader_id: user,
        channel_id: c.id,
        message_id: None,
        filename,
        content_type,
        size: bytes.len() as i64,
        width,
        height,
        has_thumb: width.is_some(),
    };
    state.store.insert_attachment(&a, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(AttachmentView::new(&state, &a))))
}

#[derive(Debug, Deserialize)]
struct Signed {
    exp: Option<i64>,
    sig: Option<String>,
}

async fn download(
    State(state): State<ChatState>,
    Path((id, _name)): Path<(String, String)>,
    Query(q): Query<Signed>,
) -> Result<Response, ChatError> {
    serve(&state, &id, q, false).await
}

async fn download_thumbnail(
    State(state): State<ChatState>,
    Path((id, _name)): Path<(String, String)>,
    Query(q): Query<Signed>,
) -> Result<Response, ChatError> {
    serve(&state, &id, q, true).await
}

async fn serve(state: &ChatState, id: &str, q: Signed, thumb: bool) -> Result<Response, ChatError> {
    let not_found = || ChatError::new(StatusCode::NOT_FOUND, "unknown_attachment", "no such file");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let (Some(exp), Some(sig)) = (q.exp, q.sig) else {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "attachment URLs are signed",
        ));
    };
    if !verify(state, id, exp, &sig) {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the URL is not valid, or has expired",
        ));
    }
    let a = state.store.attachment(id).await?.ok_or_else(not_found)?;
    if thumb && !a.has_thumb {
        return Err(not_found());
    }
    let Some(blobs) = state.blobs.clone() else {
        return Err(not_found());
    };
    let bytes = blobs
        .get(id, thumb)
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?
        .ok_or_else(not_found)?;
    let ct = if thumb {
        "image/png"
    } else {
        a.content_type.as_str()
    };
    let inline = ct.starts_with("image/") || ct.starts_with("video/") || ct.starts_with("audio/");
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        url_escape(&a.filename)
    );
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(r)
}

/// An image cropped to its centre square and scaled to [`AVATAR_SIZE`], as PNG.
fn avatar_png(content_type: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let img = decode_image(content_type, bytes)?;
    let side = img.width().min(img.height());
    let square = img.crop_imm(
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    );
    png_of(&square.resize_exact(
        AVATAR_SIZE,
        AVATAR_SIZE,
        image::imageops::FilterType::Triangle,
    ))
}

/// `PUT /api/v1/users/@me/avatar` with an image as the body: the profile's avatar becomes
/// a 256 px square PNG served at a public URL.
async fn set_avatar(
    State(state): State<ChatState>,
    Authed(user): Authed,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<crate::routes::api::UserView>, ChatError> {
    let bytes = body.map_err(|_| {
        ChatError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("avatars are limited to {MAX_AVATAR_BYTES} bytes"),
        )
    })?;
    let Some(blobs) = state.blobs.clone() else {
        return Err(ChatError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "uploads_unavailable",
            "this server stores no files",
        ));
    };
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ct = check_type(declared, &bytes)?;
    let data = bytes.to_vec();
    let png = tokio::task::spawn_blocking(move || avatar_png(&ct, &data))
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?
        .ok_or_else(|| {
            ChatError::bad_request(
                "invalid_avatar",
                "avatars are PNG, JPEG, GIF or WebP images",
            )
        })?;
    let id = state.ids.next();
    blobs
        .put(id, false, png)
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?;
    let mut u = state
        .store
        .user(user)
        .await?
        .ok_or_else(|| ChatError::unauthorized("invalid_token", "no such account"))?;
    let old = u.avatar.clone();
    u.avatar = Some(format!("/api/v1/avatars/{user}/{id}.png"));
    state
        .store
        .set_profile(user, &u.display_name, u.avatar.as_deref())
        .await?;
    if let Some(old_id) = old.as_deref().and_then(|a| avatar_id(user, a)) {
        blobs.delete(old_id).await;
    }
    Ok(Json(crate::routes::api::UserView::from(&u)))
}

/// The blob id of a user's own uploaded avatar URL.
fn avatar_id(user: UserId, url: &str) -> Option<i64> {
    url.strip_prefix(&format!("/api/v1/avatars/{user}/"))?
        .strip_suffix(".png")?
        .parse()
        .ok()
}

/// Avatars are public, like a profile: only a user's current avatar is served.
async fn avatar(
    State(state): State<ChatState>,
    Path((user, file)): Path<(String, String)>,
) -> Result<Response, ChatError> {
    let not_found = || ChatError::new(StatusCode::NOT_FOUND, "unknown_avatar", "no such avatar");
    let uid: UserId = user.parse().map_err(|_| not_found())?;
    let u = state.store.user(uid).await?.ok_or_else(not_found)?;
    let want = format!("/api/v1/avatars/{uid}/{file}");
    let id = avatar_id(uid, &want).ok_or_else(not_found)?;
    if u.avatar.as_deref() != Some(want.as_str()) {
        return Err(not_found());
    }
    let blobs = state.blobs.clone().ok_or_else(not_found)?;
    let bytes = blobs
        .get(id, false)
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?
        .ok_or_else(not_found)?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A new avatar gets a new URL, so this one never changes.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_or_inject() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(clean_filename(".htaccess"), "htaccess");
        assert_eq!(clean_filename("a\"b;\r\nc.txt"), "abc.txt");
        assert_eq!(clean_filename("/"), "file");
        assert_eq!(clean_filename("사진 1.png"), "사진 1.png");
        assert_eq!(clean_filename(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn content_types_follow_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n rest";
        assert_eq!(check_type("image/png", png).unwrap(), "image/png");
        // A PNG declared as JPEG is still an image: stored as what it is.
        assert_eq!(check_type("image/jpeg", png).unwrap(), "image/png");
        assert!(check_type("image/png", b"<html><script>").is_err());
        assert!(check_type("application/pdf", png).is_err());
        assert_eq!(
            check_type("text/html", b"<html>").unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            check_type("text/plain", "안녕".as_bytes()).unwrap(),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            check_type("text/plain", b"\xff\xfe").unwrap(),
            "application/octet-stream"
        );
    }
}
