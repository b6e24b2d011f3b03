//! Bots, slash commands and webhooks.
//!
//! A bot is an application owned by a user, with its own bot account and a bot token
//! (`Authorization: Bot <token>`, or `"token": "Bot <token>"` in the WebSocket's
//! identify). It joins guilds through invites like anyone. It registers slash commands;
//! when a member sends `/name args` in a channel the bot can see, the bot receives an
//! `interaction_create` event over its WebSocket and, when it has an interactions URL,
//! a signed POST there. It answers once, within 15 minutes, and the answer is posted in
//! the channel as the bot. Incoming webhooks post into one channel with a secret URL.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::UserId;
use crate::model::perms::Perms;
use crate::routes::api::{Authed, Body, UserAuthed};
use crate::routes::guilds::{clean_name, in_channel, parse_id, require};
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::service::views::MessageView;
use crate::service::views::{InteractionOption, InteractionUser, InteractionView};
use crate::store::User;
use crate::store::bots::{App, Command, CommandOption};
use crate::store::guilds::{Channel, Message};
use crate::{ChatState, now_ms, service::auth};

/// How long a bot has to answer an interaction.
pub const INTERACTION_TTL_MS: i64 = 15 * 60 * 1000;
/// Commands per bot.
pub const MAX_COMMANDS: usize = 100;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/applications", post(create_app).get(list_apps))
        .route("/api/v1/applications/{app}", patch(update_app))
        .route(
            "/api/v1/applications/{app}/commands",
            get(list_commands).put(set_commands),
        )
        .route("/api/v1/guilds/{guild}/commands", get(guild_commands))
        .route(
            "/api/v1/interactions/{id}/{token}/callback",
            post(interaction_callback),
        )
        .route(
            "/api/v1/channels/{channel}/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route("/api/v1/webhooks/{id}", delete(delete_webhook))
        .route("/api/v1/webhooks/{id}/{token}", post(execute_webhook))
        .with_state(state)
}

/// A non-human account to post as: no password can sign in to it.
fn bot_account(state: &ChatState, name: &str, prefix: &str) -> User {
    let id: UserId = state.ids.next();
    User {
        id,
        username: format!("{prefix}{id}"),
        display_name: name.to_owned(),
        avatar: None,
        is_bot: true,
        password_hash: "!".into(),
        login_allowlist: Vec::new(),
        created_at: now_ms(),
    }
}

#[derive(Debug, Deserialize)]
struct NewApp {
    name: String,
    #[serde(default)]
    interactions_url: Option<String>,
}

fn app_view(a: &App) -> Value {
    json!({
        "id": a.id.to_string(),
        "name": a.name,
        "owner_id": a.owner_id.to_string(),
        "bot_user_id": a.bot_user_id.to_string(),
        "interactions_url": a.interactions_url,
    })
}

/// Creates a bot. Its token and webhook secret are shown once, here.
async fn create_app(
    State(state): State<ChatState>,
    UserAuthed(user): UserAuthed,
    Body(req): Body<NewApp>,
) -> Result<(StatusCode, Json<Value>), ChatError> {
    if let Some(u) = &req.interactions_url {
        state.config.outgoing.check_url(u)?;
    }
    let name = clean_name(&req.name, 32, "invalid_name")?;
    if state.store.apps_of(user).await?.len() >= 25 {
        return Err(ChatError::bad_request(
            "too_many_applications",
            "at most 25 bots per account",
        ));
    }
    let bot = bot_account(&state, &name, "bot_");
    let token = auth::random_token();
    let app = App {
        id: state.ids.next(),
        owner_id: user,
        bot_user_id: bot.id,
        name,
        webhook_secret: auth::random_token(),
        interactions_url: req.interactions_url,
    };
    state
        .store
        .create_app(&app, &bot, &auth::token_hash(&token), now_ms())
        .await?;
    let mut v = app_view(&app);
    v["token"] = json!(token);
    v["webhook_secret"] = json!(app.webhook_secret);
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list_apps(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<Vec<Value>>, ChatError> {
    Ok(Json(
        state
            .store
            .apps_of(user)
            .await?
            .iter()
            .map(app_view)
            .collect(),
    ))
}

/// The application, if the caller is its owner or its bot.
async fn my_app(state: &ChatState, app: &str, user: UserId) -> Result<App, ChatError> {
    let unknown = || {
        ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_application",
            "no such application",
        )
    };
    let id = parse_id(app, "unknown_application")?;
    let a = state.store.app(id).await?.ok_or_else(unknown)?;
    if a.owner_id != user && a.bot_user_id != user {
        return Err(unknown());
    }
    Ok(a)
}

#[derive(Debug, Deserialize)]
struct AppEdit {
    /// An http(s) URL, or null to stop webhook deliveries.
    interactions_url: Option<String>,
}

async fn update_app(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(app): Path<String>,
    Body(req): Body<AppEdit>,
) -> Result<Json<Value>, ChatError> {
    let mut a = my_app(&state, &app, user).await?;
    if let Some(u) = &req.interactions_url {
        state.config.outgoing.check_url(u)?;
    }
    state
        .store
        .set_interactions_url(a.id, req.interactions_url.as_deref())
        .await?;
    a.interactions_url = req.interactions_url;
    Ok(Json(app_view(&a)))
}

fn command_name_ok(n: &str) -> bool {
    (1..=32).contains(&n.chars().count())
        && n.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        && n == n.to_lowercase()
}

async fn set_commands(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(app): Path<String>,
    Body(commands): Body<Vec<Command>>,
) -> Result<Json<Vec<Command>>, ChatError> {
    let a = my_app(&state, &app, user).await?;
    if commands.len() > MAX_COMMANDS {
        return Err(ChatError::bad_request(
            "too_many_commands",
            format!("at most {MAX_COMMANDS} commands"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in &commands {
        let options_ok = c.options.len() <= 10
            && c.options.iter().all(|o| command_name_ok(&o.name))
            && c.description.chars().count() <= 100;
        if !command_name_ok(&c.name) || !options_ok || !seen.insert(c.name.clone()) {
            return Err(ChatError::bad_request(
                "invalid_command",
                format!(
                    "{:?}: names are 1-32 lowercase letters, digits, - or _, unique; \
                     at most 10 options; descriptions up to 100 characters",
                    c.name
                ),
            ));
        }
    }
    let with_ids: Vec<(i64, Command)> = commands
        .iter()
        .map(|c| (state.ids.next(), c.clone()))
        .collect();
    state.store.set_commands(a.id, &with_ids).await?;
    Ok(Json(commands))
}

async fn list_commands(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(app): Path<String>,
) -> Result<Json<Vec<Command>>, ChatError> {
    let a = my_app(&state, &app, user).await?;
    Ok(Json(state.store.app_commands(a.id).await?))
}

/// The commands members can use in a guild (for autocomplete).
async fn guild_commands(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<Vec<Value>>, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    crate::routes::guilds::in_guild(&state, id, user).await?;
    Ok(Json(
        state
            .store
            .guild_commands(id)
            .await?
            .into_iter()
            .map(|(app, bot, c)| {
                json!({
                    "application_id": app.to_string(),
                    "bot_user_id": bot.to_string(),
                    "name": c.name,
                    "description": c.description,
                    "options": c.options,
                })
            })
            .collect(),
    ))
}

/// Splits `args` over the options: one word each, the last taking the rest.
pub fn bind_options(
    options: &[CommandOption],
    args: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = args.trim();
    for (i, o) in options.iter().enumerate() {
        if rest.is_empty() {
            if o.required {
                return Err(format!("missing {}", o.name));
            }
            continue;
        }
        let value = if i + 1 == options.len() {
            std::mem::take(&mut rest).to_owned()
        } else {
            let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            rest = tail.trim_start();
            word.to_owned()
        };
        out.push((o.name.clone(), value));
    }
    Ok(out)
}

/// If `content` invokes a slash command of a bot in the channel's guild, starts the
/// interaction and returns it; `None` means the text is an ordinary message.
pub(crate) async fn invoke(
    state: &ChatState,
    c: &Channel,
    user: UserId,
    content: &str,
) -> Result<Option<InteractionView>, ChatError> {
    let Some(text) = content.strip_prefix('/') else {
        return Ok(None);
    };
    if c.is_dm() {
        return Ok(None);
    }
    let (name, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let found = state
        .store
        .guild_commands(c.guild_id)
        .await?
        .into_iter()
        .find(|(_, bot, cmd)| cmd.name == name && *bot != user);
    let Some((app_id, bot, cmd)) = found else {
        return Ok(None);
    };
    // The bot must see the channel to answer in it.
    let access = state.store.guild_access(c.guild_id).await?;
    if !access
        .and_then(|a| a.visible(bot))
        .is_some_and(|v| v.contains(&c.id))
    {
        return Ok(None);
    }
    let options = bind_options(&cmd.options, args)
        .map_err(|m| ChatError::bad_request("invalid_command_options", m))?;
    let id = state.ids.next();
    let token = auth::random_token();
    let now = now_ms();
    state
        .store
        .create_interaction(
            (id, now),
            app_id,
            c.id,
            user,
            &cmd.name,
            &auth::token_hash(&token),
        )
        .await?;
    let u = state.store.user(user).await?;
    let interaction = InteractionView {
        id: id.to_string(),
        token: Some(token),
        application_id: app_id.to_string(),
        kind: "command",
        command: cmd.name,
        options: options
            .into_iter()
            .map(|(name, value)| InteractionOption { name, value })
            .collect(),
        args: args.trim().to_owned(),
        guild_id: c.guild_id.to_string(),
        channel_id: c.id.to_string(),
        user: InteractionUser {
            id: user.to_string(),
            username: u.as_ref().map(|u| u.username.clone()),
            display_name: u.as_ref().map(|u| u.display_name.clone()),
        },
        created_at: now,
        expires_at: now + INTERACTION_TTL_MS,
    };
    state.dispatch(
        Audience::Users(vec![bot]),
        Dispatch::InteractionCreate(&interaction),
    );
    if let Some(app) = state.store.app(app_id).await?
        && let Some(url) = app.interactions_url.clone()
    {
        tokio::spawn(deliver(state.clone(), app, url, interaction.clone()));
    }
    // The caller sees the interaction, not its token.
    Ok(Some(InteractionView {
        token: None,
        ..interaction
    }))
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>` of `timestamp.body` under the bot's webhook secret.
pub fn sign_delivery(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// POSTs an interaction to the bot's URL, signed. A 200 answer with `content` is the
/// bot's reply.
async fn deliver(state: ChatState, app: App, url: String, interaction: InteractionView) {
    let body = serde_json::to_string(&interaction).unwrap_or_default();
    let ts = now_ms();
    let started = Instant::now();
    let sent = post_delivery(
        &state,
        &url,
        &body,
        ts,
        &sign_delivery(&app.webhook_secret, ts, &body),
    )
    .await;
    tracing::debug!(
        url,
        ms = started.elapsed().as_millis() as u64,
        "interaction delivered"
    );
    let Ok(Some(reply)) = sent else {
        if let Err(e) = sent {
            tracing::warn!(url, error = %e, "interaction delivery failed");
        }
        return;
    };
    let (Ok(id), Some(token)) = (interaction.id.parse::<i64>(), interaction.token.as_deref())
    else {
        return;
    };
    if let Err(e) = answer(&state, id, token, &reply).await {
        tracing::warn!(error = ?e, "interaction reply from the webhook refused");
    }
}

/// POSTs one delivery through the guarded client. The URL is checked again: the policy
/// may have changed since it was stored, and literal addresses skip the resolver.
async fn post_delivery(
    state: &ChatState,
    url: &str,
    body: &str,
    ts: i64,
    sig: &str,
) -> Result<Option<Value>, String> {
    let url = state
        .config
        .outgoing
        .check_url(url)
        .map_err(|e| format!("{e:?}"))?;
    let r = state
        .outgoing
        .post(url)
        .header("content-type", "application/json")
        .header("x-parlor-timestamp", ts.to_string())
        .header("x-parlor-signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    if !r.status().is_success() {
        return Err(format!("status {}", r.status()));
    }
    let v: Value = r.json().await.unwrap_or(Value::Null);
    Ok(v.get("content").is_some().then_some(v))
}

/// Posts the bot's one answer to an interaction into its channel.
async fn answer(
    state: &ChatState,
    id: i64,
    token: &str,
    reply: &Value,
) -> Result<MessageView, ChatError> {
    let content = reply["content"].as_str().unwrap_or("").to_owned();
    if content.trim().is_empty()
        || content.chars().count() > crate::service::messages::MAX_CONTENT_CHARS
    {
        return Err(ChatError::bad_request(
            "invalid_content",
            "content is 1-4000 characters",
        ));
    }
    let (app_id, channel_id) = state
        .store
        .claim_interaction(id, &auth::token_hash(token), now_ms() - INTERACTION_TTL_MS)
        .await?
        .ok_or_else(|| {
            ChatError::new(
                StatusCode::NOT_FOUND,
                "unknown_interaction",
                "no such interaction, it expired, or it was answered already",
            )
        })?;
    let app = state
        .store
        .app(app_id)
        .await?
        .ok_or_else(|| ChatError::Internal("interaction without application".into()))?;
    let c = state
        .store
        .channel(channel_id)
        .await?
        .ok_or_else(crate::routes::guilds::unknown_channel)?;
    post_as(state, &c, app.bot_user_id, content).await
}

/// Stores and sends a message by a bot or webhook account.
pub(crate) async fn post_as(
    state: &ChatState,
    c: &Channel,
    author: UserId,
    content: String,
) -> Result<MessageView, ChatError> {
    let draft = Message {
        author_id: author,
        content,
        ..Message::default()
    };
    Ok(crate::service::messages::create(state, c, draft).await?.1)
}

async fn interaction_callback(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((id, token)): Path<(String, String)>,
    Body(reply): Body<Value>,
) -> Result<(StatusCode, Json<MessageView>), ChatError> {
    let id = parse_id(&id, "unknown_interaction")?;
    // Only the bot answers its interactions.
    if state.store.app_of_bot(user).await?.is_none() {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "not_a_bot",
            "interactions are answered with the bot's token",
        ));
    }
    let view = answer(&state, id, &token, &reply).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
struct NewWebhook {
    name: String,
}

async fn create_webhook(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    Body(req): Body<NewWebhook>,
) -> Result<(StatusCode, Json<Value>), ChatError> {
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, id, user).await?;
    if c.kind != ChannelKind::Text {
        return Err(ChatError::bad_request(
            "not_a_text_channel",
            "webhooks post into text channels",
        ));
    }
    require(p, Perms::MANAGE_CHANNELS)?;
    let name = clean_name(&req.name, 80, "invalid_name")?;
    let account = bot_account(&state, &name, "webhook_");
    let wid = state.ids.next();
    let token = auth::random_token();
    state
        .store
        .create_webhook(wid, c.id, user, &account, &name, &auth::token_hash(&token))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": wid.to_string(),
            "channel_id": c.id.to_string(),
            "name": name,
            "token": token,
            "url": format!("/api/v1/webhooks/{wid}/{token}"),
        })),
    ))
}

async fn list_webhooks(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
) -> Result<Json<Vec<Value>>, ChatError> {
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, id, user).await?;
    require(p, Perms::MANAGE_CHANNELS)?;
    Ok(Json(
        state
            .store
            .webhooks(c.id)
            .await?
            .into_iter()
            .map(|(id, name)| json!({"id": id.to_string(), "channel_id": c.id.to_string(), "name": name}))
            .collect(),
    ))
}

fn unknown_webhook() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_webhook", "no such webhook")
}

async fn delete_webhook(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ChatError> {
    let wid = parse_id(&id, "unknown_webhook")?;
    let (channel, _, _) = state
        .store
        .webhook(wid, None)
        .await?
        .ok_or_else(unknown_webhook)?;
    let (_, p) = in_channel(&state, channel, user)
        .await
        .map_err(|_| unknown_webhook())?;
    require(p, Perms::MANAGE_CHANNELS)?;
    state.store.delete_webhook(wid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct WebhookPost {
    content: String,
}

/// Posts into the webhook's channel; the secret URL is the credential.
async fn execute_webhook(
    State(state): State<ChatState>,
    Path((id, token)): Path<(String, String)>,
    Body(req): Body<WebhookPost>,
) -> Result<(StatusCode, Json<MessageView>), ChatError> {
    let wid = id.parse::<i64>().map_err(|_| unknown_webhook())?;
    // The secret first: requests without it must not spend the webhook's budget, or
    // anyone who learnt its id could keep it from posting.
    let (channel, account, _) = state
        .store
        .webhook(wid, Some(&auth::token_hash(&token)))
        .await?
        .ok_or_else(unknown_webhook)?;
    state
        .webhook_limit
        .check(&wid)
        .map_err(|retry_after| ChatError::RateLimited { retry_after })?;
    let n = req.content.chars().count();
    if req.content.trim().is_empty() || n > crate::service::messages::MAX_CONTENT_CHARS {
        return Err(ChatError::bad_request(
            "invalid_content",
            "content is 1-4000 characters",
        ));
    }
    let c = state
        .store
        .channel(channel)
        .await?
        .ok_or_else(unknown_webhook)?;
    let view = post_as(&state, &c, account, req.content).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(name: &str, required: bool) -> CommandOption {
        CommandOption {
            name: name.into(),
            description: String::new(),
            required,
        }
    }

    #[test]
    fn options_take_a_word_each_and_the_last_the_rest() {
        let o = [opt("city", true), opt("note", false)];
        assert_eq!(
            bind_options(&o, "  서울  맑음 그리고 따뜻함 ").unwrap(),
            vec![
                ("city".into(), "서울".into()),
                ("note".into(), "맑음 그리고 따뜻함".into())
            ]
        );
        assert_eq!(bind_options(&o, "Paris").unwrap().len(), 1);
        assert!(bind_options(&o, "").is_err());
    }

    #[test]
    fn deliveries_are_signed_over_timestamp_and_body() {
        let a = sign_delivery("s3cret", 1, "{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, sign_delivery("s3cret", 2, "{}"));
        assert_ne!(a, sign_delivery("other", 1, "{}"));
    }
}
