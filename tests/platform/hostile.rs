//! Hostile input is normal input: no request can crash the gateway, trick
//! it into writing through GET, or ride a user's browser. Each probe is
//! sent the way an attacker would (far beyond every limit, on every path),
//! and the gateway must answer it with a clear code, write nothing, and go
//! on serving.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{
    subscriptions::{Frame, Proto, Ws},
    support::{Backend, TestApp, error_code},
};

/// Far beyond the nesting limit: 2,000 levels aborted the whole process.
const DEEP: usize = 5_000;

fn nested(open: &str, close: &str, n: usize) -> String {
    format!("{}{}", open.repeat(n), close.repeat(n))
}

async fn still_serving(app: &TestApp) {
    let health = app.http.get(format!("http://{}/health", app.addr)).send().await.expect("the gateway answers");
    assert_eq!(health.status(), 200);
    app.gql_ok("{ products { id } }", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_far_beyond_the_limit_is_refused_on_every_path() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let list = nested("[", "]", DEEP);
    let object = nested("{a:", "}", DEEP);
    let probes = [
        format!("{{ product(id: {list}) {{ id }} }}"),
        format!("{{ product(id: {object}) {{ id }} }}"),
        format!("query($x: [ID] = {list}) {{ products {{ id }} }}"),
        format!("{{ products @include(if: {list}) {{ id }} }}"),
        format!("{{ products {} }}", nested("{ id ", "}", DEEP)),
    ];
    for query in &probes {
        let body = app.gql(query, json!({})).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{}", &body.to_string()[..200.min(body.to_string().len())]);
    }
    // Over GET, in the URL.
    let get = app
        .http
        .get(format!("http://{}/graphql", app.addr))
        .query(&[("query", format!("{{ product(id: {}) {{ id }} }}", nested("[", "]", 3_000)))])
        .send()
        .await
        .expect("answered");
    let body: Value = get.json().await.expect("JSON");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    // In the variables (JSON, parsed before GraphQL).
    let variables: Value = serde_json::from_str(&format!("{{\"x\": {list}}}")).unwrap_or_else(|_| json!({ "x": list }));
    let body = app.gql("query($x: ID!) { product(id: $x) { id } }", variables).await;
    assert!(error_code(&body).is_some(), "{body}");
    // Over a WebSocket `subscribe`.
    let mut ws = Ws::open(&app, Proto::Transport, json!({})).await;
    ws.subscribe("deep", &format!("subscription {{ checkoutProgress(checkoutId: {list}) {{ id }} }}"), json!({})).await;
    match ws.frame("deep").await {
        Frame::Error(error) => assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}"),
        other => panic!("expected an error, got {other:?}"),
    }
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_never_runs_a_mutation() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let before = app.products().await;
    let response = app
        .http
        .get(format!("http://{}/graphql", app.addr))
        .query(&[("query", "mutation { createProduct(name: \"Via GET\", priceCents: 1, stock: 1) { id } }")])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let body: Value = response.json().await.expect("JSON");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("POST")), "{body}");
    // A named mutation among queries, picked by operationName, too.
    let response = app
        .http
        .get(format!("http://{}/graphql", app.addr))
        .query(&[
            ("query", "query Q { products { id } } mutation M { createProduct(name: \"Via GET\", priceCents: 1, stock: 1) { id } }"),
            ("operationName", "M"),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 405, "{:?}", response.text().await);
    // Queries over GET still work.
    let response = app.http.get(format!("http://{}/graphql", app.addr)).query(&[("query", "{ products { id } }")]).send().await.expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(app.products().await, before, "a GET wrote something");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_page_cannot_call_the_gateway() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let before = app.products().await;
    let url = format!("http://{}/graphql", app.addr);
    let mutation = json!({ "query": "mutation { createProduct(name: \"CSRF\", priceCents: 1, stock: 1) { id } }" }).to_string();
    // Bodies a page can send without a preflight.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let response = app.http.post(&url).header("content-type", content_type).body(mutation.clone()).send().await.expect("answered");
        assert_eq!(response.status(), 415, "{content_type}");
    }
    let response = app.http.post(&url).body(mutation.clone()).send().await.expect("answered");
    assert_eq!(response.status(), 415, "no content type");
    // JSON from another site's page.
    let response = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(mutation.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    // A WebSocket from another site's page is not upgraded.
    let mut request = url.replace("http://", "ws://").into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().expect("header"));
    request.headers_mut().insert("Origin", "https://evil.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_err(), "a cross-site WebSocket was accepted");
    assert_eq!(app.products().await, before, "a cross-site request wrote something");
    // The gateway's own pages (GraphiQL, /app) call from its own origin.
    let own = format!("http://{}", app.addr);
    let response = app
        .http
        .post(&url)
        .header("origin", own)
        .json(&json!({ "query": "{ products { id } }" }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_on_an_open_socket_stops_working_there() {
    const SECRET: &str = "expiring-secret";
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", SECRET), ("CHORUS_JWT_LEEWAY", "1s")], false).await;
    let admin = chorus_gateway::auth::issue(SECRET, "ops", chorus_gateway::auth::Role::Admin, std::time::Duration::from_secs(3)).expect("token");
    let mut ws = Ws::open(&app, Proto::Transport, json!({ "token": admin })).await;
    ws.subscribe("firehose", "subscription { allCheckoutEvents { id } }", json!({})).await;
    let started = std::time::Instant::now();
    match ws.frame("firehose").await {
        Frame::Error(error) => assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{error}"),
        other => panic!("the firehose went on past its token's expiry: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "ended {:?} after it started", started.elapsed());
    // Nothing more runs on that socket: it closes with 4403.
    ws.subscribe("after", "{ products { id } }", json!({})).await;
    match ws.frame("after").await {
        Frame::Closed(reason) => assert!(reason.starts_with("4403"), "{reason}"),
        Frame::Error(error) => assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{error}"),
        other => panic!("an expired socket ran an operation: {other:?}"),
    }
    // A bad token at init is refused with 4403 too.
    let mut refused = Ws::connect(&app, Proto::Transport, json!({ "token": "forged" })).await;
    let reason = refused.acked().await.expect_err("refused");
    assert!(reason.starts_with("4403"), "{reason}");

    // A token not valid yet is refused like an expired one.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = chorus_gateway::auth::Claims { sub: "ops".into(), role: chorus_gateway::auth::Role::Admin, exp: now + 600, nbf: Some(now + 300) };
    let early = chorus_gateway::auth::encode(SECRET, &claims).expect("token");
    let body = app.gql_as(Some(&early), "{ products { id } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_multiplied_through_fragments_are_counted_as_they_run() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    // Ten aliases, in a fragment reached through three levels of inline
    // fragments each spreading the next level ten times: under the limit
    // as written, a thousand as it would run.
    let aliases = (0..10).map(|i| format!("a{i}: products {{ id }}")).collect::<Vec<_>>().join(" ");
    let spread = |next: &str| (0..10).map(|_| format!("... on Query {{ ...{next} }}")).collect::<Vec<_>>().join(" ");
    let query = format!(
        "{{ ...A }} fragment A on Query {{ {} }} fragment B on Query {{ {} }} fragment C on Query {{ {aliases} }}",
        spread("B"),
        spread("C")
    );
    let body = app.gql(&query, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{}", &body.to_string()[..300.min(body.to_string().len())]);
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("aliases")), "{body}");
    // A fragment that spreads itself is refused, not followed for ever.
    let body = app.gql("{ ...A } fragment A on Query { products { id } ...A }", json!({})).await;
    assert!(error_code(&body).is_some(), "{body}");
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_media_type_follows_accept() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let url = format!("http://{}/graphql", app.addr);
    let post = |accept: &'static str, query: &'static str| {
        app.http.post(&url).header("accept", accept).json(&json!({ "query": query })).send()
    };
    let plain = post("application/json", "{ products { id } }").await.expect("answered");
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/json");
    let modern = post("application/graphql-response+json, application/json;q=0.9", "{ products { id } }").await.expect("answered");
    assert_eq!(modern.headers()["content-type"], "application/graphql-response+json");
    assert_eq!(modern.status(), 200);
    // A request that never ran: 400 with graphql-response+json, no `data` key.
    let broken = post("application/graphql-response+json", "{ products { id }").await.expect("answered");
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.expect("JSON");
    assert!(body.get("data").is_none() && body["errors"].is_array(), "{body}");
    let broken = post("application/json", "{ products { id }").await.expect("answered");
    assert_eq!(broken.status(), 200, "application/json keeps 200 for older clients");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_initialises_is_closed_with_4408() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_WS_INIT_TIMEOUT", "1s")], false).await;
    let mut socket = raw_socket(&app).await;
    assert_eq!(close_code(&mut socket, std::time::Duration::from_secs(10)).await, Some(4408));
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_dribbles_its_request_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_HTTP_READ_TIMEOUT", "1s")], false).await;
    // Headers, a byte every 300 ms (slowloris); then a body promised and never sent.
    let mut headers = tokio::net::TcpStream::connect(app.addr).await.expect("connects");
    let mut body = tokio::net::TcpStream::connect(app.addr).await.expect("connects");
    body.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{").await.expect("sent");
    let started = std::time::Instant::now();
    let mut cut_off = false;
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle().take(100) {
        if headers.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(cut_off, "a dribbling client kept its connection for {:?}", started.elapsed());
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), body.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "a promised body held its connection open");
    still_serving(&app).await;
    app.stop().await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws socket that has sent nothing yet, driven by hand.
async fn raw_socket(app: &TestApp) -> Socket {
    let mut request = format!("ws://{}/graphql", app.addr).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().expect("header"));
    tokio_tungstenite::connect_async(request).await.expect("connects").0
}

/// The code the gateway closes `socket` with, reading (and so answering
/// pings) until then; panics if it is still open after `within`.
async fn close_code(socket: &mut Socket, within: std::time::Duration) -> Option<u16> {
    use futures::StreamExt;
    let closed = tokio::time::timeout(within, async {
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    });
    closed.await.unwrap_or_else(|_| panic!("the socket was still open after {within:?}"))
}

/// Reads from `stream` until it closes; `Err` when it stays open `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> Result<Vec<u8>, ()> {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut read)).await {
        Ok(_) => Ok(read),
        Err(_) => Err(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_HTTP_READ_TIMEOUT", "1s")], false).await;
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.expect("connects");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("sent");
    // One answered request, then silence: the connection is not held.
    let read = closed_within(&mut idle, std::time::Duration::from_secs(10)).await.expect("an idle connection was kept over 10 s");
    assert!(read.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&read));
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_answered_503_and_closed() {
    let extra = [("CHORUS_MAX_CONNECTIONS_PER_IP", "3"), ("CHORUS_HTTP_READ_TIMEOUT", "30s")];
    let app = TestApp::start_with(Backend::Sqlite, &extra, false).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(app.addr).await.expect("connects"));
    }
    // The gateway counts a connection once it accepted it: give it that moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut fourth = tokio::net::TcpStream::connect(app.addr).await.expect("the socket connects");
    let read = closed_within(&mut fourth, std::time::Duration::from_secs(5)).await.expect("an over-cap connection was held");
    let text = String::from_utf8_lossy(&read);
    assert!(text.starts_with("HTTP/1.1 503") && text.contains("retry-after"), "{text}");
    // The places come back once the connections close.
    drop(held);
    let serving = crate::support::eventually(std::time::Duration::from_secs(5), || async {
        app.http.get(format!("http://{}/health", app.addr)).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(serving, "closed connections kept their places");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_answering_pings_is_closed() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_WS_PING_INTERVAL", "1s")], false).await;
    // A socket that keeps reading answers the pings (the client library
    // pongs as it reads) and stays open past several intervals.
    let mut alive = Ws::open(&app, Proto::Transport, json!({})).await;
    alive.subscribe("p", "subscription { allCheckoutEvents { type } }", json!({})).await;
    let quiet = tokio::time::timeout(std::time::Duration::from_secs(4), alive.any_frame()).await;
    assert!(quiet.is_err(), "the answering socket was closed: {quiet:?}");
    // A peer gone silent (it reads nothing, so it answers no ping).
    let mut silent = raw_socket(&app).await;
    use futures::SinkExt;
    let init = json!({ "type": "connection_init", "payload": {} }).to_string();
    silent.send(tokio_tungstenite::tungstenite::Message::Text(init.into())).await.expect("init sent");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    // Now read what it was sent: the ack, a ping, then the close (1001).
    assert_eq!(close_code(&mut silent, std::time::Duration::from_secs(5)).await, Some(1001));
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_told_when_to_come_back() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_RATE_LIMIT", "3/min")], false).await;
    let url = format!("http://{}/graphql", app.addr);
    let query = || app.http.post(&url).json(&json!({ "query": "{ products { id } }" })).send();
    for _ in 0..3 {
        assert_eq!(query().await.expect("answered").status(), 200);
    }
    let refused = query().await.expect("answered");
    assert_eq!(refused.status(), 429);
    let after: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=20).contains(&after), "Retry-After: {after}");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    // The same client over a WebSocket is the same client.
    let mut ws = Ws::open(&app, Proto::Transport, json!({})).await;
    ws.subscribe("p", "subscription { allCheckoutEvents { type } }", json!({})).await;
    match ws.frame("p").await {
        Frame::Error(e) => assert_eq!(e["extensions"]["code"], "RATE_LIMITED", "{e}"),
        other => panic!("a subscription over the rate ran: {other:?}"),
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_cap_is_refused() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_MAX_RESPONSE_BYTES", "2000")], false).await;
    for i in 0..20 {
        app.create_product(&format!("A product with a long enough name {i}"), 100, 1).await;
    }
    let body = app.gql("{ products { id name priceCents active stock reserved } }", json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("CHORUS_MAX_RESPONSE_BYTES")), "{body}");
    assert!(body.to_string().len() < 2000);
    // A smaller answer goes through.
    app.gql_ok("{ products { active } }", json!({})).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complexity_multiplied_through_fragments_is_counted_as_it_runs() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    // No alias at all: 20 × 20 spreads of six fields are 2,400 as they run.
    let spread = |next: &str| (0..20).map(|_| format!("... on Product {{ ...{next} }}")).collect::<Vec<_>>().join(" ");
    let query = format!(
        "{{ products {{ ...A }} }} fragment A on Product {{ {} }} fragment B on Product {{ {} }} fragment C on Product {{ id name priceCents active stock reserved }}",
        spread("B"),
        spread("C")
    );
    let body = app.gql(&query, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("complex")), "{body}");
    still_serving(&app).await;
    app.stop().await;
}
