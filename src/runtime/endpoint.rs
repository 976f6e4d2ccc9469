//! Where the Docker engine is: its unix socket on this machine, or a TCP
//! address, in the clear or with TLS client certificates (the engine's
//! usual remote set-up: `ca.pem`, `cert.pem`, `key.pem` in one directory,
//! as `DOCKER_CERT_PATH` holds them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

/// The TLS files of a remote engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` of `dir`, each checked readable.
    pub fn in_dir(dir: &Path) -> Result<TlsFiles, String> {
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        for f in [&files.ca, &files.cert, &files.key] {
            std::fs::metadata(f).map_err(|e| {
                format!(
                    "the engine's TLS directory {} lacks {}: {e}",
                    dir.display(),
                    f.file_name().unwrap_or_default().to_string_lossy()
                )
            })?;
        }
        Ok(files)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp {
        /// `host:port`.
        addr: String,
        tls: Option<TlsFiles>,
    },
}

impl Endpoint {
    /// `unix:///path`, a bare socket path, `tcp://host:port` (with TLS when
    /// `tls_dir` is given) or `https://host:port` (TLS, `tls_dir` required).
    /// `None` means the local default socket.
    pub fn parse(host: Option<&str>, tls_dir: Option<&Path>) -> Result<Endpoint, String> {
        let host = host.unwrap_or("unix:///var/run/docker.sock");
        let tls = tls_dir.map(TlsFiles::in_dir).transpose()?;
        if let Some(p) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        let (addr, needs_tls) = match host.strip_prefix("tcp://") {
            Some(a) => (a, false),
            None => match host.strip_prefix("https://") {
                Some(a) => (a, true),
                None => {
                    return Err(format!(
                        "unsupported Docker host {host:?}: use unix:///path, tcp://HOST:PORT or https://HOST:PORT"
                    ))
                }
            },
        };
        let addr = addr.trim_end_matches('/').to_string();
        if addr.is_empty() || !addr.contains(':') {
            return Err(format!("Docker host {host:?} needs HOST:PORT"));
        }
        if needs_tls && tls.is_none() {
            return Err(format!(
                "Docker host {host:?} is TLS: give the directory of its ca.pem, cert.pem and key.pem (--docker-tls-dir)"
            ));
        }
        Ok(Endpoint::Tcp { addr, tls })
    }

    /// A name for it in messages and lock files.
    pub fn label(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.to_string_lossy().into_owned(),
            Endpoint::Tcp { addr, tls } => {
                format!("{}://{addr}", if tls.is_some() { "https" } else { "tcp" })
            }
        }
    }

    /// Whether the engine runs on this machine for sure (its socket is
    /// here); a TCP engine may be here or anywhere.
    pub fn is_local_socket(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }

    /// Opens a raw connection to the engine (for the hijacked exec stream).
    pub async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        match self {
            Endpoint::Unix(p) => Ok(Box::new(tokio::net::UnixStream::connect(p).await?)),
            Endpoint::Tcp { addr, tls: None } => {
                let s = tokio::net::TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(Box::new(s))
            }
            Endpoint::Tcp {
                addr,
                tls: Some(files),
            } => {
                let s = tokio::net::TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                let config = client_config(files).map_err(std::io::Error::other)?;
                let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name =
                    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                        std::io::Error::other(format!("bad engine host name {host:?}: {e}"))
                    })?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, s)
                    .await?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// A byte stream to the engine.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A TLS client that trusts the engine's CA and presents our certificate.
fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read =
        |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(&files.ca)?) {
        let c = c.map_err(|e| format!("bad CA certificate {}: {e}", files.ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("bad CA certificate {}: {e}", files.ca.display()))?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate {}: {e}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| format!("bad key {}: {e}", files.key.display()))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("the client certificate and key do not go together: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_addresses_are_read_as_docker_writes_them() {
        assert_eq!(
            Endpoint::parse(None, None).unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse(Some("unix:///run/x.sock"), None).unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse(Some("/run/y.sock"), None).unwrap(),
            Endpoint::Unix("/run/y.sock".into())
        );
        assert_eq!(
            Endpoint::parse(Some("tcp://10.0.0.5:2375"), None).unwrap(),
            Endpoint::Tcp {
                addr: "10.0.0.5:2375".into(),
                tls: None
            }
        );
        for bad in [
            "ssh://me@host",
            "tcp://",
            "tcp://host",
            "npipe:////./pipe/docker",
        ] {
            assert!(Endpoint::parse(Some(bad), None).is_err(), "{bad}");
        }
        let e = Endpoint::parse(Some("https://h:2376"), None).unwrap_err();
        assert!(e.contains("--docker-tls-dir"), "{e}");
        let e = Endpoint::parse(Some("tcp://h:2376"), Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.contains("ca.pem"), "{e}");
    }
}
