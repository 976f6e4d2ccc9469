//! Opening TCP connections to a container's own ports, for the preview.
//!
//! The connection is made from inside the container's network namespace, to
//! `127.0.0.1:PORT`, the way `kubectl port-forward` reaches a pod: a dev
//! server that listens only on localhost (Vite's default) is reachable, and
//! the path is the kernel's loopback rather than the bridge, veth pair and
//! host netfilter. A short-lived thread enters the namespace
//! (`setns(CLONE_NEWNET)`), creates and connects the socket, and ends; the
//! socket stays in that namespace wherever it is used afterwards. When
//! nothing listens on the loopback, the container's own address is tried,
//! still from inside its namespace (an app bound to its external address
//! only).
//!
//! Inside the namespace a connection can only ever reach that container:
//! once it has stopped, its namespace (kept alive by our handle) holds no
//! listener and no interface but a silent loopback, so dialling fails
//! rather than reaching whichever container got its address next. Entering
//! a namespace needs `CAP_SYS_ADMIN`: without it (or without the container's
//! `/proc` entry, when the server runs in a container of its own) the dialer
//! connects to the container's address from the host instead, which is only
//! as current as the engine's answer it was made from: such a dialer is not
//! [`confined`](PortDialer::confined), and callers ask the engine afresh
//! before each new connection.
//!
//! Whatever the path, the destination is the session's own container and a
//! port the caller chose: no client-supplied host is ever dialled.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpStream;

use super::PortDialer;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once entering a namespace has been refused: no further attempts.
static NETNS_DENIED: AtomicBool = AtomicBool::new(false);

pub struct NetnsDialer {
    /// The container's network namespace (`/proc/PID/ns/net`, held open).
    netns: Option<Arc<File>>,
    /// The container's address on its network.
    ip: Option<IpAddr>,
}

impl NetnsDialer {
    fn namespace(&self) -> Option<&Arc<File>> {
        self.netns
            .as_ref()
            .filter(|_| !NETNS_DENIED.load(Ordering::Relaxed))
    }

    /// `pid`: a process of the container, in the server's PID namespace.
    pub fn new(pid: Option<u32>, ip: Option<IpAddr>) -> NetnsDialer {
        let netns = pid
            .filter(|p| *p > 0 && !NETNS_DENIED.load(Ordering::Relaxed))
            .and_then(|p| File::open(format!("/proc/{p}/ns/net")).ok())
            .map(Arc::new);
        NetnsDialer { netns, ip }
    }

    /// `netns`: the container's network namespace, opened through a
    /// process known to be the container's.
    pub fn in_namespace(netns: File, ip: Option<IpAddr>) -> NetnsDialer {
        NetnsDialer {
            netns: Some(Arc::new(netns)),
            ip,
        }
    }

    async fn dial_inside(netns: Arc<File>, port: u16, ip: Option<IpAddr>) -> io::Result<TcpStream> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("studio-dial".into())
            .spawn(move || {
                let _ = tx.send(connect_in(&netns, port, ip));
            })?;
        let stream = rx
            .await
            .map_err(|_| io::Error::other("dialling thread ended"))??;
        stream.set_nonblocking(true)?;
        TcpStream::from_std(stream)
    }

    async fn dial_address(ip: IpAddr, port: u16) -> io::Result<TcpStream> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect(SocketAddr::new(ip, port)),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

/// Runs on a thread of its own that ends right after: it never has to
/// return to the server's namespace. Loopback first, then the container's
/// own address, both inside its namespace.
fn connect_in(netns: &File, port: u16, ip: Option<IpAddr>) -> io::Result<std::net::TcpStream> {
    // SAFETY: setns only changes this thread's network namespace; the fd is
    // open for the duration of the call.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            NETNS_DENIED.store(true, Ordering::Relaxed);
        }
        return Err(e);
    }
    let loopback = std::net::TcpStream::connect_timeout(
        &SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        CONNECT_TIMEOUT,
    );
    match (loopback, ip) {
        (Err(_), Some(ip)) => {
            std::net::TcpStream::connect_timeout(&SocketAddr::new(ip, port), CONNECT_TIMEOUT)
        }
        (result, _) => result,
    }
}

#[async_trait]
impl PortDialer for NetnsDialer {
    async fn dial(&self, port: u16) -> io::Result<TcpStream> {
        if let Some(ns) = self.namespace() {
            match Self::dial_inside(Arc::clone(ns), port, self.ip).await {
                // Not permitted after all: from the host, as a dialer without
                // a namespace would.
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                other => return other.and_then(finish),
            }
        }
        match self.ip {
            Some(ip) => Self::dial_address(ip, port).await.and_then(finish),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "container has no address",
            )),
        }
    }

    fn confined(&self) -> bool {
        self.namespace().is_some()
    }

    fn address(&self) -> Option<IpAddr> {
        self.ip
    }
}

fn finish(s: TcpStream) -> io::Result<TcpStream> {
    s.set_nodelay(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own namespace stands in for a container's: a listener
    /// on loopback is reached through it (needs root, as the server does
    /// for this path; skipped otherwise), and without a namespace the
    /// address is used.
    #[tokio::test]
    async fn dials_loopback_in_the_namespace_or_the_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            for _ in 0..2 {
                listener.accept().await.unwrap();
            }
        });
        let by_address = NetnsDialer::new(None, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(by_address.netns.is_none());
        by_address.dial(port).await.expect("by address");
        let own = NetnsDialer::new(Some(std::process::id()), None);
        assert!(own.netns.is_some(), "/proc/self/ns/net opens");
        // The server runs as root (scripts/test and CI do too): entering a
        // namespace is what is under test, so not being allowed to fails.
        if let Err(e) = own.dial(port).await {
            panic!("loopback in the namespace (needs root): {e}");
        }
        accept.await.unwrap();
    }

    /// A dialer with a namespace never dials from the host: here a fresh,
    /// empty namespace stands in for a stopped container's, and its former
    /// address (127.0.0.1 on the host) has a listener that must stay out of
    /// reach. Needs root to make the namespace; skipped otherwise.
    #[tokio::test]
    async fn a_namespace_dialer_never_falls_back_to_the_host() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let empty = std::thread::spawn(|| {
            // SAFETY: moves only this thread into a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            File::open("/proc/thread-self/ns/net").ok()
        })
        .join()
        .unwrap();
        let ns = empty.expect("making a network namespace (needs root)");
        let localhost = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let confined = NetnsDialer {
            netns: Some(Arc::new(ns)),
            ip: localhost,
        };
        assert!(confined.confined());
        assert!(
            confined.dial(port).await.is_err(),
            "reached the host's listener from an empty namespace"
        );
        let from_host = NetnsDialer {
            netns: None,
            ip: localhost,
        };
        assert!(!from_host.confined());
        from_host
            .dial(port)
            .await
            .expect("the host path reaches it");
    }

    #[tokio::test]
    async fn nothing_to_dial_is_an_error() {
        let none = NetnsDialer::new(None, None);
        assert!(none.dial(1).await.is_err());
    }
}
