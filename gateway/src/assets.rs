//! GraphiQL, served whole from the binary: its page, React, GraphiQL's
//! bundle and Chorus's set-up script (`gateway/assets/`, where their
//! versions and licences are listed). Nothing is fetched from a CDN, so the
//! playground works offline, and the page is served under a
//! Content-Security-Policy that allows scripts from the gateway only.

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::GatewayState;

/// `/`: no inline script and no other origin. GraphiQL sets some styles
/// inline, hence `'unsafe-inline'` for styles only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../assets/graphiql/index.html");

/// Every file under `/assets/graphiql/`: name, media type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("graphiql.min.js", "text/javascript", include_bytes!("../assets/graphiql/graphiql.min.js")),
    ("graphiql.min.css", "text/css", include_bytes!("../assets/graphiql/graphiql.min.css")),
    ("react.production.min.js", "text/javascript", include_bytes!("../assets/graphiql/react.production.min.js")),
    ("react-dom.production.min.js", "text/javascript", include_bytes!("../assets/graphiql/react-dom.production.min.js")),
    ("chorus.js", "text/javascript", include_bytes!("../assets/graphiql/chorus.js")),
    ("chorus.css", "text/css", include_bytes!("../assets/graphiql/chorus.css")),
];

/// `/`: GraphiQL, told whether auth is on (it then opens with an
/// `Authorization` header to fill in).
pub async fn graphiql(State(state): State<GatewayState>) -> Response {
    let page = PAGE.replace("{{AUTH}}", if state.auth.enabled() { "on" } else { "off" });
    ([(header::CONTENT_SECURITY_POLICY, CSP), (header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// `/assets/graphiql/{file}`: one of [`FILES`], cached for a day (they
/// change only with the binary).
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, media_type, bytes)) => {
            ([(header::CONTENT_TYPE, *media_type), (header::CACHE_CONTROL, "public, max-age=86400")], *bytes).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
