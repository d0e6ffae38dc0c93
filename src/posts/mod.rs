//! Posts and mentions: the lobby (posts that mention me), the all-posts timeline and
//! presence, each live over polling or SSE.

pub mod mentions;
pub mod store;
pub mod views;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use polling::{Answer, Cursor, PollQuery};
use realtime::{BusEvent, EventId, Topic};
use serde::Deserialize;
use tower_sessions::Session;
use tracing::instrument;

use crate::accounts::{self, CurrentUser, MaybeUser, User};
use crate::app::AppState;
use crate::db::now_ms;
use crate::error::{AppError, AppResult};
use crate::live::{self, Chosen, ControlSpec, Region, StreamGuard, Transport};
use crate::pages::{Frame, layout};
use store::PostRow;

/// Items a feed shows on a page, and the most a poll answer carries before the client
/// is told to reload instead.
const PAGE: i64 = 50;

pub const LOBBY: Region = Region {
    name: "lobby",
    poll_url: "/posts/lobby/poll",
    stream_url: "/posts/lobby/stream",
    region_url: "/posts/lobby/region",
    control_url: "/posts/lobby/control",
    swap: "afterbegin",
};

pub const ALL: Region = Region {
    name: "all",
    poll_url: "/posts/all/poll",
    stream_url: "/posts/all/stream",
    region_url: "/posts/all/region",
    control_url: "/posts/all/control",
    swap: "afterbegin",
};

pub const PRESENCE: Region = Region {
    name: "presence",
    poll_url: "/posts/presence/poll",
    stream_url: "/posts/presence/stream",
    region_url: "/posts/presence/region",
    control_url: "/posts/presence/control",
    swap: "innerHTML",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/posts/", get(timeline))
        .route("/posts/all/poll", get(poll_timeline))
        .route("/posts/all/stream", get(stream_timeline))
        .route("/posts/all/region", get(timeline_region))
        .route("/posts/all/control", get(timeline_control))
        .route("/posts/lobby/", get(lobby))
        .route("/posts/lobby/poll", get(poll_mentions))
        .route("/posts/lobby/stream", get(stream_mentions))
        .route("/posts/lobby/region", get(mentions_region))
        .route("/posts/lobby/control", get(mentions_control))
        .route("/posts/presence/poll", get(poll_presence))
        .route("/posts/presence/stream", get(stream_presence))
        .route("/posts/presence/region", get(presence_region))
        .route("/posts/presence/control", get(presence_control))
        .route("/posts/create/", get(create_page).post(create_post))
}

/// A feed of posts: everyone's, or those mentioning one user.
#[derive(Clone, Copy)]
enum Feed {
    All,
    Mentions(i64),
}

impl Feed {
    fn region(self) -> &'static Region {
        match self {
            Feed::All => &ALL,
            Feed::Mentions(_) => &LOBBY,
        }
    }

    fn topic(self) -> Topic {
        match self {
            Feed::All => all_topic(),
            Feed::Mentions(user_id) => mentions_topic(user_id),
        }
    }

    async fn between(
        self,
        state: &AppState,
        after: u64,
        upto: u64,
        limit: i64,
    ) -> AppResult<Vec<PostRow>> {
        Ok(match self {
            Feed::All => store::all_between(&state.db, after, upto, limit).await?,
            Feed::Mentions(user_id) => {
                store::mentions_between(&state.db, user_id, after, upto, limit).await?
            }
        })
    }

    /// The whole region at the current head.
    async fn render(self, state: &AppState, transport: Transport) -> AppResult<Markup> {
        let head = store::head(&state.db).await?;
        let posts = self.between(state, 0, head, PAGE).await?;
        let spec = spec(state, transport, head);
        let items = html! {
            (views::post_items(&posts))
            @if posts.is_empty() { p.empty { (self.empty_text()) } }
        };
        Ok(self.region().render(spec, items))
    }

    fn empty_text(self) -> &'static str {
        match self {
            Feed::All => "No posts yet.",
            Feed::Mentions(_) => "Nobody has mentioned you yet.",
        }
    }

    /// New posts after the client's cursor, or 204.
    async fn poll(self, state: &AppState, query: &PollQuery) -> AppResult<Response> {
        let after = live::required_cursor(query)?;
        if state.posts_head.is_at(after.0) {
            return Ok(live::poll_response(
                state,
                self.region().poll_url,
                Answer::NothingNew,
            ));
        }

        let head = store::head(&state.db).await?;
        state.posts_head.raise(head);
        if after.0 > head {
            // A cursor from the future (another database, a reset one): start over.
            let region = self.render(state, Transport::Poll).await?;
            let answer = Answer::Reset {
                region_id: self.region().region_id(),
                region,
            };
            return Ok(live::poll_response(state, self.region().poll_url, answer));
        }

        let posts = self.between(state, after.0, head, PAGE + 1).await?;
        let answer = if posts.is_empty() && after.0 == head {
            Answer::NothingNew
        } else if posts.is_empty() {
            // Posts that were not for this feed: move the cursor past them anyway, so
            // the next poll is at the head and answered from memory.
            let control = self
                .region()
                .poll_control(Cursor(head), state.config.poll_interval());
            Answer::Fresh {
                items: html! {},
                control: control.render_oob(),
            }
        } else if posts.len() as i64 > PAGE {
            let region = self.render(state, Transport::Poll).await?;
            Answer::Reset {
                region_id: self.region().region_id(),
                region,
            }
        } else {
            let control = self
                .region()
                .poll_control(Cursor(head), state.config.poll_interval());
            Answer::Fresh {
                items: views::post_items(&posts),
                control: control.render_oob(),
            }
        };
        Ok(live::poll_response(state, self.region().poll_url, answer))
    }

    async fn stream(
        self,
        state: &AppState,
        headers: &HeaderMap,
        query: &PollQuery,
        user: Option<(&str, &Session)>,
    ) -> AppResult<Response> {
        let handle = user.map(|(handle, _)| handle);
        let mut guard = StreamGuard::new(state, self.region().stream_url, handle)?;
        if let Some((_, session)) = user {
            guard = guard.for_session(session);
        }
        let head = store::head(&state.db).await?;
        let sub = live::subscribe(&state.posts_bus, &self.topic(), headers, query, head).await?;
        Ok(live::stream_response(state, sub, guard))
    }

    async fn control(
        self,
        state: &AppState,
        transport: Transport,
        query: &PollQuery,
    ) -> AppResult<Markup> {
        let after = live::required_cursor(query)?;
        Ok(self.region().control(spec(state, transport, after.0)))
    }
}

pub fn all_topic() -> Topic {
    Topic::new("posts")
}

fn mentions_topic(user_id: i64) -> Topic {
    Topic::new(format!("mentions:{user_id}"))
}

fn spec(state: &AppState, transport: Transport, cursor: u64) -> ControlSpec {
    ControlSpec {
        transport,
        cursor: Cursor(cursor),
        every: state.config.poll_interval(),
    }
}

/// Keeps a polling user online a little longer than their poll interval.
fn touch_presence(state: &AppState, user: &User) {
    let lease = state.config.poll_interval() * 2 + std::time::Duration::from_secs(2);
    state.presence.touch(&user.handle, lease);
}

async fn timeline(
    State(state): State<AppState>,
    user: MaybeUser,
    transport: Chosen,
) -> AppResult<Markup> {
    let region = Feed::All.render(&state, transport.0).await?;
    let frame = Frame::new("All posts", &user, transport);
    Ok(layout(
        &frame,
        html! {
            h1 { "All posts" }
            @if user.0.is_some() { (views::post_form("", None)) }
            (region)
        },
    ))
}

#[instrument(skip_all)]
async fn poll_timeline(
    State(state): State<AppState>,
    user: MaybeUser,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    if let Some(user) = &user.0 {
        touch_presence(&state, user);
    }
    Feed::All.poll(&state, &query).await
}

#[instrument(skip_all)]
async fn stream_timeline(
    State(state): State<AppState>,
    user: MaybeUser,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    let user = user.0.as_ref().map(|u| (u.handle.as_str(), &session));
    Feed::All.stream(&state, &headers, &query, user).await
}

async fn timeline_region(State(state): State<AppState>, transport: Chosen) -> AppResult<Markup> {
    Feed::All.render(&state, transport.0).await
}

async fn timeline_control(
    State(state): State<AppState>,
    transport: Chosen,
    Query(query): Query<PollQuery>,
) -> AppResult<Markup> {
    Feed::All.control(&state, transport.0, &query).await
}

async fn lobby(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    transport: Chosen,
) -> AppResult<Markup> {
    let mentions = Feed::Mentions(user.id).render(&state, transport.0).await?;
    let presence = render_presence(&state, transport.0).await;
    let handle = user.handle.clone();
    let frame_user = MaybeUser(Some(user));
    let frame = Frame::new("Lobby", &frame_user, transport);
    Ok(layout(
        &frame,
        html! {
            h1 { "Lobby" }
            p.lede { "Posts that mention @" (handle) " appear here as they are written." }
            div.lobby {
                div {
                    (views::post_form("", None))
                    h2 { "Mentions" }
                    (mentions)
                }
                aside {
                    h2 { "Online" }
                    (presence)
                }
            }
        },
    ))
}

#[instrument(skip_all, fields(user_id = user.id))]
async fn poll_mentions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    touch_presence(&state, &user);
    Feed::Mentions(user.id).poll(&state, &query).await
}

#[instrument(skip_all, fields(user_id = user.id))]
async fn stream_mentions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    tracing::info!("mentions stream opened");
    Feed::Mentions(user.id)
        .stream(&state, &headers, &query, Some((&user.handle, &session)))
        .await
}

async fn mentions_region(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    transport: Chosen,
) -> AppResult<Markup> {
    Feed::Mentions(user.id).render(&state, transport.0).await
}

async fn mentions_control(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    transport: Chosen,
    Query(query): Query<PollQuery>,
) -> AppResult<Markup> {
    Feed::Mentions(user.id)
        .control(&state, transport.0, &query)
        .await
}

async fn render_presence(state: &AppState, transport: Transport) -> Markup {
    let spec = spec(state, transport, state.presence.version());
    PRESENCE.render(spec, views::presence_items(&state.presence.online().await))
}

async fn presence_region(
    State(state): State<AppState>,
    _user: CurrentUser,
    transport: Chosen,
) -> Markup {
    render_presence(&state, transport.0).await
}

async fn presence_control(
    State(state): State<AppState>,
    _user: CurrentUser,
    transport: Chosen,
    Query(query): Query<PollQuery>,
) -> AppResult<Markup> {
    let after = live::required_cursor(&query)?;
    Ok(PRESENCE.control(spec(&state, transport.0, after.0)))
}

async fn poll_presence(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    touch_presence(&state, &user);
    let after = live::required_cursor(&query)?;
    let version = state.presence.version();
    let answer = if after.0 == version {
        Answer::NothingNew
    } else {
        let control = PRESENCE.poll_control(Cursor(version), state.config.poll_interval());
        Answer::Fresh {
            items: views::presence_items(&state.presence.online().await),
            control: control.render_oob(),
        }
    };
    Ok(live::poll_response(&state, PRESENCE.poll_url, answer))
}

/// The online list, sent whole whenever it changes. Presence is a snapshot, not a
/// history, so a reconnecting client simply gets the current list.
#[instrument(skip_all, fields(user_id = user.id))]
async fn stream_presence(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
) -> AppResult<Response> {
    let guard =
        StreamGuard::new(&state, PRESENCE.stream_url, Some(&user.handle))?.for_session(&session);
    let until = live::logged_out(&state, guard.session.clone());
    let watch = state.presence.watch();
    let presence = state.presence.clone();
    let shutdown = state.stream_options.shutdown.clone();

    // The list is sent whole, and only when it differs from the last one sent: a
    // version can move for changes that leave the list as it was.
    let events = futures_util::stream::unfold(
        (watch, guard, None::<String>),
        move |(mut watch, guard, last)| {
            let presence = presence.clone();
            let mut shutdown = shutdown.clone();
            async move {
                loop {
                    if last.is_some() {
                        let changed = match shutdown.as_mut() {
                            Some(stop) => tokio::select! {
                                changed = watch.changed() => changed.is_ok(),
                                _ = stop.wait_for(|s| *s) => false,
                            },
                            None => watch.changed().await.is_ok(),
                        };
                        if !changed {
                            return None;
                        }
                    }
                    let version = *watch.borrow_and_update();
                    let data = views::presence_items(&presence.online().await).into_string();
                    if last.as_ref() == Some(&data) {
                        continue;
                    }
                    let event = BusEvent {
                        id: EventId(version),
                        name: "item".into(),
                        data: data.clone(),
                        published_ms: now_ms() as u64,
                    };
                    let frame = realtime::stream::encode(&event);
                    return Some((
                        Ok::<_, std::convert::Infallible>(frame),
                        (watch, guard, Some(data)),
                    ));
                }
            }
        },
    );
    Ok(live::sse(
        &state,
        futures_util::StreamExt::take_until(events, until),
    ))
}

async fn create_page(user: CurrentUser, transport: Chosen) -> Markup {
    let frame_user = MaybeUser(Some(user.0));
    let frame = Frame::new("New post", &frame_user, transport);
    layout(
        &frame,
        html! { h1 { "New post" } (views::post_form("", None)) },
    )
}

#[derive(Deserialize)]
struct NewPost {
    #[serde(default)]
    body: String,
}

#[instrument(skip_all, fields(user_id = user.id, post_id))]
async fn create_post(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Form(form): Form<NewPost>,
) -> AppResult<Response> {
    let htmx = headers.contains_key("hx-request");
    let body = form.body.trim();
    let refuse = |message: String| {
        let form = views::post_form(&form.body, Some((&message, true)));
        (StatusCode::UNPROCESSABLE_ENTITY, form).into_response()
    };

    if body.is_empty() {
        return Ok(refuse("Write something first.".into()));
    }
    if !crate::input::is_plain_text(body) {
        return Ok(refuse(
            "Remove the control characters (such as NUL) from the post.".into(),
        ));
    }
    let chars = body.chars().count();
    if chars > views::MAX_POST_CHARS {
        return Ok(refuse(format!(
            "A post has at most {} characters; this one has {chars}.",
            views::MAX_POST_CHARS
        )));
    }

    let named = mentions::parse(body);
    let mentioned = accounts::store::resolve(&state.db, &named.handles, &named.emails).await?;
    let post = publish_post(&state, &user, body, &mentioned).await?;
    tracing::Span::current().record("post_id", post.id);
    tracing::info!(mentioned = mentioned.len(), "post created");

    if htmx {
        let note = match mentioned.len() {
            0 => "Posted.".to_owned(),
            n => format!("Posted; {n} mentioned."),
        };
        return Ok(views::post_form("", Some((&note, false))).into_response());
    }
    Ok(Redirect::to("/posts/lobby/").into_response())
}

/// Stores a post and publishes it to the timeline and to each mentioned user's feed.
///
/// Numbering, commit and publish happen under the posts sequence's writer lock, in a
/// task of their own: a client that hangs up mid-post cancels its request, but must
/// not cancel the lock's release.
async fn publish_post(
    state: &AppState,
    author: &User,
    body: &str,
    mentioned: &[User],
) -> AppResult<PostRow> {
    let ids: Vec<i64> = mentioned.iter().map(|u| u.id).collect();
    let (state, author, body) = (state.clone(), author.clone(), body.to_owned());

    let task = tokio::spawn(async move {
        let _writer = state.post_writer.lock().await;
        let mut lock = store::writer_lock(&state.db).await?;
        let created_ms = now_ms();
        let created = store::create(&mut lock.conn, author.id, &body, created_ms, &ids).await;
        let id = match created {
            Ok(id) => id,
            Err(error) => {
                lock.release().await;
                return Err(AppError::from(error));
            }
        };
        let post = PostRow {
            id,
            author: author.handle.clone(),
            body,
            created_ms,
        };

        let event = BusEvent {
            id: EventId(id as u64),
            name: "item".into(),
            data: views::post_item(&post).into_string(),
            published_ms: now_ms() as u64,
        };
        for user_id in ids {
            state
                .posts_bus
                .publish(&mentions_topic(user_id), event.clone())
                .await;
        }
        state.posts_bus.publish(&all_topic(), event).await;
        lock.release().await;
        Ok(post)
    });
    task.await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("post task: {e}")))?
}
