//! Signing up, logging in and out, sessions and cross-site protection, on both databases.

mod support;

use support::{Backend, TestApp};

on_both_databases!(
    sign_up_logs_in_and_refuses_duplicates,
    log_in_checks_credentials_and_rotates_the_session,
    log_out_deletes_the_session,
    sessions_survive_a_restart,
    cross_site_posts_are_refused,
);

async fn sign_up_logs_in_and_refuses_duplicates(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let lobby = ada.text("/posts/lobby/").await;
    assert!(lobby.contains("@ada"), "logged in after sign-up");

    let again = app.client();
    let taken = |email: &'static str, handle: &'static str| {
        let again = again.clone();
        async move {
            let form = [
                ("email", email),
                ("handle", handle),
                ("password", "long enough pw"),
            ];
            let response = again.post_form("/accounts/signup", &form).await;
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, page) = taken("ADA@example.com", "someone").await;
    assert_eq!(status, 422);
    assert!(page.contains("That email already has an account"), "{page}");

    let (status, page) = taken("new@example.com", "Ada").await;
    assert_eq!(status, 422);
    assert!(page.contains("The handle @ada is taken"), "{page}");
    assert!(
        page.contains(r#"value="new@example.com""#),
        "the form keeps what was typed"
    );

    let short = [
        ("email", "x@example.com"),
        ("handle", "xavier"),
        ("password", "short"),
    ];
    let response = again.post_form("/accounts/signup", &short).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("at least 8 characters")
    );

    let garbage = again
        .post_form("/accounts/signup", &[("nonsense", "1")])
        .await;
    assert_eq!(
        garbage.status(),
        422,
        "missing fields are a form error, not a 500"
    );
}

async fn log_in_checks_credentials_and_rotates_the_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.user("ada").await;

    let visitor = app.client();
    for (login, password) in [
        ("ada", "wrong password"),
        ("nobody", "correct horse battery"),
    ] {
        let response = visitor
            .post_form(
                "/accounts/login",
                &[("login", login), ("password", password)],
            )
            .await;
        assert_eq!(response.status(), 422);
        let page = response.text().await.unwrap();
        assert!(page.contains("Wrong email, handle or password."), "{page}");
    }

    // A session that exists before log-in must not be the one after it.
    let before = visitor.get("/").await;
    let planted = session_cookie(&before);
    let response = visitor
        .post_form(
            "/accounts/login",
            &[
                ("login", "ADA@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/posts/lobby/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    if let Some(planted) = planted {
        assert!(!cookie.contains(&planted), "session id rotated at log-in");
    }
    assert_eq!(visitor.get("/posts/lobby/").await.status(), 200);

    let by_handle = app.client();
    let response = by_handle
        .post_form(
            "/accounts/login",
            &[("login", "@ada"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(response.status(), 303, "the handle works as a log-in name");
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("switchyard_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

async fn log_out_deletes_the_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    let visitor = app.client();
    let form = [
        ("email", "ada@example.com"),
        ("handle", "ada"),
        ("password", "correct horse battery"),
    ];
    let response = visitor.post_form("/accounts/signup", &form).await;
    let cookie = session_cookie(&response).expect("session cookie");

    let mut private = visitor.stream("/posts/lobby/stream", None).await;
    let out = visitor.post_form("/accounts/logout", &[]).await;
    assert_eq!(out.status(), 303);
    let forget = out.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        forget.contains("Max-Age=0"),
        "the browser forgets the cookie: {forget}"
    );

    // The stream opened under that log-in ends with it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while private.next_frame(deadline).await.is_some() {}
    assert!(
        tokio::time::Instant::now() < deadline,
        "the private stream ended at log-out"
    );

    // The old cookie, replayed by someone who copied it, no longer logs anyone in.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/posts/lobby/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
}

async fn sessions_survive_a_restart(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let db = app.stop().await;

    let config = support::test_config(&db);
    let again = TestApp::start_with(db, config).await;
    let ada = support::Client {
        http: ada.http.clone(),
        base: again.base.clone(),
    };
    // The cookie jar is keyed by host, and both apps live on 127.0.0.1.
    let lobby = ada.get("/posts/lobby/").await;
    assert_eq!(
        lobby.status(),
        200,
        "the stored session outlived the process"
    );
}

async fn cross_site_posts_are_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;

    let forged = ada
        .http
        .post(app.url("/posts/create/"))
        .header("origin", "https://evil.example")
        .form(&[("body", "forged @ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("cross-site"));

    let same = ada
        .http
        .post(app.url("/posts/create/"))
        .header("origin", &app.base)
        .form(&[("body", "genuine")])
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 303);

    let all = ada.text("/posts/all/region").await;
    assert!(all.contains("genuine") && !all.contains("forged"));
}
