//! Routing, replay, shedding and resume of chat sessions, without sockets.

use super::*;

fn frames(n: Next) -> Vec<String> {
    match n {
        Next::Frames(f) => f.iter().map(|s| s.to_string()).collect(),
        other => panic!("expected frames, got {other:?}"),
    }
}

fn seqs(f: &[String]) -> Vec<u64> {
    f.iter()
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            v["s"].as_u64().unwrap()
        })
        .collect()
}

fn hub(replay: usize, shed_after: usize) -> Hub {
    Hub::new(HubLimits {
        replay,
        shed_after,
        session_timeout: Duration::from_secs(60),
    })
}

fn visible(g: i64, chans: &[i64]) -> HashMap<GuildId, HashSet<ChannelId>> {
    HashMap::from([(GuildId(g), chans.iter().copied().map(ChannelId).collect())])
}

#[test]
fn channel_events_reach_only_those_who_see_the_channel() {
    let h = hub(100, 10);
    let (a, ga) = h.open("a".into(), UserId(1), None, visible(7, &[70, 71]));
    let (b, gb) = h.open("b".into(), UserId(2), None, visible(7, &[70]));
    let msg = Event::new(EventKind::MessageCreate, &"x");
    h.publish(
        &Audience::Channel {
            guild_id: GuildId(7),
            channel_id: ChannelId(71),
        },
        &msg,
    );
    assert_eq!(frames(a.take(ga)).len(), 1);
    assert!(matches!(b.take(gb), Next::Idle));
    h.publish(&Audience::Guild(GuildId(7)), &msg);
    assert_eq!(seqs(&frames(b.take(gb))), vec![1]);
    assert_eq!(seqs(&frames(a.take(ga))), vec![2]);
    h.publish(&Audience::Users(vec![UserId(2)]), &msg);
    assert_eq!(seqs(&frames(b.take(gb))), vec![2]);
    assert!(matches!(a.take(ga), Next::Idle));
}

#[test]
fn resume_replays_after_seq_and_skips_stale_ephemeral_events() {
    let h = hub(100, 10);
    let (a, g1) = h.open("a".into(), UserId(1), None, visible(7, &[70]));
    let msg = Event::new(EventKind::MessageCreate, &"x");
    h.publish(&Audience::Guild(GuildId(7)), &msg);
    h.publish(
        &Audience::Guild(GuildId(7)),
        &Event::new(EventKind::TypingStart, &"t"),
    );
    assert_eq!(seqs(&frames(a.take(g1))), vec![1, 2]);
    h.detach(&a, g1);
    for _ in 0..5 {
        h.publish(&Audience::Guild(GuildId(7)), &msg);
    }
    h.publish(
        &Audience::Guild(GuildId(7)),
        &Event::new(EventKind::TypingStart, &"t"),
    );
    assert_eq!(
        h.resume("a", UserId(2), 1).unwrap_err(),
        ResumeError::Invalid
    );
    let (a2, g2) = h.resume("a", UserId(1), 1).unwrap();
    // The ephemeral event after seq 1 is not replayed; messages are, in order.
    assert_eq!(seqs(&frames(a2.take(g2))), vec![3, 4, 5, 6, 7]);
    assert!(matches!(a.take(g1), Next::Replaced));
}

#[test]
fn slow_consumers_shed_ephemeral_events_and_overflow_on_messages() {
    let h = hub(8, 3);
    let (a, g) = h.open("a".into(), UserId(1), None, visible(7, &[70]));
    let msg = Event::new(EventKind::MessageCreate, &"x");
    let typing = Event::new(EventKind::TypingStart, &"t");
    for _ in 0..3 {
        h.publish(&Audience::Guild(GuildId(7)), &msg);
    }
    h.publish(&Audience::Guild(GuildId(7)), &typing);
    assert_eq!(a.seq(), 3, "typing is shed once 3 events wait");
    assert_eq!(seqs(&frames(a.take(g))), vec![1, 2, 3]);
    for _ in 0..8 {
        h.publish(&Audience::Guild(GuildId(7)), &msg);
    }
    assert!(!matches!(a.take(g), Next::Overflowed), "8 unsent fit");
    for _ in 0..9 {
        h.publish(&Audience::Guild(GuildId(7)), &msg);
    }
    assert!(matches!(a.take(g), Next::Overflowed));
    assert_eq!(
        h.resume("a", UserId(1), 11).unwrap_err(),
        ResumeError::TooOld
    );
}

#[test]
fn a_resume_older_than_the_buffer_is_refused() {
    let h = hub(4, 100);
    let (a, g) = h.open("a".into(), UserId(1), None, visible(7, &[70]));
    let msg = Event::new(EventKind::MessageCreate, &"x");
    for _ in 0..6 {
        h.publish(&Audience::Guild(GuildId(7)), &msg);
        let _ = a.take(g);
    }
    h.detach(&a, g);
    // Buffer holds 3..=6.
    assert_eq!(
        h.resume("a", UserId(1), 1).unwrap_err(),
        ResumeError::TooOld
    );
    assert!(h.resume("a", UserId(1), 2).is_ok());
}

#[test]
fn detached_sessions_expire() {
    let h = hub(4, 100);
    let (a, g) = h.open("a".into(), UserId(1), None, visible(7, &[70]));
    h.detach(&a, g);
    assert!(h.sweep(Instant::now()).is_empty());
    assert_eq!(
        h.sweep(Instant::now() + Duration::from_secs(61)),
        vec![UserId(1)]
    );
    assert!(!h.online(UserId(1)));
    assert_eq!(
        h.resume("a", UserId(1), 0).unwrap_err(),
        ResumeError::Invalid
    );
}

#[test]
fn ending_a_sign_in_session_ends_its_sockets_only() {
    let h = hub(16, 100);
    let (a, ga) = h.open("a".into(), UserId(1), Some("s1".into()), visible(7, &[70]));
    let (b, gb) = h.open("b".into(), UserId(1), Some("s2".into()), visible(7, &[70]));
    let (bot, gbot) = h.open("bot".into(), UserId(1), None, visible(7, &[70]));
    assert_eq!(h.end_sessions_of(UserId(1), |s| s == "s1").len(), 1);
    assert!(matches!(a.take(ga), Next::Ended));
    h.publish(
        &Audience::Guild(GuildId(7)),
        &Event::new(EventKind::MessageCreate, &1),
    );
    assert!(matches!(b.take(gb), Next::Frames(_)));
    assert!(matches!(bot.take(gbot), Next::Frames(_)));
    assert_eq!(
        h.resume("a", UserId(1), 0).unwrap_err(),
        ResumeError::Invalid
    );
    assert_eq!(
        h.end_sessions_of(UserId(2), |s| s == "s2").len(),
        0,
        "another user's"
    );
    assert!(h.online(UserId(1)));
}

#[test]
fn a_written_ready_leaves_the_replay_buffer_and_later_events_stay() {
    let h = hub(100, 10);
    let (a, g1) = h.open("a".into(), UserId(1), None, visible(7, &[70]));
    let msg = Event::new(EventKind::MessageCreate, &"x");
    let channel = Audience::Channel {
        guild_id: GuildId(7),
        channel_id: ChannelId(70),
    };
    // An event that slipped in before ready, then ready.
    h.publish(&channel, &msg);
    a.push_ready(&Event::new(EventKind::Ready, &"a large ready"));
    // Not written yet: forgetting keeps it (the connection may still need to write it).
    a.forget_ready();
    assert_eq!(seqs(&frames(a.take(g1))), vec![1, 2]);
    a.forget_ready();
    h.publish(&channel, &msg);
    assert_eq!(seqs(&frames(a.take(g1))), vec![3]);
    a.outbox.detach(g1);
    // Nothing up to ready can be asked for again; what came after still replays.
    assert_eq!(a.outbox.resume(0), Err(ResumeError::TooOld));
    assert_eq!(a.outbox.resume(1), Err(ResumeError::TooOld));
    let (g2, replayed) = a.outbox.resume(2).unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(seqs(&frames(a.take(g2))), vec![3]);
}
