//! A second Docker engine on this machine, set up as a remote one is: its
//! own `dockerd` with its own data root, exec root, pid file, configuration
//! and unix socket in a temporary directory, and a TCP listener on a free
//! loopback port that takes only clients presenting a certificate of its CA
//! (`--tlsverify`). The certificates are made at start with the `openssl`
//! command: a CA, the engine's certificate for `IP:127.0.0.1`, a client
//! certificate (`clientAuth`), and a second CA with a client certificate of
//! its own that the engine must refuse.
//!
//! So that it never disturbs the machine's first engine (and the tests
//! running on it meanwhile):
//! - its default bridge is one of ours (`-b studio-re-N` on 10.214.N.0/24,
//!   made before it starts and deleted after it ends), and the networks it
//!   makes come from 10.213.N.0/24, where no other second engine holds N (a
//!   lock file per N, held while the engine lives) and no route of this
//!   machine uses either range. Not `--bridge none`: an engine started so
//!   deletes the machine's `docker0`, the first engine's default bridge;
//!   nor `--bip` alone, which would take `docker0` as its own;
//! - `--iptables=false`, `--ip-forward=false`: it writes no firewall rules
//!   and no kernel settings, since the first
//!   engine's chains are the machine's only ones. Its containers therefore
//!   get no NAT to the outside (the tests need none: only loopback) and its
//!   networks' "no inter-container traffic" option is not enforced; the
//!   server under test runs with `--egress unfiltered`, as against any
//!   engine whose bridge it cannot filter;
//! - its own containerd (started by it under its exec root), or its own
//!   namespace where the machine runs a shared containerd.
//!
//! It gets the test image from the first engine (`docker save` piped into
//! `docker load`): nothing is pulled. Dropping the [`RemoteEngine`] removes
//! its containers and networks, stops it (killing it if it lingers),
//! unmounts what it left mounted and deletes its directory, also when the
//! test failed; should the test process itself be killed, the engine is
//! killed with it (parent-death signal), and the next start removes the
//! directories of engines whose test process is gone.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{test_image, unique};

/// How long a second engine may take to come up (a fresh machine starts
/// its containerd and makes its data root first).
const START: Duration = Duration::from_secs(60);
const DIR_PREFIX: &str = "studio-remote-engine-";

pub struct RemoteEngine {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    /// The engine's unix socket, for the test's own `docker` commands.
    pub socket: PathBuf,
    /// ca.pem, cert.pem, key.pem of a client the engine accepts.
    pub tls: PathBuf,
    /// The same CA, and a client certificate of another CA.
    pub foreign_client: PathBuf,
    /// A good client certificate, but a CA that did not sign the engine's.
    pub foreign_ca: PathBuf,
    /// Whether it runs in PID and mount namespaces of its own.
    apart: bool,
    /// N of its address ranges and of its default bridge, `studio-re-N`.
    subnet: u8,
    /// Held while the engine lives: its networks' /24.
    _pool: std::fs::File,
}

impl RemoteEngine {
    /// Starts a second engine and loads the test image into it.
    pub fn start() -> RemoteEngine {
        RemoteEngine::start_with(false)
    }

    /// Like `start`, but the engine runs in PID and mount namespaces of its
    /// own (`unshare`), as on another machine: the process ids it reports
    /// are not its containers' here (a low one is a kernel thread of this
    /// machine, say), and its mounts are not this machine's. The network
    /// namespace is still shared, so that its TLS listener is on loopback.
    pub fn start_apart() -> RemoteEngine {
        RemoteEngine::start_with(true)
    }

    fn start_with(apart: bool) -> RemoteEngine {
        remove_stale();
        let dir = std::env::temp_dir().join(unique(DIR_PREFIX.trim_end_matches('-')));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = make_certificates(&dir.join("certs"));
        let docker0 = Path::new("/sys/class/net/docker0").exists();
        let (pool, subnet) = take_pool();
        let mut tries = 0;
        let engine = loop {
            tries += 1;
            match launch(&dir, &certs, subnet, apart) {
                Ok((child, port)) => {
                    break RemoteEngine {
                        child: Some(child),
                        socket: dir.join("docker.sock"),
                        tls: certs.join("client"),
                        foreign_client: certs.join("foreign-client"),
                        foreign_ca: certs.join("foreign-ca"),
                        dir,
                        port,
                        apart,
                        subnet,
                        _pool: pool,
                    }
                }
                // Another process took the free port between our look and
                // the engine's bind: once more on another.
                Err(log) if tries < 3 && log.contains("address already in use") => continue,
                Err(log) => {
                    delete_link(&default_bridge(subnet));
                    cleanup_dir(&dir);
                    panic!("the second dockerd did not start:\n{log}");
                }
            }
        };
        // The first engine's default bridge is the machine's: a second
        // engine must leave it alone (`--bridge none` deletes it).
        if docker0 {
            assert!(
                Path::new("/sys/class/net/docker0").exists(),
                "starting the second engine deleted the first engine's docker0"
            );
        }
        engine.load_test_image();
        engine
    }

    /// `tcp://127.0.0.1:PORT`, the engine's TLS listener.
    pub fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT`, the same.
    pub fn https(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Runs the docker CLI against this engine (its unix socket).
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .expect("run docker")
    }

    /// Like `docker`, but it must succeed; what it printed, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} on the second engine: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Full ids of the containers of a label scope on this engine.
    pub fn instance_containers(&self, instance: &str) -> Vec<String> {
        let label = format!("label=studio.instance={instance}");
        self.docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &label])
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// The engine's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn load_test_image(&self) {
        let image = test_image();
        let mut save = Command::new("docker")
            .args(["save", &image])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker save");
        let load = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("run docker load");
        let saved = save.wait_with_output().unwrap();
        assert!(
            saved.status.success(),
            "docker save {image} on the first engine (scripts/test builds it): {}",
            String::from_utf8_lossy(&saved.stderr)
        );
        assert!(
            load.status.success(),
            "docker load on the second engine: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Containers first (a graceful stop would wait for each), then the
        // networks, whose bridges would otherwise outlive the engine.
        let ids = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let bridges = self.bridges();
        let _ = self.docker(&["network", "prune", "-f"]);
        let pid = child.id();
        // Apart, the child is `unshare`, which ignores SIGTERM while it
        // waits for the engine; the engine's end ends it (and, being the
        // first process of its PID namespace, every process in it).
        let engine = if self.apart { child_of(pid) } else { Some(pid) };
        let (exited, ended) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = child.wait();
            let _ = exited.send(());
        });
        signal(engine.unwrap_or(pid), libc::SIGTERM);
        if ended.recv_timeout(Duration::from_secs(20)).is_err() {
            signal(pid, libc::SIGKILL);
            let _ = ended.recv();
        }
        for b in bridges {
            delete_link(&b);
        }
        delete_link(&default_bridge(self.subnet));
        cleanup_dir(&self.dir);
    }
}

impl RemoteEngine {
    /// The bridge interfaces of this engine's bridge networks.
    fn bridges(&self) -> Vec<String> {
        let out = self.docker(&[
            "network",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            "driver=bridge",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|id| format!("br-{}", &id[..12.min(id.len())]))
            .collect()
    }
}

/// Starts dockerd on a free loopback port and waits until it serves both
/// its socket and its TLS listener (it says so in its log). `Err`: its log,
/// when it ended before that.
fn launch(dir: &Path, certs: &Path, subnet: u8, apart: bool) -> Result<(Child, u16), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let socket = dir.join("docker.sock");
    let config = dir.join("daemon.json");
    // An empty configuration: the machine's /etc/docker/daemon.json (its
    // hosts, say) must not count for this one.
    std::fs::write(&config, "{}\n").unwrap();
    let namespace = format!("studio-remote-{subnet}");
    let mut cmd = if apart {
        // --kill-child: the engine dies with `unshare`.
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child", "--mount-proc", "dockerd"]);
        c
    } else {
        Command::new("dockerd")
    };
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("--containerd-namespace")
        .arg(&namespace)
        .arg("--containerd-plugins-namespace")
        .arg(format!("{namespace}-plugins"))
        .arg("--bridge")
        .arg(default_bridge(subnet))
        .args(["--iptables=false", "--ip-masq=false", "--ip-forward=false"])
        .arg("--default-address-pool")
        .arg(format!("base=10.213.{subnet}.0/24,size=24"))
        .args(["--shutdown-timeout", "2"])
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(certs.join("ca.pem"))
        .arg("--tlscert")
        .arg(certs.join("server-cert.pem"))
        .arg("--tlskey")
        .arg(certs.join("server-key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // before exec. The engine dies with the thread that started it (the
    // test's), should the test process be killed before its Drop runs.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!("cannot run dockerd ({e}): scripts/ensure-docker.sh installs Debian's docker.io")
    })?;
    let stderr = child.stderr.take().unwrap();
    let mut log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    // Copies the engine's log to its file for as long as it runs, and hands
    // each line to the wait below.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            let _ = tx.send(line);
        }
    });
    let want = [
        format!("API listen on {}", socket.display()),
        format!("API listen on 127.0.0.1:{port}"),
    ];
    let mut seen = [false, false];
    let mut lines = Vec::new();
    let deadline = Instant::now() + START;
    while !seen.iter().all(|s| *s) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                for (w, s) in want.iter().zip(seen.iter_mut()) {
                    *s |= line.contains(w.as_str());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                return Err(lines.join("\n"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "not serving after {START:?}:\n{}",
                    lines.join("\n")
                ));
            }
        }
    }
    Ok((child, port))
}

/// Makes the CAs and certificates under `dir` with the openssl command;
/// returns `dir`. Elliptic-curve keys: made at once.
fn make_certificates(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (scripts/test installs Debian's openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = |name: &str| {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ])
    };
    let ca = |name: &str| {
        key(&format!("{name}-key.pem"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-subj",
            &format!("/CN=studio test {name}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    // A certificate for `name` signed by CA `by`, with `extensions`.
    let signed = |name: &str, by: &str, cn: &str, extensions: &str| {
        key(&format!("{name}-key.pem"));
        openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
        let serial = format!("0x{:x}", rand_serial());
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{by}.pem"),
            "-CAkey",
            &format!("{by}-key.pem"),
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}-cert.pem"),
        ]);
    };
    ca("ca");
    ca("other-ca");
    signed(
        "server",
        "ca",
        "127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    );
    let client = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n";
    signed("client", "ca", "studio client", client);
    signed("foreign", "other-ca", "studio foreign client", client);
    // The client directories, as DOCKER_CERT_PATH holds them.
    let client_dir = |name: &str, ca: &str, cert: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(dir.join(format!("{ca}.pem")), d.join("ca.pem")).unwrap();
        std::fs::copy(dir.join(format!("{cert}-cert.pem")), d.join("cert.pem")).unwrap();
        std::fs::copy(dir.join(format!("{cert}-key.pem")), d.join("key.pem")).unwrap();
    };
    client_dir("client", "ca", "client");
    client_dir("foreign-client", "ca", "foreign");
    client_dir("foreign-ca", "other-ca", "client");
    dir.to_path_buf()
}

fn rand_serial() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (nanos ^ (u64::from(std::process::id()) << 32)) & 0x7fff_ffff_ffff_ffff
}

/// N for the engine's ranges, 10.213.N.0/24 (its networks) and
/// 10.214.N.0/24 (its default bridge): one that no other second engine
/// holds (an exclusive lock on its file, released when the file is closed
/// or the process ends) and no route of this machine uses; its default
/// bridge is made here. Interfaces of ours still routing either range of
/// an N that no engine holds were left by an engine killed with its test:
/// they are deleted first.
fn take_pool() -> (std::fs::File, u8) {
    use std::os::fd::AsRawFd;
    let locks = std::env::temp_dir().join("studio-remote-engine-pools");
    std::fs::create_dir_all(&locks).unwrap();
    for n in 0..=255u8 {
        let file = std::fs::File::create(locks.join(format!("{n}.lock"))).unwrap();
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        let ours = |i: &String| i.starts_with("br-") || *i == default_bridge(n);
        for iface in routed(213, n)
            .iter()
            .chain(&routed(214, n))
            .filter(|i| ours(i))
        {
            delete_link(iface);
        }
        delete_link(&default_bridge(n));
        if !routed(213, n).is_empty() || !routed(214, n).is_empty() {
            continue;
        }
        let bridge = default_bridge(n);
        let address = format!("10.214.{n}.1/24");
        for args in [
            &["link", "add", "name", &bridge, "type", "bridge"][..],
            &["addr", "add", &address, "dev", &bridge],
            &["link", "set", &bridge, "up"],
        ] {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("the ip command (scripts/test installs Debian's iproute2)");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return (file, n);
    }
    panic!(
        "every N of 10.213.N.0/24 and 10.214.N.0/24 is in use by other second engines or routes"
    );
}

/// The second engine's default bridge, made by us.
fn default_bridge(n: u8) -> String {
    format!("studio-re-{n}")
}

/// Deletes a network interface, if there is one of that name.
fn delete_link(name: &str) {
    if Path::new("/sys/class/net").join(name).exists() {
        let _ = Command::new("ip").args(["link", "delete", name]).output();
    }
}

/// The interfaces with a route to 10.`b`.`n`.0/24.
fn routed(b: u8, n: u8) -> Vec<String> {
    // /proc/net/route writes the destination as the address's bytes in
    // memory order, in hex: 10.213.N.0 is 00 N D5 0A.
    let dest = format!("00{n:02X}{b:02X}0A");
    std::fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let iface = f.next()?;
            (f.next()? == dest).then(|| iface.to_string())
        })
        .collect()
}

/// A child process of `parent`, from the machine's `/proc`.
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: a plain syscall.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Unmounts whatever is still mounted under `dir` (the engine's overlay
/// and namespace mounts, when it was killed) and removes it.
fn cleanup_dir(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    // Deepest first.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if let Ok(c) = std::ffi::CString::new(m) {
            // SAFETY: a plain syscall on a valid C string.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes the directories of second engines whose test process is gone
/// (killed before its Drop ran).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            cleanup_dir(&e.path());
        }
    }
}
