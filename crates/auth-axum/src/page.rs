//! `GET /`: the connections page, server-rendered HTML and CSS with no
//! script. Everything it shows comes from [`Connect::connections`], so an
//! app can replace it with its own page built on `GET /connections`.

use std::fmt::Write as _;

use auth_core::AccountId;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::connect::{Connect, Mount, User};
use crate::problem::Problem;
use crate::status::{Connection, ConnectionState};

const FLASH: &str = "token_keeper.flash";

/// A one-time message for the next page load ("Connected Fitbit.").
#[derive(Serialize, Deserialize)]
pub(crate) struct Flash {
    text: String,
}

impl Flash {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

pub(crate) async fn set_flash(
    session: &Session,
    flash: Flash,
) -> Result<(), tower_sessions::session::Error> {
    session.insert(FLASH, flash).await
}

pub(crate) async fn page(
    State(connect): State<Connect>,
    User(user): User,
    mount: Mount,
    session: Session,
) -> Response {
    let Some(user) = user else {
        return Problem::signed_out().into_response();
    };
    let csrf = match crate::csrf::token(&session).await {
        Ok(token) => token,
        Err(error) => return Problem::sessions(&error).into_response(),
    };
    let flash = session.remove::<Flash>(FLASH).await.ok().flatten();
    let connections = connect.connections(&user).await;
    let mut body = String::from("<h1>Connected accounts</h1>\n");
    if let Some(flash) = flash {
        let _ = writeln!(
            body,
            "<p class=\"flash\" role=\"status\">{}</p>",
            escape(&flash.text)
        );
    }
    body.push_str(
        "<p class=\"intro\">Connect the services this app may use for you. You can disconnect \
         any of them at any time.</p>\n",
    );
    for row in &connections.connections {
        render_row(&mut body, &mount, &csrf, row, &connections.connections);
    }
    Html(layout("Connected accounts", Some(&user), &body)).into_response()
}

fn render_row(out: &mut String, mount: &Mount, csrf: &str, row: &Connection, all: &[Connection]) {
    let id = escape(row.provider.as_str());
    let name = escape(&row.name);
    let (badge, class) = match row.state {
        ConnectionState::Connected => ("Connected", "connected"),
        ConnectionState::NeedsLogin => ("Needs a new sign-in", "needs-login"),
        ConnectionState::Retired => ("Switched off", "retired"),
        ConnectionState::NotConnected => ("Not connected", "not-connected"),
        ConnectionState::Unavailable => ("Unknown just now", "unavailable"),
    };
    let _ = writeln!(
        out,
        "<section class=\"provider\" aria-labelledby=\"p-{id}\" data-provider=\"{id}\" data-state=\"{class}\">\n\
         <h2 id=\"p-{id}\">{name}</h2>\n<p class=\"state {class}\">{badge}</p>"
    );
    if row.connected {
        out.push_str("<dl>\n");
        if !row.scopes.is_empty() {
            let scopes: Vec<String> = row.scopes.iter().map(|s| escape(short_scope(s))).collect();
            let _ = writeln!(out, "<dt>Access granted</dt><dd>{}</dd>", scopes.join(", "));
        }
        if let Some(at) = &row.expires_at {
            let at = escape(at);
            let _ = writeln!(
                out,
                "<dt>Current access valid until</dt><dd><time datetime=\"{at}\">{}</time> (renewed automatically)</dd>",
                at.replace('T', " ").replace('Z', " UTC")
            );
        }
        out.push_str("</dl>\n");
    }
    if let Some(detail) = &row.detail {
        let _ = writeln!(out, "<p class=\"detail\">{}</p>", escape(detail));
    }
    out.push_str("<div class=\"actions\">\n");
    if let Some(target) = &row.move_to {
        let target_name = all
            .iter()
            .find(|c| &c.provider == target)
            .map_or_else(|| target.as_str().to_owned(), |c| c.name.clone());
        let _ = writeln!(
            out,
            "<a class=\"button primary\" href=\"{}\">Move to {}</a>",
            escape(&mount.path(&format!("/move/{}", row.provider.as_str()))),
            escape(&target_name)
        );
    }
    let connect_href = escape(&mount.path(&format!("/connect/{}", row.provider.as_str())));
    match row.state {
        ConnectionState::NotConnected => {
            let _ = writeln!(
                out,
                "<a class=\"button primary\" href=\"{connect_href}\">Connect {name}</a>"
            );
        }
        ConnectionState::NeedsLogin => {
            let _ = writeln!(
                out,
                "<a class=\"button primary\" href=\"{connect_href}\">Reconnect {name}</a>"
            );
        }
        ConnectionState::Connected | ConnectionState::Unavailable => {
            let _ = writeln!(
                out,
                "<a class=\"button\" href=\"{connect_href}\">Reconnect {name}</a>"
            );
        }
        ConnectionState::Retired => {}
    }
    if row.state != ConnectionState::NotConnected {
        let action = escape(&mount.path(&format!("/disconnect/{}", row.provider.as_str())));
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" class=\"button danger\">Disconnect {name}</button></form>",
            escape(csrf)
        );
    }
    out.push_str("</div>\n</section>\n");
}

/// A scope as people read it: the last part of a URL scope
/// (`https://www.googleapis.com/auth/x.readonly` → `x.readonly`).
fn short_scope(scope: &str) -> &str {
    if scope.contains("://") {
        scope.rsplit('/').next().unwrap_or(scope)
    } else {
        scope
    }
}

/// Escapes text for HTML content and attribute values (`&`, `<`, `>`, `"`
/// and `'`).
pub(crate) fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

/// The page around `body`: a banner, the main landmark, a footer.
pub(crate) fn layout(title: &str, user: Option<&AccountId>, body: &str) -> String {
    let signed_in = user.map_or_else(String::new, |user| {
        format!(
            "<p class=\"who\">Signed in as <strong>{}</strong></p>",
            escape(user.as_str())
        )
    });
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">Skip to main content</a>\n\
         <header><p class=\"brand\">Account connections</p>{signed_in}</header>\n\
         <main id=\"main\">\n{body}</main>\n\
         <footer><p>Your access tokens stay on this app's server; this page never shows them.</p></footer>\n\
         </body>\n</html>\n",
        title = escape(title),
    )
}

/// Plain CSS. Text and controls keep a contrast of at least 4.5:1 (WCAG
/// AA); focus is always visible; state is said in words, not only colour.
const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1b;background:#fff}
.skip{position:absolute;left:-999px;top:0;background:#1b1b1b;color:#fff;padding:.5rem 1rem}
.skip:focus{left:0}
header,main,footer{max-width:44rem;margin:0 auto;padding:1rem 1.25rem}
header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:1px solid #c4c7c5}
.brand{font-weight:600;margin:0}
.who{margin:0}
h1{font-size:1.75rem;margin:.5rem 0 1rem}
h2{font-size:1.25rem;margin:0 0 .25rem}
.intro{color:#3c4043}
.flash{background:#e6f4ea;color:#0d5223;border-left:4px solid #137333;padding:.75rem 1rem}
.provider{border:1px solid #c4c7c5;border-radius:8px;padding:1rem 1.25rem;margin:0 0 1rem}
.state{display:inline-block;margin:0 0 .5rem;padding:.1rem .6rem;border-radius:1rem;font-weight:600;font-size:.9rem}
.state.connected{background:#e6f4ea;color:#0d5223}
.state.needs-login{background:#fef7e0;color:#6b4500}
.state.retired{background:#fce8e6;color:#8c1d18}
.state.not-connected,.state.unavailable{background:#f1f3f4;color:#3c4043}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
.detail{color:#3c4043}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.75rem}
.actions form{margin:0}
.button{display:inline-block;font:inherit;font-weight:600;padding:.5rem 1rem;border-radius:6px;border:2px solid #0b57d0;background:#fff;color:#0b57d0;text-decoration:none;cursor:pointer}
.button.primary{background:#0b57d0;color:#fff}
.button.danger{border-color:#a50e0e;color:#a50e0e}
.button:hover{text-decoration:underline}
a:focus-visible,button:focus-visible{outline:3px solid #1b1b1b;outline-offset:2px}
footer{color:#3c4043;font-size:.9rem;border-top:1px solid #c4c7c5}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn layout_has_a_title_landmarks_and_a_skip_link() {
        let page = layout("T", None, "<h1>T</h1>");
        for part in [
            "<html lang=\"en\">",
            "<header>",
            "<main id=\"main\">",
            "<footer>",
            "href=\"#main\"",
        ] {
            assert!(page.contains(part), "{part}");
        }
    }
}
