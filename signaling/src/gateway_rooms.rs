//! A connection's room requests: join, leave, and what goes to the SFU (offers, answers,
//! publishing and subscribing), each reply in its place among the room events.

use super::*;

impl Connection {
    pub(super) async fn room_op(
        &mut self,
        id: Option<u64>,
        session: &Arc<Session>,
        msg: ClientMessage,
    ) {
        let sfu = self.state.sfu.clone();
        match msg {
            ClientMessage::Join(j) => {
                if session.handle().is_some() {
                    self.reply_error(id, "already_joined", "already in the room");
                    return;
                }
                let c = &session.claims;
                session.hold();
                let req = JoinRequest {
                    room: c.room.clone(),
                    identity: c.sub.clone(),
                    name: c.display_name().to_owned(),
                    grants: c.grants.clone(),
                    caps: c.caps,
                    hidden: false,
                    auto_subscribe: j.auto_subscribe,
                };
                let started = std::time::Instant::now();
                match sfu.join(req).await {
                    Ok((joined, erx)) => {
                        self.state
                            .metrics
                            .join_duration
                            .observe(started.elapsed().as_secs_f64());
                        session.set_handle(Some(joined.handle.clone()));
                        self.record(session).await;
                        tokio::spawn(pump(session.clone(), erx));
                        session.reply(
                            ServerMessage::Joined(Joined {
                                room: joined.handle.room,
                                me: joined.me,
                                participants: joined.participants,
                            }),
                            id,
                        );
                    }
                    Err(e) => self.sfu_error(session, id, e),
                }
            }
            ClientMessage::Leave(_) => match session.set_handle(None) {
                Some(h) => {
                    self.record(session).await;
                    sfu.leave(&h, CloseReason::Left).await;
                    session.emit(ServerMessage::Left(Empty {}), id);
                }
                None => self.reply_error(id, "not_joined", "not in the room"),
            },
            msg => {
                let Some(h) = session.handle() else {
                    self.reply_error(id, "not_joined", "join the room first");
                    return;
                };
                let req = match msg {
                    ClientMessage::Offer(o) => Request::Offer {
                        sdp: o.sdp,
                        tracks: o.tracks,
                        infer_sources: false,
                    },
                    ClientMessage::Answer(a) => Request::Answer {
                        offer_id: a.offer_id,
                        sdp: a.sdp,
                    },
                    ClientMessage::Unpublish(t) => Request::Unpublish(t.track_id),
                    ClientMessage::Mute(m) => Request::Mute(m.track_id, m.muted),
                    ClientMessage::Subscribe(t) => Request::Subscribe(t.track_id),
                    ClientMessage::Unsubscribe(t) => Request::Unsubscribe(t.track_id),
                    ClientMessage::Pause(p) => Request::Pause(p.track_id, p.paused),
                    ClientMessage::Quality(q) => Request::Quality(q.track_id, q.quality),
                    ClientMessage::IceRestart(_) => Request::IceRestart,
                    _ => return,
                };
                session.hold();
                let replied = sfu.request(&h, req).await;
                let msg = match replied.result {
                    Ok(Reply::Answer { sdp, tracks }) => {
                        ServerMessage::Answer(ServerAnswer { sdp, tracks })
                    }
                    Ok(Reply::Ok) => ServerMessage::Ok(Empty {}),
                    Err(e) => self.error_message(e),
                };
                session.reply_in_order(replied.after_event, msg, id).await;
            }
        }
    }

    /// Answers a request the SFU refused, releasing the events held meanwhile.
    pub(super) fn sfu_error(&self, session: &Session, id: Option<u64>, e: SfuError) {
        session.reply(self.error_message(e), id);
    }

    /// The client's error for what the SFU refused, counted.
    fn error_message(&self, e: SfuError) -> ServerMessage {
        self.state
            .metrics
            .errors
            .with_label_values(&[e.code()])
            .inc();
        ServerMessage::Error(ErrorBody {
            code: e.code().into(),
            message: e.to_string(),
        })
    }
}
