//! Accounts: sign up, log in, log out, and the current user of a request.

pub mod password;
pub mod store;
mod views;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::live::Chosen;
use password::Password;
pub use store::User;

/// The session key holding the logged-in user's id.
const USER_ID: &str = "user_id";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/accounts/signup", get(home).post(sign_up))
        .route("/accounts/login", get(home).post(log_in))
        .route("/accounts/logout", post(log_out))
}

/// The logged-in user, if any.
pub struct MaybeUser(pub Option<User>);

/// The logged-in user; pages that need one redirect anonymous visitors home.
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for MaybeUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let session = Session::from_request_parts(parts, &state)
            .await
            .map_err(|(_, message)| AppError::Internal(anyhow::anyhow!(message)))?;
        let Some(id) = session.get::<i64>(USER_ID).await? else {
            return Ok(MaybeUser(None));
        };
        if let Some(user) = state.users.get(&id) {
            return Ok(MaybeUser(Some(user)));
        }
        let user = store::by_id(&state.db, id).await?;
        if let Some(user) = &user {
            state.users.insert(id, user.clone());
        } else {
            // The account is gone; forget the stale session.
            session.flush().await?;
        }
        Ok(MaybeUser(user))
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match MaybeUser::from_request_parts(parts, state).await? {
            MaybeUser(Some(user)) => Ok(CurrentUser(user)),
            MaybeUser(None) => Err(AppError::Unauthorized),
        }
    }
}

async fn home(user: MaybeUser, transport: Chosen) -> Response {
    if user.0.is_some() {
        return Redirect::to("/posts/lobby/").into_response();
    }
    views::home(&user, transport, &views::Forms::default()).into_response()
}

#[derive(Deserialize)]
struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
struct LogInForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// Checks sign-up fields; the message says what to change.
fn check_sign_up(email: &str, handle: &str, password: &Password) -> Result<(), String> {
    // Plain ASCII addresses with one @: the form a post can mention as @email.
    let email_ok = email.len() <= 254
        && email
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@.+-_".contains(&b))
        && email.matches('@').count() == 1
        && email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
    if !email_ok {
        return Err("Enter an email address like ada@example.com.".into());
    }
    let handle_ok = (3..=30).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !handle_ok {
        return Err("A handle is 3 to 30 letters, digits or underscores.".into());
    }
    if password.chars() < 8 {
        return Err("Use a password of at least 8 characters.".into());
    }
    if password.chars() > 1024 {
        return Err("That password is too long (1024 characters at most).".into());
    }
    Ok(())
}

async fn sign_up(
    State(state): State<AppState>,
    session: Session,
    transport: Chosen,
    Form(form): Form<SignUpForm>,
) -> AppResult<Response> {
    let email = form.email.trim().to_lowercase();
    let handle = form.handle.trim().trim_start_matches('@').to_lowercase();
    let password = Password::new(form.password);
    let refuse = |message: String| {
        let forms = views::Forms {
            signup_email: email.clone(),
            signup_handle: handle.clone(),
            signup_error: Some(message),
            ..Default::default()
        };
        let page = views::home(&MaybeUser(None), Chosen(transport.0), &forms);
        (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
    };

    if let Err(message) = check_sign_up(&email, &handle, &password) {
        return Ok(refuse(message));
    }
    match store::taken(&state.db, &email, &handle).await? {
        (true, _) => return Ok(refuse("That email already has an account; log in.".into())),
        (_, true) => return Ok(refuse(format!("The handle @{handle} is taken."))),
        _ => {}
    }

    let hash = password::hash(password).await?;
    let Some(user) = store::create(&state.db, &email, &handle, &hash).await? else {
        return Ok(refuse(
            "That email or handle was just taken; try another.".into(),
        ));
    };
    tracing::info!(user_id = user.id, handle = %user.handle, "account created");

    start_session(&session, &user).await?;
    Ok(Redirect::to("/posts/lobby/").into_response())
}

async fn log_in(
    State(state): State<AppState>,
    session: Session,
    transport: Chosen,
    Form(form): Form<LogInForm>,
) -> AppResult<Response> {
    let login = form.login.trim().trim_start_matches('@').to_lowercase();
    let password = Password::new(form.password);

    // No account has control characters in its name; the database need not be asked.
    let known = if crate::input::is_plain_text(&login) {
        store::credentials(&state.db, &login).await?
    } else {
        None
    };
    let matched = match known {
        Some((user, hash)) => password::verify(password, hash).await?.then_some(user),
        None => {
            password::verify_nobody(password).await?;
            None
        }
    };
    let Some(user) = matched else {
        let forms = views::Forms {
            login: login.clone(),
            login_error: Some("Wrong email, handle or password.".into()),
            ..Default::default()
        };
        let page = views::home(&MaybeUser(None), transport, &forms);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };

    start_session(&session, &user).await?;
    tracing::info!(user_id = user.id, "logged in");
    Ok(Redirect::to("/posts/lobby/").into_response())
}

/// Logs `user` in under a new session id, so an id planted before log-in is useless.
async fn start_session(session: &Session, user: &User) -> AppResult<()> {
    session.cycle_id().await?;
    session.insert(USER_ID, user.id).await?;
    Ok(())
}

async fn log_out(State(state): State<AppState>, session: Session) -> AppResult<Response> {
    // Streams opened under this session end now, so nothing private keeps arriving.
    if let Some(id) = session.id() {
        let _ = state.logouts.send(id.to_string());
    }

    // Deletes the stored session, not just the cookie: a copied cookie dies with it.
    session.delete().await?;
    let forget = "switchyard_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax";
    Ok((
        [(axum::http::header::SET_COOKIE, forget)],
        Redirect::to("/"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_up_checks_say_what_to_fix() {
        let good = Password::new("long enough".into());
        assert!(check_sign_up("ada@example.com", "ada_l", &good).is_ok());
        assert!(
            check_sign_up("ada", "ada_l", &good)
                .unwrap_err()
                .contains("email")
        );
        assert!(
            check_sign_up("ada@example.com", "a", &good)
                .unwrap_err()
                .contains("handle")
        );
        assert!(
            check_sign_up("ada@example.com", "a-b", &good)
                .unwrap_err()
                .contains("handle")
        );
        for odd in [
            "a@b@c.com",
            "jösé@example.jp",
            "\"><script>@x.com",
            "nul\0@x.com",
        ] {
            assert!(check_sign_up(odd, "ada_l", &good).is_err(), "{odd}");
        }
        let short = Password::new("short".into());
        assert!(
            check_sign_up("ada@example.com", "ada", &short)
                .unwrap_err()
                .contains("8")
        );
    }
}
