//! WHIP publish into a room, then WHEP playback of that publisher, with webrtc-rs peers.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{Bare, Client, TestServer, make_track, spawn_pump};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_local::TrackLocal;

async fn post_sdp(url: &str, token: &str, sdp: String) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publish_then_whep_play() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut watcher = Client::join(&server, &server.token("studio", "watcher")).await?;

    // WHIP: publish audio and video from a plain peer connection.
    let publisher = Bare::new().await?;
    let mic = make_track("obs", "microphone");
    let cam = make_track("obs", "camera");
    for t in [&mic, &cam] {
        let t: std::sync::Arc<dyn TrackLocal> = t.clone();
        publisher.pc.add_track(t).await?;
    }
    let offer = publisher.offer().await?;
    let token = server.token("studio", "obs");
    let resp = post_sdp(&server.url("/whip/rooms/studio"), &token, offer).await?;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "application/sdp");
    let location = resp.headers()["location"].to_str()?.to_owned();
    assert!(
        location.starts_with("/whip/rooms/studio/sessions/"),
        "{location}"
    );
    publisher.apply_answer(resp.text().await?).await?;
    let _pumps = [spawn_pump(mic, false), spawn_pump(cam, true)];

    // The WHIP publisher is a participant like any other.
    let joined = watcher.wait_event("participant_joined").await?;
    assert_eq!(
        common::FrameExt::to_json(&joined)["d"]["participant"]["identity"],
        "obs"
    );
    let published = watcher.wait_event("track_published").await?;
    let src = common::FrameExt::to_json(&published)["d"]["track"]["source"].clone();
    assert!(src == "microphone" || src == "camera", "{src}");
    watcher
        .wait_media("watcher receives the WHIP publisher", |t| {
            t.values()
                .filter(|r| r.owner == "obs" && r.packets > 10)
                .count()
                == 2
        })
        .await?;

    // WHEP: play that participant.
    let viewer = Bare::new().await?;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        viewer
            .pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
    }
    let offer = viewer.offer().await?;
    let view_token = server.token_with("studio", "viewer", |c| c.grants.publish.clear());
    let resp = post_sdp(
        &server.url("/whep/rooms/studio/participants/obs"),
        &view_token,
        offer.clone(),
    )
    .await?;
    assert_eq!(resp.status(), 201);
    let whep_location = resp.headers()["location"].to_str()?.to_owned();
    viewer.apply_answer(resp.text().await?).await?;
    let deadline = std::time::Instant::now() + common::WAIT;
    while viewer.packets(RtpCodecKind::Audio) < 10 || viewer.packets(RtpCodecKind::Video) < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "WHEP viewer got audio {} video {}",
            viewer.packets(RtpCodecKind::Audio),
            viewer.packets(RtpCodecKind::Video)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Errors: unknown participant 404, no token 401, subscribe not granted 403, bad SDP 400.
    let r = post_sdp(
        &server.url("/whep/rooms/studio/participants/nobody"),
        &view_token,
        offer.clone(),
    )
    .await?;
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["code"], "unknown_participant");
    let r = reqwest::Client::new()
        .post(server.url("/whep/rooms/studio/participants/obs"))
        .header("content-type", "application/sdp")
        .body(offer.clone())
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let no_sub = server.token_with("studio", "nosub", |c| c.grants.subscribe = false);
    let r = post_sdp(
        &server.url("/whep/rooms/studio/participants/obs"),
        &no_sub,
        offer.clone(),
    )
    .await?;
    assert_eq!(r.status(), 403);
    let r = post_sdp(
        &server.url("/whip/rooms/studio"),
        &server.token("studio", "broken"),
        "v=0\r\nnonsense".into(),
    )
    .await?;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["code"], "invalid_sdp");

    // DELETE ends each session; a second DELETE finds nothing.
    let http = reqwest::Client::new();
    assert_eq!(
        http.delete(server.url(&whep_location))
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(
        http.delete(server.url(&location)).send().await?.status(),
        200
    );
    assert_eq!(
        http.delete(server.url(&location)).send().await?.status(),
        404
    );
    loop {
        let left = watcher.wait_event("participant_left").await?;
        if common::FrameExt::to_json(&left)["d"]["identity"] == "obs" {
            break;
        }
    }
    server.stop().await;
    Ok(())
}
