//! Attachments over real HTTP on both stores: uploads with type checks and size limits,
//! thumbnails, signed downloads, names that cannot escape the store, and messages that
//! carry files.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(
    s: &Server,
    token: &str,
    channel: &str,
    name: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(
        &s.url(&format!("/api/v1/channels/{channel}/attachments")),
        &[("filename", name)],
    )
    .unwrap();
    let r = s
        .http
        .post(url)
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn scenario(db: Db) {
    let s = Server::start_with(db, |c| c.max_upload_bytes = 256 * 1024).await;
    let (owner, _) = s.register("owner").await;
    let (member, _) = s.register("member").await;
    let (_, gid, general) = s.guild(&owner, &[&member]).await;
    let mut ws = s.ws().await;
    ws.identify(&member).await;

    // An image with a hostile name: stored under its id, shown under a clean name, with
    // a thumbnail.
    let image = png(800, 600);
    let (st, a) = upload(
        &s,
        &owner,
        &general,
        "../../etc/passwd.png",
        "image/png",
        image.clone(),
    )
    .await;
    assert_eq!(st, 201, "{a}");
    assert_eq!(a["filename"], "passwd.png");
    assert_eq!(
        (a["width"].as_i64(), a["height"].as_i64()),
        (Some(800), Some(600))
    );
    assert_eq!(a["content_type"], "image/png");
    let aid = id(&a);
    let mut stored: Vec<String> = std::fs::read_dir(&s.files)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    stored.sort();
    assert_eq!(stored, vec![aid.clone(), format!("{aid}.thumb.png")]);
    assert!(!s.files.parent().unwrap().join("etc").exists());

    // Signed downloads; tampered or unsigned URLs are refused.
    let r = s
        .http
        .get(s.url(a["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().to_vec(), image);
    let thumb = s
        .http
        .get(s.url(a["thumbnail_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width(), t.height()), (320, 240));
    let url = a["url"].as_str().unwrap();
    let tampered = url.replace(&aid, &(aid.parse::<i64>().unwrap() + 1).to_string());
    let r = s.http.get(s.url(&tampered)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let bare = url.split('?').next().unwrap();
    assert_eq!(s.http.get(s.url(bare)).send().await.unwrap().status(), 403);

    // Type checks and size limits.
    let (st, b) = upload(
        &s,
        &owner,
        &general,
        "x.png",
        "image/png",
        b"<script>alert(1)</script>".to_vec(),
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("content_type_mismatch"))
    );
    let (st, html) = upload(
        &s,
        &owner,
        &general,
        "page.html",
        "text/html",
        b"<html>hi</html>".to_vec(),
    )
    .await;
    assert_eq!(
        (st, html["content_type"].as_str()),
        (201, Some("application/octet-stream"))
    );
    let r = s
        .http
        .get(s.url(html["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let (st, b) = upload(
        &s,
        &owner,
        &general,
        "big.bin",
        "application/octet-stream",
        vec![7; 300 * 1024],
    )
    .await;
    assert_eq!((st, b["code"].as_str()), (413, Some("file_too_large")));
    let (st, b) = upload(&s, &owner, &general, "empty", "text/plain", Vec::new()).await;
    assert_eq!((st, b["code"].as_str()), (400, Some("empty_file")));

    // A message carries the image, once; nobody else can attach someone's upload.
    let msgs = format!("/api/v1/channels/{general}/messages");
    let (st, b) = s
        .post(
            &msgs,
            Some(&member),
            json!({"content": "mine?", "attachments": [aid]}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_attachment")));
    let (st, m) = s
        .post(&msgs, Some(&owner), json!({"attachments": [aid]}))
        .await;
    assert_eq!(st, 201, "{m}");
    assert_eq!(m["attachments"][0]["filename"], "passwd.png");
    let f = ws.dispatch("message_create").await;
    assert_eq!(f["d"]["attachments"][0]["id"], aid.as_str());
    let (st, b) = s
        .post(
            &msgs,
            Some(&owner),
            json!({"content": "again", "attachments": [aid]}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_attachment")));
    let (st, b) = s
        .post(
            &msgs,
            Some(&owner),
            json!({"content": "x", "attachments": ["nope"]}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_attachment")));
    let (st, b) = s
        .post(&msgs, Some(&owner), json!({"attachments": []}))
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_content")));
    let (_, page) = s.get(&format!("{msgs}?limit=1"), &member).await;
    assert_eq!(page[0]["attachments"][0]["width"], 800);
    let (_, found) = s
        .get(
            &format!("/api/v1/guilds/{gid}/messages/search?q=has%3Aattachment"),
            &member,
        )
        .await;
    assert_eq!(found["messages"][0]["id"], m["id"]);

    // Without the attach permission, no uploads.
    s.send(
        Method::PATCH,
        &format!("/api/v1/guilds/{gid}/roles/{gid}"),
        &owner,
        json!({"permissions": ((1u64 << 0) | (1 << 3)).to_string()}),
    )
    .await;
    let (st, _) = upload(&s, &member, &general, "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(st, 403);

    // Deleting the message deletes its files.
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("{msgs}/{}", id(&m)),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert!(!s.files.join(&aid).exists());
    assert!(!s.files.join(format!("{aid}.thumb.png")).exists());

    // Deleting a channel deletes the files posted in it, claimed or not.
    let (_, ch) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "media", "kind": "text"}),
        )
        .await;
    let ch = id(&ch);
    let (_, a) = upload(&s, &owner, &ch, "a.png", "image/png", png(40, 40)).await;
    let (_, loose) = upload(&s, &owner, &ch, "b.txt", "text/plain", b"b".to_vec()).await;
    s.post(
        &format!("/api/v1/channels/{ch}/messages"),
        Some(&owner),
        json!({"attachments": [id(&a)]}),
    )
    .await;
    assert!(s.files.join(id(&a)).exists() && s.files.join(id(&loose)).exists());
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{ch}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert!(!s.files.join(id(&a)).exists());
    assert!(!s.files.join(id(&loose)).exists());
    s.stop().await;
}

#[tokio::test]
async fn attachments_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}

/// Avatars: an uploaded image becomes a public 256 px square; only a user's current
/// avatar is served, and no hand-written URL can point at another stored file.
async fn avatars(db: Db) {
    let s = Server::start(db).await;
    let (token, uid) = s.register("pic").await;
    let put = |body: Vec<u8>, ct: &str| {
        let (s, token, ct) = (&s, token.clone(), ct.to_owned());
        async move {
            let r = s
                .http
                .put(s.url("/api/v1/users/@me/avatar"))
                .bearer_auth(&token)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, me) = put(png(600, 400), "image/png").await;
    assert_eq!(st, 200, "{me}");
    let url = me["avatar"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("/api/v1/avatars/{uid}/")));
    let r = s.http.get(s.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (256, 256));

    // A new avatar replaces the old one; the old URL is gone.
    let (_, me2) = put(png(300, 300), "image/png").await;
    let url2 = me2["avatar"].as_str().unwrap().to_owned();
    assert_ne!(url, url2);
    assert_eq!(s.http.get(s.url(&url)).send().await.unwrap().status(), 404);

    let (st, b) = put(b"not an image".to_vec(), "image/png").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("content_type_mismatch"))
    );
    let (st, b) = put(b"plain text".to_vec(), "text/plain").await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_avatar")));
    let (st, b) = s
        .send(
            Method::PATCH,
            "/api/v1/users/@me",
            &token,
            json!({"avatar": format!("/api/v1/avatars/{uid}/12345.png")}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_avatar")));
    assert_eq!(
        s.http
            .get(s.url(&format!("/api/v1/avatars/{uid}/12345.png")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn avatars_on_both_stores() {
    for db in BOTH {
        avatars(db).await;
    }
}

/// An S3-compatible store instead of the disk: an S3 server (moto's, from PyPI) on a
/// free port holds the files, and checks the requests' signatures.
#[tokio::test]
async fn attachments_in_an_s3_compatible_store() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server is installed by scripts/test.sh (pip install 'moto[server]')");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http
            .put(format!("{endpoint}/parlor"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the S3 server did not start");
    let s3 = parlor_chat::store::blobs::S3Config {
        endpoint: endpoint.clone(),
        bucket: "parlor".into(),
        region: "us-east-1".into(),
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        prefix: "chat/".into(),
    };
    let bucket = parlor_chat::store::blobs::Blobs::s3(s3.clone()).unwrap();
    let s = Server::start_with(Db::Sqlite, |c| c.s3 = Some(s3)).await;
    let (owner, _) = s.register("owner").await;
    let (_, _, general) = s.guild(&owner, &[]).await;
    let image = png(64, 48);
    let (st, a) = upload(&s, &owner, &general, "cat.png", "image/png", image.clone()).await;
    assert_eq!(st, 201, "{a}");
    let aid = id(&a);
    // The bytes and the thumbnail are in the bucket, not on disk; the bucket refuses
    // requests without a signature.
    let n: i64 = aid.parse().unwrap();
    assert_eq!(bucket.get(n, false).await.unwrap(), Some(image.clone()));
    assert!(bucket.get(n, true).await.unwrap().is_some());
    assert!(!s.files.join(&aid).exists());
    let anonymous = http
        .get(format!("{endpoint}/parlor/chat/{aid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    // Served back through the signed URL.
    let r = s
        .http
        .get(s.url(a["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), image);
    // Deleting the message deletes the objects.
    let (_, m) = s
        .post(
            &format!("/api/v1/channels/{general}/messages"),
            Some(&owner),
            json!({"attachments": [aid]}),
        )
        .await;
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{general}/messages/{}", id(&m)),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(bucket.get(n, false).await.unwrap(), None);
    assert_eq!(bucket.get(n, true).await.unwrap(), None);
    s.stop().await;
    let _ = server.kill();
    let _ = server.wait();
}
