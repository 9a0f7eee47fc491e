//! Errors as pages people can read.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::page::{escape, layout};

/// A page that says what happened and what to do next.
pub(crate) struct Problem {
    status: StatusCode,
    title: String,
    detail: String,
    back: Option<String>,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            title: title.into(),
            detail: detail.into(),
            back: None,
        }
    }

    /// Adds a link back to the connections page.
    #[must_use]
    pub(crate) fn back_to(mut self, href: impl Into<String>) -> Self {
        self.back = Some(href.into());
        self
    }

    /// When the session store fails.
    pub(crate) fn sessions(error: &tower_sessions::session::Error) -> Self {
        tracing::error!(error = %error, "the session store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong on our side",
            "We could not read or save your session, so nothing was changed. Please try again in a \
             moment.",
        )
    }

    /// When nobody is signed in.
    pub(crate) fn signed_out() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Please sign in first",
            "You need to be signed in to this app to connect your accounts. Sign in, then come \
             back to this page.",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = format!(
            "<h1>{}</h1>\n<p>{}</p>\n",
            escape(&self.title),
            escape(&self.detail)
        );
        if let Some(back) = &self.back {
            body.push_str(&format!(
                "<p><a href=\"{}\">Back to your connected accounts</a></p>\n",
                escape(back)
            ));
        }
        (self.status, Html(layout(&self.title, None, &body))).into_response()
    }
}
