//! Starting an exec and taking over its connection ("hijacking"), done here
//! rather than through bollard's stream decoder: a TTY exec stream is raw
//! bytes, and a decoder that sniffs for multiplexing headers would misread a
//! terminal byte 0x00–0x02 (Ctrl-A in an editor) as a frame header.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::endpoint::Endpoint;
use super::RuntimeError;

/// A bidirectional raw byte stream to the exec's TTY.
pub type RawStream = TokioIo<hyper::upgrade::Upgraded>;

pub async fn start_exec(
    engine: &Endpoint,
    api_version: &str,
    exec_id: &str,
) -> Result<RawStream, RuntimeError> {
    let unavailable = |e: &dyn std::fmt::Display| RuntimeError::Unavailable(e.to_string());
    let stream = engine.connect().await.map_err(|e| unavailable(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(&e))?;
    // The connection future completes as soon as the upgrade happens, so this
    // task lives no longer than the request itself.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let req = Request::post(format!("/v{api_version}/exec/{exec_id}/start"))
        .header(HOST, "docker")
        .header(CONTENT_TYPE, "application/json")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "tcp")
        .body(Full::new(Bytes::from_static(
            br#"{"Detach":false,"Tty":true}"#,
        )))
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(&e))?;
    match res.status() {
        StatusCode::SWITCHING_PROTOCOLS | StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            return Err(RuntimeError::NotFound(format!("exec {exec_id} not found")))
        }
        s => {
            let body = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            return Err(RuntimeError::Engine(format!(
                "exec start answered {s}: {text}"
            )));
        }
    }
    let upgraded = hyper::upgrade::on(res).await.map_err(|e| unavailable(&e))?;
    Ok(TokioIo::new(upgraded))
}
