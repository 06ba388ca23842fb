//! TLS on the gateway's listener (`--tls-cert` / `--tls-key`): HTTPS answers with a certificate
//! the client trusts, over HTTP/1.1 and HTTP/2 (ALPN); plain HTTP to the TLS port gets nothing.

use std::{sync::Arc, time::Duration};

use articles_gateway::{
    GatewayBuilder,
    server::{ServeOptions, serve_with, tls},
};
use http::StatusCode;
use rustls_pki_types::ServerName;
use tokio::{net::TcpListener, sync::oneshot};
use tokio_rustls::{
    TlsConnector,
    rustls::{self, RootCertStore, crypto::ring},
};

use crate::support::{library_pool, spawn_echo_backend};

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

#[tokio::test]
async fn the_listener_serves_https_from_pem_files() {
    let certified = ok(
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]),
        "certificate",
    );
    let dir = ok(tempfile::tempdir(), "temp dir");
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    ok(
        std::fs::write(&cert_file, certified.cert.pem()),
        "write cert",
    );
    ok(
        std::fs::write(&key_file, certified.signing_key.serialize_pem()),
        "write key",
    );
    let acceptor = ok(tls::acceptor(&cert_file, &key_file), "acceptor");
    assert!(
        tls::acceptor(&key_file, &cert_file).is_err(),
        "files swapped"
    );

    let pool = library_pool();
    let backend = spawn_echo_backend(&pool).await;
    let router = ok(
        GatewayBuilder::new()
            .descriptors(pool)
            .backend(ok(
                articles_gateway::Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
                "backend",
            ))
            .build(),
        "gateway",
    );
    let listener = ok(TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = ok(listener.local_addr(), "addr");
    let (_stop, rx) = oneshot::channel::<()>();
    let options = ServeOptions {
        tls: Some(acceptor),
        ..ServeOptions::default()
    };
    tokio::spawn(serve_with(
        listener,
        router,
        async {
            let _ = rx.await;
        },
        options,
    ));

    let mut roots = RootCertStore::empty();
    ok(roots.add(certified.cert.der().clone()), "trust the cert");
    for (alpn, version) in [
        (b"h2".as_slice(), http::Version::HTTP_2),
        (b"http/1.1".as_slice(), http::Version::HTTP_11),
    ] {
        let mut config = ok(
            rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions(),
            "versions",
        )
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = ok(tokio::net::TcpStream::connect(addr).await, "connect");
        let server_name = ok(ServerName::try_from("127.0.0.1"), "server name");
        let tls = ok(
            TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await,
            "TLS handshake",
        );
        let io = hyper_util::rt::TokioIo::new(tls);
        let request = ok(
            http::Request::get("/v1/shelves/7")
                .header("host", "127.0.0.1")
                .body(http_body_util::Empty::<bytes::Bytes>::new()),
            "request",
        );
        let response = if version == http::Version::HTTP_2 {
            let (mut sender, conn) = ok(
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await,
                "h2 handshake",
            );
            tokio::spawn(conn);
            ok(sender.send_request(request).await, "h2 request")
        } else {
            let (mut sender, conn) =
                ok(hyper::client::conn::http1::handshake(io).await, "handshake");
            tokio::spawn(conn);
            ok(sender.send_request(request).await, "http/1.1 request")
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), version);
        let body = ok(
            http_body_util::BodyExt::collect(response.into_body()).await,
            "body",
        )
        .to_bytes();
        let body: serde_json::Value = ok(serde_json::from_slice(&body), "JSON");
        assert_eq!(body["name"], "shelves/7");
    }

    // Plain HTTP to the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}
