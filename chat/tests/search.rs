//! Search in Korean, Japanese, Chinese and English, with filters and pagination, on both
//! stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn contents(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn scenario(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("owner").await;
    let (member, _) = s.register("member").await;
    let (outsider, _) = s.register("outsider").await;
    let (_, gid, general) = s.guild(&owner, &[&member]).await;
    let (_, secret) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "secret", "kind": "text"}),
        )
        .await;
    let secret = id(&secret);
    s.send(
        Method::PUT,
        &format!("/api/v1/channels/{secret}/permissions/{gid}"),
        &owner,
        json!({"type": "role", "deny": "1"}),
    )
    .await;
    let say = |token: &str, ch: &str, text: &str| {
        let (s, token, ch, text) = (&s, token.to_owned(), ch.to_owned(), text.to_owned());
        async move {
            let (st, m) = s
                .post(
                    &format!("/api/v1/channels/{ch}/messages"),
                    Some(&token),
                    json!({"content": text}),
                )
                .await;
            assert_eq!(st, 201, "{m}");
            id(&m)
        }
    };
    say(&owner, &general, "오늘 회의는 3시에 시작합니다").await;
    say(&member, &general, "회의록 공유드립니다 @owner").await;
    say(&owner, &general, "점심 뭐 먹을까요").await;
    say(&owner, &general, "Deploy finished").await;
    say(&member, &general, "the deployment FAILED").await;
    say(&owner, &general, "会議は明日です").await;
    say(&owner, &general, "我们明天开会").await;
    say(&owner, &general, "100% done_now").await;
    say(&owner, &secret, "비밀 회의 deploy").await;

    let search = |token: &str, q: &str| {
        let (s, token, q, gid) = (&s, token.to_owned(), q.to_owned(), gid.clone());
        async move {
            let url = reqwest::Url::parse_with_params(
                &s.url(&format!("/api/v1/guilds/{gid}/messages/search")),
                &[("q", q.as_str())],
            )
            .unwrap();
            let r = s.http.get(url).bearer_auth(&token).send().await.unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Korean by substring, including inside a word; newest first; the hidden channel's
    // message never shows to the member.
    let (st, p) = search(&member, "회의").await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        contents(&p),
        vec!["회의록 공유드립니다 @owner", "오늘 회의는 3시에 시작합니다"]
    );
    assert_eq!(
        contents(&search(&member, "의는").await.1),
        vec!["오늘 회의는 3시에 시작합니다"]
    );
    // The owner sees the hidden channel too.
    assert_eq!(contents(&search(&owner, "회의").await.1).len(), 3);
    // Japanese and Chinese.
    assert_eq!(
        contents(&search(&member, "会議").await.1),
        vec!["会議は明日です"]
    );
    assert_eq!(
        contents(&search(&member, "开会").await.1),
        vec!["我们明天开会"]
    );
    // English, case-insensitive, several terms, phrases, and wildcards taken literally.
    assert_eq!(
        contents(&search(&member, "DEPLOY").await.1),
        vec!["the deployment FAILED", "Deploy finished"]
    );
    assert_eq!(
        contents(&search(&member, "deploy failed").await.1),
        vec!["the deployment FAILED"]
    );
    assert_eq!(
        contents(&search(&member, "\"deploy finished\"").await.1),
        vec!["Deploy finished"]
    );
    assert_eq!(
        contents(&search(&member, "100%").await.1),
        vec!["100% done_now"]
    );
    assert!(
        contents(&search(&member, "d_n").await.1).is_empty(),
        "_ is not a wildcard"
    );

    // Filters.
    assert_eq!(
        contents(&search(&member, "from:member").await.1),
        vec!["the deployment FAILED", "회의록 공유드립니다 @owner"]
    );
    assert_eq!(
        contents(&search(&member, "mentions:owner").await.1),
        vec!["회의록 공유드립니다 @owner"]
    );
    assert_eq!(
        contents(&search(&member, "in:general 점심").await.1),
        vec!["점심 뭐 먹을까요"]
    );
    assert!(contents(&search(&member, "in:secret").await.1).is_empty());
    assert!(contents(&search(&member, "from:nobody").await.1).is_empty());
    assert!(contents(&search(&member, "회의 before:1970-01-02").await.1).is_empty());
    assert_eq!(
        contents(&search(&member, "회의 after:1970-01-01").await.1).len(),
        2
    );
    assert_eq!(
        contents(&search(&member, "회의 before:2999-01-01").await.1).len(),
        2
    );
    assert!(contents(&search(&member, "has:attachment").await.1).is_empty());

    // Pages: 30 matches in pages of 10, newest first, none twice.
    for i in 0..30 {
        say(&owner, &general, &format!("페이지 {i:02} 검색")).await;
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut params = vec![("q", "검색".to_owned()), ("limit", "10".to_owned())];
        if let Some(b) = &before {
            params.push(("before", b.clone()));
        }
        let url = reqwest::Url::parse_with_params(
            &s.url(&format!("/api/v1/guilds/{gid}/messages/search")),
            &params,
        )
        .unwrap();
        let p: Value = s
            .http
            .get(url)
            .bearer_auth(&member)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(contents(&p));
        match p["next_before"].as_str() {
            Some(b) => before = Some(b.to_owned()),
            None => break,
        }
    }
    let want: Vec<String> = (0..30)
        .rev()
        .map(|i| format!("페이지 {i:02} 검색"))
        .collect();
    assert_eq!(seen, want);

    // The trigram index follows edits and deletions: a message is found by its text as
    // it is now, and not at all once deleted.
    let edited = say(&owner, &general, "보관소 원래 문장 typo").await;
    let gone = say(&owner, &general, "보관소 지울 문장 ephemeral").await;
    assert_eq!(contents(&search(&member, "보관소").await.1).len(), 2);
    let (st, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/channels/{general}/messages/{edited}"),
            &owner,
            json!({"content": "보관소 고친 문장 fixed"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{general}/messages/{gone}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert!(contents(&search(&member, "typo").await.1).is_empty());
    assert!(contents(&search(&member, "ephemeral").await.1).is_empty());
    assert_eq!(
        contents(&search(&member, "fixed").await.1),
        vec!["보관소 고친 문장 fixed"]
    );
    assert_eq!(
        contents(&search(&member, "고친 문장").await.1),
        vec!["보관소 고친 문장 fixed"]
    );

    // Many newer matches that a filter rejects (another channel) do not hide older ones
    // that it keeps.
    for i in 0..300 {
        say(&owner, &secret, &format!("회의록 잡음 {i}")).await;
    }
    let url = reqwest::Url::parse_with_params(
        &s.url(&format!("/api/v1/channels/{general}/messages/search")),
        &[("q", "회의록")],
    )
    .unwrap();
    let p: Value = s
        .http
        .get(url)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(contents(&p), vec!["회의록 공유드립니다 @owner"]);

    // A channel's own search.
    let (st, p) = s
        .get(
            &format!("/api/v1/channels/{general}/messages/search?q=%EC%A0%90%EC%8B%AC"),
            &member,
        )
        .await;
    assert_eq!(
        (st, contents(&p)),
        (200, vec!["점심 뭐 먹을까요".to_owned()])
    );
    let (st, _) = s
        .get(
            &format!("/api/v1/channels/{secret}/messages/search?q=x"),
            &member,
        )
        .await;
    assert_eq!(st, 404);

    // Bad input.
    for q in ["before:someday", "has:link", "a b c d e f"] {
        let (st, b) = search(&member, q).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("invalid_query")),
            "{q}"
        );
    }
    let (st, _) = search(&outsider, "회의").await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn search_finds_korean_and_english_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
