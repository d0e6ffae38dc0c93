//! The one error type of the app's handlers, with a variant per HTTP meaning.
//!
//! Internal detail is logged inside the request span and never sent to the client,
//! which gets a short, plain message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input that cannot be used; the message names the field's problem.
    #[error("{0}")]
    BadInput(String),
    #[error("not found")]
    NotFound,
    /// Not logged in: pages redirect to the log-in form.
    #[error("log in first")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        AppError::Internal(anyhow::Error::new(error).context("database"))
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(error: tower_sessions::session::Error) -> Self {
        AppError::Internal(anyhow::Error::new(error).context("session store"))
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unauthorized => StatusCode::SEE_OTHER,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            AppError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                "Something went wrong on our side. Please try again.".to_owned()
            }
            other => other.to_string(),
        };

        if let AppError::Unauthorized = self {
            // htmx follows HX-Redirect; a browser follows Location.
            let mut response = (status, [(header::LOCATION, "/")]).into_response();
            response
                .headers_mut()
                .insert("HX-Redirect", HeaderValue::from_static("/"));
            return response;
        }

        let body = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Switchyard: " (status) } }
                body { p.error role="alert" { (message) } p { a href="/" { "Home" } } }
            }
        };
        (status, body).into_response()
    }
}
