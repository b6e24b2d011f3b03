//! Group commit: posts that arrive together are written in one transaction, and nothing
//! about a message's order, durability or errors changes. On both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use parlor_chat::model::{ChannelId, MessageId, UserId};
use parlor_chat::store::attachments::Attachment;
use parlor_chat::store::guilds::{Cursor, Message};
use parlor_chat::store::{Store, StoreError};
use serde_json::{Value, json};

/// 64 posts into one channel at once: every one is answered 201, and a client on the
/// gateway sees the 64 `message_create` events in strictly increasing id order, with the
/// ids the posts were answered with; history holds them all.
async fn concurrent_posts_keep_their_order(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("orderly").await;
    let (_, _, general) = s.guild(&owner, &[]).await;
    let mut ws = s.ws().await;
    ws.identify(&owner).await;
    let path = format!("/api/v1/channels/{general}/messages");
    let posts = (0..64).map(|i| {
        let (s, owner, path) = (&s, &owner, &path);
        async move {
            s.post(path, Some(owner), json!({"content": format!("m{i}")}))
                .await
        }
    });
    let answers = futures_util::future::join_all(posts).await;
    let mut posted: Vec<i64> = answers
        .iter()
        .map(|(st, m)| {
            assert_eq!(*st, 201, "{m}");
            m["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    posted.sort_unstable();

    let mut seen = Vec::new();
    while seen.len() < 64 {
        let f = ws.next().await.unwrap();
        if f["t"] == "message_create" {
            seen.push(f["d"]["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "events out of id order: {seen:?}"
    );
    assert_eq!(seen, posted, "the events carry the ids the posts got");

    let (st, page) = s.get(&format!("{path}?limit=100"), &owner).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page.as_array().unwrap().len(), 64);
    s.stop().await;
}

/// One transaction, three messages, the middle one claiming an attachment that does not
/// exist: it alone fails, with a conflict, and the other two are stored.
async fn one_bad_message_fails_alone(db: Db) {
    let s = Server::start(db).await;
    let (owner, owner_id) = s.register("batcher").await;
    let (_, _, general) = s.guild(&owner, &[]).await;
    let (st, first) = s
        .post(
            &format!("/api/v1/channels/{general}/messages"),
            Some(&owner),
            json!({"content": "before"}),
        )
        .await;
    assert_eq!(st, 201, "{first}");
    let last: i64 = first["id"].as_str().unwrap().parse().unwrap();

    let store = Store::open(&s.db_url).await.unwrap();
    let channel = ChannelId(general.parse().unwrap());
    let message = |n: i64, content: &str, attachments: Vec<Attachment>| Message {
        id: MessageId(last + n),
        channel_id: channel,
        author_id: UserId(owner_id.parse().unwrap()),
        content: content.into(),
        created_at: 1,
        attachments,
        ..Message::default()
    };
    let ghost = Attachment {
        id: 999_999_999,
        ..Attachment::default()
    };
    let mut batch = vec![
        message(1, "first of the batch", vec![]),
        message(2, "claims a ghost", vec![ghost]),
        message(3, "last of the batch", vec![]),
    ];
    let outcomes = store
        .insert_messages(&mut batch, |l| MessageId(l.0 + 1))
        .await
        .unwrap();
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        matches!(outcomes[1], Err(StoreError::Conflict)),
        "{:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);

    let page = store.history(channel, Cursor::Latest, 10).await.unwrap();
    let contents: Vec<&str> = page.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        ["last of the batch", "first of the batch", "before"],
        "newest first, without the failed one"
    );
    // The API reads the same.
    let (st, api): (u16, Value) = s
        .get(&format!("/api/v1/channels/{general}/messages"), &owner)
        .await;
    assert_eq!(st, 200);
    assert_eq!(api.as_array().unwrap().len(), 3, "{api}");
    s.stop().await;
}

/// One batch across two channels, one of its ids below a message already in its channel
/// (as when another chat node wrote first): both are stored, and on Postgres, where
/// several nodes write, the late id is moved after the channel's newest.
async fn a_batch_across_channels(db: Db) {
    let s = Server::start(db).await;
    let (owner, owner_id) = s.register("spanner").await;
    let (_, gid, general) = s.guild(&owner, &[]).await;
    let (st, other) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "other", "kind": "text"}),
        )
        .await;
    assert_eq!(st, 201, "{other}");
    let other = ChannelId(other["id"].as_str().unwrap().parse().unwrap());
    let general = ChannelId(general.parse().unwrap());
    let (st, newest) = s
        .post(
            &format!("/api/v1/channels/{}/messages", general.0),
            Some(&owner),
            json!({"content": "already here"}),
        )
        .await;
    assert_eq!(st, 201, "{newest}");
    let newest: i64 = newest["id"].as_str().unwrap().parse().unwrap();

    let store = Store::open(&s.db_url).await.unwrap();
    let author = UserId(owner_id.parse().unwrap());
    let message = |channel_id: ChannelId, id: i64, content: &str| Message {
        id: MessageId(id),
        channel_id,
        author_id: author,
        content: content.into(),
        created_at: 1,
        ..Message::default()
    };
    let mut batch = vec![
        message(other, newest + 10, "in other"),
        message(general, newest - 1, "behind the newest"),
    ];
    let outcomes = store
        .insert_messages(&mut batch, |l| MessageId(l.0 + 1))
        .await
        .unwrap();
    assert!(outcomes.iter().all(|r| r.is_ok()), "{outcomes:?}");
    let moved = batch[1].id.0;
    match db {
        Db::Postgres => assert_eq!(moved, newest + 1, "after the channel's newest"),
        Db::Sqlite => assert_eq!(moved, newest - 1, "one process orders by its lock"),
    }
    for (channel, content) in [(other, "in other"), (general, "behind the newest")] {
        let page = store.history(channel, Cursor::Latest, 10).await.unwrap();
        assert!(
            page.iter().any(|m| m.content == content),
            "{content} is stored"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn group_commit_on_both_stores() {
    for db in BOTH {
        concurrent_posts_keep_their_order(db).await;
        one_bad_message_fails_alone(db).await;
        a_batch_across_channels(db).await;
    }
}
