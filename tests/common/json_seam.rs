//! A second implementation of the SFU control interface, for tests: every call, reply and
//! event goes through JSON and back on its way to and from the in-process SFU. The
//! integration tests run against it with `PARLOR_TEST_SEAM=json`, which proves that
//! nothing crossing the seam depends on sharing memory with the SFU: what a networked
//! implementation carries is enough.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use parlor_proto::control::{
    CloseReason, JoinRequest, Joined, Moderation, ParticipantHandle, Replied, Request, RoomEvents,
    RoomStatus, SfuControl, SfuError,
};
use parlor_proto::{ParticipantId, RoomCaps, RoomId};

/// `v` serialised to JSON text and read back.
fn through<T: Serialize + DeserializeOwned>(v: &T) -> T {
    let text = serde_json::to_string(v).expect("everything crossing the seam serialises");
    serde_json::from_str(&text).expect("and reads back")
}

#[derive(Debug)]
pub struct JsonSeam(pub Arc<dyn SfuControl>, pub EventDelay);

/// How long every room event takes on its way from the SFU to signaling, replies and
/// requests staying fast: a cluster whose event path lags its request path.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventDelay(pub Duration);

#[async_trait]
impl SfuControl for JsonSeam {
    async fn join(&self, req: JoinRequest) -> Result<(Joined, RoomEvents), SfuError> {
        let (joined, mut events) = match self.0.join(through(&req)).await {
            Ok(j) => j,
            Err(e) => return Err(through(&e)),
        };
        let (tx, out) = RoomEvents::channel();
        let delay = self.1.0;
        // Stamped as they leave the SFU, handed on `delay` later, in order.
        let (stamped, mut later) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if stamped.send((Instant::now() + delay, ev)).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some((at, ev)) = later.recv().await {
                tokio::time::sleep_until(at).await;
                if tx.send(through(&ev)).await.is_err() {
                    break;
                }
            }
        });
        Ok((through(&joined), out))
    }

    async fn request(&self, who: &ParticipantHandle, req: Request) -> Replied {
        through(&self.0.request(&through(who), through(&req)).await)
    }

    async fn leave(&self, who: &ParticipantHandle, reason: CloseReason) {
        self.0.leave(&through(who), through(&reason)).await
    }

    async fn set_caps(&self, room: &RoomId, caps: RoomCaps) -> Result<RoomStatus, SfuError> {
        through(&self.0.set_caps(&through(room), through(&caps)).await)
    }

    async fn room_status(&self, room: &RoomId) -> Result<RoomStatus, SfuError> {
        through(&self.0.room_status(&through(room)).await)
    }

    async fn check_offer(&self, sdp: &str) -> Result<(), SfuError> {
        through(&self.0.check_offer(&through(&sdp.to_owned())).await)
    }

    async fn moderate(
        &self,
        room: &RoomId,
        identity: &ParticipantId,
        action: Moderation,
    ) -> Result<(), SfuError> {
        through(
            &self
                .0
                .moderate(&through(room), &through(identity), through(&action))
                .await,
        )
    }
}
