//! The inspector page and its chat view in a real browser (headless Chromium), against a real
//! local gateway. Each test leaves a screenshot in target/browser-screenshots/.

use std::time::Duration;

use clap::Parser;
use local_gateway::{Options, RunningGateway, start};
use serde_json::Value;
use tests::browser::{Chromium, Page, eval, screenshot, type_and_enter, wait_until};
use tests::ws::gateway;

/// A page's chat: connected, with its connection id shown.
const CONNECTED: &str = "document.getElementById('chat').dataset.state === 'open'";

async fn connection_id(page: &Page) -> String {
    let id = eval(page, "document.getElementById('chat').dataset.connectionId").await;
    id.as_str()
        .expect("the chat shows its connection id")
        .to_string()
}

async fn reconnects(page: &Page) -> Value {
    eval(page, "document.getElementById('chat').dataset.reconnects").await
}

/// A page at the inspector, its chat connected and in `lobby`; returns its connection id.
async fn page_in_lobby(chromium: &Chromium, gw: &RunningGateway) -> (Page, String) {
    let page = chromium.open(&gw.http_url()).await;
    wait_until(&page, CONNECTED, "the chat connects").await;
    type_and_enter(&page, "#room-input", "lobby").await;
    wait_until(
        &page,
        "document.getElementById('chat').dataset.room === 'lobby'",
        "the chat joins lobby",
    )
    .await;
    let id = connection_id(&page).await;
    (page, id)
}

/// A JavaScript expression: the chat shows a message whose text is exactly `text`.
fn shows_message(text: &str) -> String {
    let text = serde_json::to_string(text).expect("a string");
    format!(
        "[...document.querySelectorAll('#messages .message .text')].some((m) => m.textContent === {text})"
    )
}

async fn say(page: &Page, text: &str) {
    type_and_enter(page, "#message-input", text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_in_a_room_see_each_other_s_messages_in_the_chat_view() {
    let gw = gateway(&[]).await;
    let chromium = Chromium::launch().await;
    let (alice, _) = page_in_lobby(&chromium, &gw).await;
    let (bob, _) = page_in_lobby(&chromium, &gw).await;

    say(&alice, "hello from alice").await;
    say(&bob, "hi alice, bob here").await;

    for page in [&alice, &bob] {
        wait_until(
            page,
            &shows_message("hello from alice"),
            "alice's message shows",
        )
        .await;
        wait_until(
            page,
            &shows_message("hi alice, bob here"),
            "bob's message shows",
        )
        .await;
    }
    let mine = "document.querySelector('#messages .message.mine .text').textContent";
    assert_eq!(eval(&alice, mine).await, "hello from alice");
    assert_eq!(eval(&bob, mine).await, "hi alice, bob here");
    screenshot(&alice, "two-pages-chat-alice").await;
    screenshot(&bob, "two-pages-chat-bob").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_lists_both_connections_their_rooms_and_their_invocations() {
    let gw = gateway(&[]).await;
    let chromium = Chromium::launch().await;
    let (alice, alice_id) = page_in_lobby(&chromium, &gw).await;
    let (_bob, bob_id) = page_in_lobby(&chromium, &gw).await;
    say(&alice, "for the inspector").await;

    for id in [&alice_id, &bob_id] {
        let row = format!("document.querySelector('#connections tr[data-connection-id=\"{id}\"]')");
        wait_until(
            &alice,
            &format!("{row}.textContent.includes('lobby')"),
            "a connection row with its room",
        )
        .await;
        for route in ["$connect", "$default"] {
            let invocation = format!(
                "document.querySelector('#invocations [data-route=\"{route}\"][data-connection-id=\"{id}\"]')"
            );
            wait_until(
                &alice,
                &invocation,
                &format!("a {route} invocation of {id}"),
            )
            .await;
        }
    }
    wait_until(
        &alice,
        "document.querySelector('#rooms [data-room=\"lobby\"]').textContent.includes('2 members')",
        "lobby has 2 members",
    )
    .await;
    wait_until(
        &alice,
        "document.querySelector('#calls .row')",
        "@connections calls",
    )
    .await;
    wait_until(
        &alice,
        "document.querySelector('#metrics [data-metric=\"ConnectionsOpened\"] .value').textContent !== ''",
        "the metric counters",
    )
    .await;
    // Every metric is listed from the start at zero: a summary's tile shows its series' largest
    // p99, not the zero of the series without labels.
    wait_until(
        &alice,
        "document.querySelector('#metrics [data-metric=\"Recipients p99\"] .value').textContent.startsWith('2')",
        "the p99 of the fan-outs' recipients",
    )
    .await;
    // The handler answers 200 even when it refuses: the row says what the refusal was.
    let refused_publish = format!(
        "(() => {{ const s = new WebSocket({:?}); s.onopen = () => s.send(JSON.stringify({{action: 'publish', room: 'elsewhere', data: 'x', requestId: 'r1'}})); return true; }})()",
        gw.ws_url()
    );
    eval(&alice, &refused_publish).await;
    wait_until(
        &alice,
        "[...document.querySelectorAll('#invocations .outcome')].some((o) => o.textContent === '✕ not_member')",
        "a refused publish shows its error code",
    )
    .await;
    screenshot(&alice, "inspector-two-connections").await;

    eval(
        &alice,
        "document.querySelector('#invocations [data-route=\"$default\"]').click()",
    )
    .await;
    wait_until(
        &alice,
        "document.getElementById('detail').open && document.getElementById('detail-left').textContent.includes('requestContext')",
        "an invocation's event on click",
    )
    .await;
    screenshot(&alice, "inspector-invocation-detail").await;
    gw.shutdown().await;
}

/// A gateway on `port`, retrying while the previous one still holds it (bounded).
async fn gateway_on_port(port: u16) -> RunningGateway {
    let port = port.to_string();
    let options = Options::try_parse_from(["local-gateway", "--port", &port]).expect("flags");
    for _ in 0..50 {
        if let Ok(config) = options.gateway_config().await {
            return start(config).await.expect("gateway start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} stayed taken for 5 s after the gateway stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_restart_both_pages_reconnect_and_join_their_room_again() {
    let gw = gateway(&[]).await;
    let port = gw.addr().port();
    let chromium = Chromium::launch().await;
    let (alice, alice_before) = page_in_lobby(&chromium, &gw).await;
    let (bob, bob_before) = page_in_lobby(&chromium, &gw).await;

    gw.shutdown().await;
    let gw = gateway_on_port(port).await;

    for (page, before) in [(&alice, &alice_before), (&bob, &bob_before)] {
        let reconnected = format!(
            "{CONNECTED} && document.getElementById('chat').dataset.connectionId !== {before:?}"
        );
        wait_until(page, &reconnected, "the page reconnects on its own").await;
        assert_eq!(reconnects(page).await, "1");
    }
    // Nobody clicked Join again: the client joined the room again by itself.
    say(&alice, "still here after the restart").await;
    wait_until(
        &bob,
        &shows_message("still here after the restart"),
        "a message after the restart",
    )
    .await;
    let bob_now = connection_id(&bob).await;
    let row =
        format!("document.querySelector('#connections tr[data-connection-id=\"{bob_now}\"]')");
    wait_until(
        &alice,
        &format!("{row}.textContent.includes('lobby')"),
        "the new gateway's inspector",
    )
    .await;
    screenshot(&alice, "restart-alice").await;
    screenshot(&bob, "restart-bob").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_short_idle_timeout_the_client_s_keepalive_keeps_the_socket_open() {
    let idle_timeout = Duration::from_secs(2);
    let gw = gateway(&["--idle-timeout-secs", &idle_timeout.as_secs().to_string()]).await;
    let chromium = Chromium::launch().await;
    let (page, before) = page_in_lobby(&chromium, &gw).await;

    // Three idle timeouts without a word from the person at the page.
    tokio::time::sleep(idle_timeout * 3).await;

    assert_eq!(
        reconnects(&page).await,
        "0",
        "the socket was closed as idle"
    );
    assert_eq!(connection_id(&page).await, before);
    assert_eq!(gw.open_sockets(), 1);
    wait_until(
        &page,
        "document.querySelector('#invocations .row span:nth-child(3)').textContent === 'ping'",
        "the keepalive pings in the inspector",
    )
    .await;
    screenshot(&page, "keepalive").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_data_is_html_renders_as_text() {
    let gw = gateway(&[]).await;
    let chromium = Chromium::launch().await;
    let (alice, _) = page_in_lobby(&chromium, &gw).await;
    let (bob, _) = page_in_lobby(&chromium, &gw).await;
    let html = r#"<img src="x" onerror="document.title='owned'"><b>bold</b>"#;

    say(&alice, html).await;

    wait_until(&bob, &shows_message(html), "the HTML shows as text").await;
    for page in [&alice, &bob] {
        assert_eq!(
            eval(
                page,
                "document.querySelector('#chat img, #chat b') === null"
            )
            .await,
            true
        );
        assert_eq!(
            eval(page, "document.title").await,
            "Local gateway · inspector"
        );
    }
    screenshot(&bob, "html-as-text").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_authorizer_on_the_chat_connects_with_the_token_given_and_shows_its_principal() {
    const SECRET: &str = "browser-test-secret-at-least-32-bytes-long";
    let gw = gateway(&["--jwt-secret", SECRET]).await;
    let token = Options::try_parse_from(["local-gateway", "--jwt-secret", SECRET])
        .expect("flags")
        .minted_token("alice")
        .expect("a token");
    let chromium = Chromium::launch().await;
    let page = chromium.open(&gw.http_url()).await;
    wait_until(
        &page,
        "document.getElementById('chat').dataset.state === 'reconnecting'",
        "the handshake without a token is refused",
    )
    .await;

    let give_token = format!("document.getElementById('token-input').value = {token:?}");
    eval(&page, &give_token).await;

    wait_until(&page, CONNECTED, "the chat connects with the token").await;
    wait_until(
        &page,
        "document.querySelector('#connections tr.mine td:nth-child(2)').textContent === 'alice'",
        "the inspector shows the connection's principal",
    )
    .await;
    screenshot(&page, "authorizer-principal").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_console_tab_runs_under_its_content_security_policy() {
    let gw = gateway(&[]).await;
    let chromium = Chromium::launch().await;
    let page = chromium.open(&gw.http_url()).await;
    let console = "document.getElementById('console-tab').contentDocument";

    eval(
        &page,
        "document.querySelector('.tab[data-tab=\"console-tab\"]').click()",
    )
    .await;
    // Its script (a file of its own: the policy runs no inline script) filled in the URL.
    wait_until(
        &page,
        &format!("{console}?.getElementById('url')?.value.endsWith('/local')"),
        "the console's script runs",
    )
    .await;
    assert_eq!(
        eval(
            &page,
            "getComputedStyle(document.getElementById('inspector-tab')).display"
        )
        .await,
        "none",
        "the inspector's panels stay on screen under the console"
    );
    eval(
        &page,
        &format!("{console}.getElementById('connect').click()"),
    )
    .await;
    wait_until(
        &page,
        &format!("{console}.getElementById('state').textContent === 'open'"),
        "the console connects",
    )
    .await;
    eval(
        &page,
        &format!("{console}.getElementById('whoami').click()"),
    )
    .await;

    wait_until(
        &page,
        &format!("{console}.getElementById('log').textContent.includes('\"type\":\"identity\"')"),
        "whoami's answer in the console's log",
    )
    .await;
    screenshot(&page, "protocol-console").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_chat_view_off_the_inspector_shows_no_chat_and_opens_no_socket() {
    let gw = gateway(&["--chat-view", "false"]).await;
    let chromium = Chromium::launch().await;
    let page = chromium.open(&gw.http_url()).await;

    wait_until(
        &page,
        "document.body.classList.contains('no-chat') && document.getElementById('chat').hidden",
        "the chat view is hidden",
    )
    .await;
    wait_until(
        &page,
        "document.getElementById('feed-state').textContent.includes('live')",
        "the inspector's own feed is live",
    )
    .await;

    assert_eq!(gw.open_sockets(), 0, "the page opened no WebSocket");
    screenshot(&page, "inspector-without-chat").await;
}
