//! Settings: one typed struct built once at start-up from flags, `STUDIO_*`
//! environment variables and an optional TOML file (in that order of
//! precedence), then passed down. Each setting is declared once, below;
//! nothing below `main` reads the environment.

mod declare;
pub mod file;
pub mod parse;
pub mod pool;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::limits::{RateLimit, RateLimits};
use crate::runtime::firewall::{Allow, Egress, EgressMode};
use declare::settings;

settings! {
    /// Address to serve HTTP and WebSocket on [default: 127.0.0.1:3333].
    listen: SocketAddr = one("listen", "STUDIO_LISTEN", parse::addr, SocketAddr::from(([127, 0, 0, 1], 3333)));
    /// Host directory under which a session's workspaceDir must lie (repeatable).
    workspace_roots: Vec<PathBuf> = many("workspace-root", "STUDIO_WORKSPACE_ROOT", parse::path);
    /// Glob of images a session may use (repeatable); none means any image.
    allowed_images: Vec<String> = many("allowed-image", "STUDIO_ALLOWED_IMAGE", parse::text);
    /// Image used when a create names none [default: node:20-alpine].
    default_image: String = one("default-image", "STUDIO_DEFAULT_IMAGE", parse::text, "node:20-alpine".into());
    /// Image a create that names none gets when the default image is absent and cannot be pulled (scripts/run builds it from Debian's packages) [default: claude-studio-dev:latest].
    fallback_image: Option<String> = one("fallback-image", "STUDIO_FALLBACK_IMAGE", |s| Ok(Some(s.to_string()).filter(|s: &String| !s.is_empty())), Some("claude-studio-dev:latest".into()));
    /// Inactivity after which an unattached session is removed [default: 30m].
    session_timeout: Duration = one("session-timeout", "STUDIO_SESSION_TIMEOUT", parse::duration, Duration::from_secs(30 * 60));
    /// Interval between WebSocket pings [default: 30s].
    heartbeat_interval: Duration = one("heartbeat-interval", "STUDIO_HEARTBEAT_INTERVAL", parse::duration, Duration::from_secs(30));
    /// Interval between cleanup sweeps [default: 5m].
    cleanup_interval: Duration = one("cleanup-interval", "STUDIO_CLEANUP_INTERVAL", parse::duration, Duration::from_secs(5 * 60));
    /// Container memory limit, e.g. 512m or 1g [default: 512m].
    memory: u64 = one("memory", "STUDIO_MEMORY", parse::bytes, 512 << 20);
    /// Container CPU limit, e.g. 1 or 0.5 [default: 1].
    cpus: f64 = one("cpus", "STUDIO_CPUS", parse::number::<f64>, 1.0);
    /// Container process limit [default: 256].
    pids_limit: i64 = one("pids-limit", "STUDIO_PIDS_LIMIT", parse::number::<i64>, 256);
    /// Shell started in the terminal [default: /bin/sh].
    shell: String = one("shell", "STUDIO_SHELL", parse::text, "/bin/sh".into());
    /// Docker bridge network the containers join, created when missing [default: claude-studio].
    network: String = one("network", "STUDIO_NETWORK", parse::text, "claude-studio".into());
    /// What sessions may reach: internet (not the host, nor private or reserved ranges), deny (nothing but the exceptions), or unfiltered [default: internet].
    egress: EgressMode = one("egress", "STUDIO_EGRESS", EgressMode::parse, EgressMode::Internet);
    /// An exception sessions may reach whatever --egress says, CIDR[:PORT] (repeatable), e.g. a package mirror 10.1.2.3/32:3128.
    egress_allow: Vec<Allow> = many("egress-allow", "STUDIO_EGRESS_ALLOW", Allow::parse);
    /// Docker Engine address (unix:///path); defaults to DOCKER_HOST, then the local socket.
    docker_host: Option<String> = optional("docker-host", "STUDIO_DOCKER_HOST", parse::text);
    /// Directory of a remote engine's TLS files (ca.pem, cert.pem, key.pem) for tcp:// and https:// Docker hosts; defaults to DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set.
    docker_tls_dir: Option<PathBuf> = optional("docker-tls-dir", "STUDIO_DOCKER_TLS_DIR", parse::path);
    /// API token (repeatable).
    api_tokens: Vec<String> = many("api-token", "STUDIO_API_TOKEN", parse::text);
    /// File with one API token per line ('#' starts a comment).
    api_tokens_file: Option<PathBuf> = optional("api-tokens-file", "STUDIO_API_TOKENS_FILE", parse::path);
    /// Trust X-Forwarded-For for the client address.
    trust_proxy: bool = switch("trust-proxy", "STUDIO_TRUST_PROXY");
    /// Listen on a non-loopback address without API tokens.
    insecure_no_auth: bool = switch("insecure-no-auth", "STUDIO_INSECURE_NO_AUTH");
    /// Domain for host-based previews (PORT-SESSIONID.DOMAIN) [default: localhost].
    preview_domain: String = one("preview-domain", "STUDIO_PREVIEW_DOMAIN", parse::text, "localhost".into());
    /// Extra Origin allowed to open WebSockets and call the API (repeatable).
    allowed_origins: Vec<String> = many("allowed-origin", "STUDIO_ALLOWED_ORIGIN", parse::text);
    /// Extra Host name the server answers to (repeatable; '*.example.com' for a domain).
    allowed_hosts: Vec<String> = many("allowed-host", "STUDIO_ALLOWED_HOST", parse::text);
    /// Label value that scopes this server's containers; servers sharing an engine use different ones [default: default].
    instance: String = one("instance", "STUDIO_INSTANCE", parse::text, "default".into());
    /// Directory for the state store (sessions' owners and preview ports) [default: $XDG_STATE_HOME/claude-studio, else ~/.local/state/claude-studio].
    state_dir: Option<PathBuf> = optional("state-dir", "STUDIO_STATE_DIR", parse::path);
    /// Shared state store for a fleet of gateways, redis://HOST:PORT/DB: session records, terminal leases, preview signing keys and rate limits live there, and any gateway serves any session [default: none, one server with its own state directory].
    store: Option<String> = optional("store", "STUDIO_STORE", parse::text);
    /// With --store: the URL other gateways of the fleet reach this one at (its own address, not a load balancer's) [default: http:// and the listen address].
    advertise_url: Option<String> = optional("advertise-url", "STUDIO_ADVERTISE_URL", parse::text);
    /// With --store: another engine of the fleet (repeatable), unix:///path or tcp://HOST:PORT (TLS files from --docker-tls-dir), on which this gateway serves the sessions it takes over from a gateway that is gone; it makes its own containers on --docker-host only.
    fleet_engines: Vec<String> = many("fleet-engine", "STUDIO_FLEET_ENGINE", parse::text);
    /// General API rate limit per IP: N/DURATION or off [default: 100/1m].
    rate_limit_general: RateLimit = one("rate-limit-general", "STUDIO_RATE_LIMIT_GENERAL", RateLimit::parse, RateLimits::default().general);
    /// Container operations per IP and session: N/DURATION or off [default: 10/1m].
    rate_limit_container: RateLimit = one("rate-limit-container", "STUDIO_RATE_LIMIT_CONTAINER", RateLimit::parse, RateLimits::default().container);
    /// Preview configuration per IP: N/DURATION or off [default: 20/1m].
    rate_limit_preview: RateLimit = one("rate-limit-preview", "STUDIO_RATE_LIMIT_PREVIEW", RateLimit::parse, RateLimits::default().preview);
    /// WebSocket connections per IP: N/DURATION or off [default: 5/1m].
    rate_limit_ws: RateLimit = one("rate-limit-ws", "STUDIO_RATE_LIMIT_WS", RateLimit::parse, RateLimits::default().ws);
    /// Failed token checks per IP: N/DURATION or off [default: 5/15m].
    rate_limit_auth: RateLimit = one("rate-limit-auth", "STUDIO_RATE_LIMIT_AUTH", RateLimit::parse, RateLimits::default().auth);
    /// Sessions one owner (API token, or everyone when auth is off) may hold at once [default: 20].
    max_sessions_per_owner: usize = one("max-sessions-per-owner", "STUDIO_MAX_SESSIONS_PER_OWNER", parse::number::<usize>, 20);
    /// Origin allowed to call the REST API from a browser (CORS; repeatable); none: CORS closed.
    cors_origins: Vec<String> = many("cors-origin", "STUDIO_CORS_ORIGIN", parse::text);
    /// HTTP connections served at once; beyond it new ones wait to be accepted [default: 1024].
    max_connections: usize = one("max-connections", "STUDIO_MAX_CONNECTIONS", parse::number::<usize>, 1024);
    /// HTTP connections one client address may hold at once (0: no cap; not applied with --trust-proxy) [default: 256].
    max_connections_per_ip: usize = one("max-connections-per-ip", "STUDIO_MAX_CONNECTIONS_PER_IP", parse::number::<usize>, 256);
    /// A request head (or, on a kept-alive connection, the next one) must arrive whole within this [default: 10s].
    request_head_timeout: Duration = one("request-head-timeout", "STUDIO_REQUEST_HEAD_TIMEOUT", parse::duration, Duration::from_secs(10));
    /// A request body that stalls this long fails, and one that takes longer must average 500 bytes a second; idle connections close after it too [default: 30s].
    connection_idle_timeout: Duration = one("connection-idle-timeout", "STUDIO_CONNECTION_IDLE_TIMEOUT", parse::duration, Duration::from_secs(30));
    /// How long a previewed app may take to start answering a request it has received whole; then 504 [default: 2m].
    preview_timeout: Duration = one("preview-timeout", "STUDIO_PREVIEW_TIMEOUT", parse::duration, Duration::from_secs(120));
    /// Largest file a session's files API takes in one write, and largest archive it packs or unpacks (file contents) [default: 100m].
    max_file_size: u64 = one("max-file-size", "STUDIO_MAX_FILE_SIZE", parse::bytes, 100 << 20);
    /// Most pre-started hardened containers kept ready per pooled image (the pool follows demand up to it); 0 turns the pool off; auto: 4 per CPU, between 4 and 16 [default: auto].
    warm_pool: pool::Auto<usize> = one("warm-pool", "STUDIO_WARM_POOL", pool::count, pool::Auto::Auto);
    /// Ready containers the warm pool keeps per image when nobody has asked for one lately; auto: 2, or --warm-pool when less [default: auto].
    warm_pool_min: pool::Auto<usize> = one("warm-pool-min", "STUDIO_WARM_POOL_MIN", pool::count, pool::Auto::Auto);
    /// How long a create counts as demand: the pool grows by one per create within it, and is back to --warm-pool-min after this long without one [default: 2m].
    warm_pool_idle: Duration = one("warm-pool-idle", "STUDIO_WARM_POOL_IDLE", parse::duration, Duration::from_secs(120));
    /// Memory the warm pool's waiting containers may hold together (as the engine measures them); auto: a 32nd of the machine's memory, between 64m and 1g [default: auto].
    warm_pool_memory: pool::Auto<u64> = one("warm-pool-memory", "STUDIO_WARM_POOL_MEMORY", pool::size, pool::Auto::Auto);
    /// Image to keep a warm pool of (repeatable) [default: the default image].
    warm_pool_images: Vec<String> = many("warm-pool-image", "STUDIO_WARM_POOL_IMAGE", parse::text);
}

/// Limits applied to every container.
#[derive(Debug, Clone)]
pub struct ContainerLimits {
    pub memory_bytes: u64,
    pub nano_cpus: i64,
    pub pids: i64,
}

/// What `main` reads from the environment beyond `STUDIO_*`, for the
/// defaults that depend on it.
#[derive(Debug, Clone, Default)]
pub struct Fallbacks {
    /// `DOCKER_HOST`, which counts after `--docker-host`, `STUDIO_DOCKER_HOST`
    /// and the file.
    pub docker_host: Option<String>,
    /// `XDG_STATE_HOME`, else `$HOME/.local/state`.
    pub state_home: Option<PathBuf>,
    /// `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set, as the Docker CLI
    /// reads them.
    pub docker_cert_path: Option<PathBuf>,
}

/// The server's command line: every setting's flag, and `--config`.
pub fn command() -> clap::Command {
    let cmd = clap::Command::new("claude-studio")
        .about("Isolated Docker workspaces with a WebSocket terminal, a container API and live preview")
        .version(env!("CARGO_PKG_VERSION"))
        // A setting given twice: the later one counts (a wrapper's default,
        // then the caller's choice).
        .args_override_self(true)
        .after_help(
            "Client commands (claude-studio COMMAND --help): shell, run, exec, create, ls, rm, preview, cp, logs.\n\
             The server is claude-studio with no command, or claude-studio serve.",
        )
        .arg(
            clap::Arg::new("config")
                .long("config")
                .env("STUDIO_CONFIG")
                .help("TOML file with any of the settings below (keys as the flags, snake_case or kebab-case)"),
        );
    DECLARATIONS.iter().fold(cmd, |cmd, d| cmd.arg(d.arg()))
}

/// A command line with no flags that reads no environment variable: only
/// the file and the defaults count.
fn no_flags() -> clap::ArgMatches {
    DECLARATIONS
        .iter()
        .fold(clap::Command::new("claude-studio"), |cmd, d| {
            cmd.arg(d.arg().env(None::<&str>))
        })
        .get_matches_from(["claude-studio"])
}

impl Default for Settings {
    /// The defaults alone, whatever the environment says.
    fn default() -> Self {
        Settings::from_layers(&no_flags(), &Default::default()).expect("the defaults are valid")
    }
}

impl Settings {
    /// Merges flags/env over the TOML file over the defaults, and checks the result.
    pub fn resolve(m: &clap::ArgMatches, fallbacks: &Fallbacks) -> Result<Settings, String> {
        let known: Vec<&str> = DECLARATIONS.iter().map(|d| d.flag).collect();
        let file = match m.get_one::<String>("config") {
            Some(path) => file::load(Path::new(path), &known)?,
            None => Default::default(),
        };
        let mut s = Settings::from_layers(m, &file)?;
        if let Some(path) = &s.api_tokens_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read tokens file {}: {e}", path.display()))?;
            s.api_tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        s.docker_host = s
            .docker_host
            .take()
            .or_else(|| fallbacks.docker_host.clone().filter(|h| !h.is_empty()));
        if s.docker_tls_dir.is_none()
            && s.docker_host
                .as_deref()
                .is_some_and(|h| h.starts_with("tcp://") || h.starts_with("https://"))
        {
            s.docker_tls_dir = fallbacks.docker_cert_path.clone();
        }
        if s.state_dir.is_none() {
            s.state_dir = fallbacks
                .state_home
                .as_ref()
                .map(|h| h.join("claude-studio"));
        }
        if s.warm_pool_images.is_empty() {
            s.warm_pool_images.push(s.default_image.clone());
        }
        s.check()?;
        Ok(s)
    }

    /// The settings a config file's text gives on its own (no flags, no
    /// environment, no tokens file), checked as at start-up: the entry of
    /// the `config` fuzz target; not an API.
    #[doc(hidden)]
    pub fn from_file_text(text: &str) -> Result<Settings, String> {
        let known: Vec<&str> = DECLARATIONS.iter().map(|d| d.flag).collect();
        let file = file::parse(text, &known)?;
        let mut s = Settings::from_layers(&no_flags(), &file)?;
        if s.warm_pool_images.is_empty() {
            s.warm_pool_images.push(s.default_image.clone());
        }
        s.check()?;
        Ok(s)
    }

    /// The warm pool's bounds on `machine` (see [`pool::PoolPlan::new`]).
    pub fn pool_plan(&self, machine: &pool::Machine) -> pool::PoolPlan {
        pool::PoolPlan::new(
            self.warm_pool,
            self.warm_pool_min,
            self.warm_pool_memory,
            self.warm_pool_idle,
            machine,
        )
    }

    pub fn container_limits(&self) -> ContainerLimits {
        ContainerLimits {
            memory_bytes: self.memory,
            nano_cpus: (self.cpus * 1e9) as i64,
            pids: self.pids_limit,
        }
    }

    pub fn egress_policy(&self) -> Egress {
        Egress {
            mode: self.egress,
            allow: self.egress_allow.clone(),
        }
    }

    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            general: self.rate_limit_general,
            container: self.rate_limit_container,
            preview: self.rate_limit_preview,
            ws: self.rate_limit_ws,
            auth: self.rate_limit_auth,
        }
    }

    /// Where this instance keeps its state.
    pub fn instance_state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".claude-studio"))
            .join("instances")
            .join(&self.instance)
    }

    fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.api_tokens.is_empty() && !self.insecure_no_auth {
            return Err(format!(
                "refusing to listen on non-loopback address {} without API tokens; give --api-token or --api-tokens-file, or --insecure-no-auth",
                self.listen
            ));
        }
        if !(self.cpus.is_finite() && self.cpus > 0.0 && self.cpus <= 1024.0) {
            return Err(format!("invalid --cpus {}", self.cpus));
        }
        if self.pids_limit < 1 {
            return Err(format!("invalid --pids-limit {}", self.pids_limit));
        }
        if self.max_sessions_per_owner == 0 {
            return Err("--max-sessions-per-owner must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        crate::image::ImageRef::parse(&self.default_image)
            .map_err(|e| format!("invalid --default-image: {e}"))?;
        let policy = crate::image::ImagePolicy::new(&self.allowed_images)?;
        for (flag, n) in [
            ("--warm-pool", self.warm_pool),
            ("--warm-pool-min", self.warm_pool_min),
        ] {
            if let pool::Auto::Set(n @ 65..) = n {
                return Err(format!("{flag} {n} is too large (at most 64)"));
            }
        }
        for image in &self.warm_pool_images {
            let r = crate::image::ImageRef::parse(image)
                .map_err(|e| format!("invalid --warm-pool-image: {e}"))?;
            if !policy.allows(&r) {
                return Err(format!(
                    "--warm-pool-image {image} is not allowed by --allowed-image"
                ));
            }
        }
        if self.shell.is_empty() {
            return Err("--shell must not be empty".into());
        }
        if let Some(store) = &self.store {
            check_store_url(store).map_err(|e| format!("invalid --store: {e}"))?;
        }
        if !self.fleet_engines.is_empty() && self.store.is_none() {
            return Err("--fleet-engine needs --store: it names the engines of a fleet".into());
        }
        if let Some(url) = &self.advertise_url {
            check_advertise_url(url).map_err(|e| format!("invalid --advertise-url: {e}"))?;
        }

        if self.instance.is_empty()
            || !self
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "invalid --instance {:?}: use letters, digits, '-', '_', '.'",
                self.instance
            ));
        }
        Ok(())
    }
}

/// `--store`: `redis://HOST[:PORT][/DB]` (a password may come as
/// `redis://:PASSWORD@HOST`).
fn check_store_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{s:?} is not a redis:// URL"))?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{s:?} names no host"));
    }
    if let Some(db) = rest
        .split_once('/')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
    {
        db.parse::<u16>()
            .map_err(|_| format!("{s:?}: the database must be a number, not {db:?}"))?;
    }
    Ok(())
}

/// `--advertise-url`: `http://HOST:PORT`, no path.
fn check_advertise_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("{s:?} is not an http:// URL"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(format!("{s:?}: give http://HOST:PORT and nothing more"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with(args: &[&str], fallbacks: &Fallbacks) -> Result<Settings, String> {
        let mut argv = vec!["claude-studio"];
        argv.extend_from_slice(args);
        let m = command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        Settings::resolve(&m, fallbacks)
    }

    fn resolve(args: &[&str]) -> Result<Settings, String> {
        resolve_with(args, &Fallbacks::default())
    }

    fn temp_file(name: &str, text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("studio-cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    #[test]
    fn switches_read_as_people_write_them() {
        for yes in ["true", "TRUE", "1", "yes", "on"] {
            let s = resolve(&[&format!("--trust-proxy={yes}")]).unwrap();
            assert!(s.trust_proxy, "{yes}");
        }
        for no in ["false", "0", "no", "off"] {
            assert!(
                !resolve(&[&format!("--trust-proxy={no}")])
                    .unwrap()
                    .trust_proxy
            );
        }
        assert!(resolve(&["--trust-proxy"]).unwrap().trust_proxy);
        assert!(resolve(&["--trust-proxy=perhaps"]).is_err());
    }

    #[test]
    fn a_bare_number_of_seconds_is_a_duration() {
        let s = resolve(&["--session-timeout", "90"]).unwrap();
        assert_eq!(s.session_timeout, Duration::from_secs(90));
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:3333");
        assert_eq!(s.default_image, "node:20-alpine");
        assert_eq!(s.session_timeout, Duration::from_secs(1800));
        assert_eq!(s.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(s.cleanup_interval, Duration::from_secs(300));
        let l = s.container_limits();
        assert_eq!(l.memory_bytes, 512 << 20);
        assert_eq!(l.nano_cpus, 1_000_000_000);
        assert_eq!(l.pids, 256);
        assert_eq!(s.warm_pool_images, vec!["node:20-alpine"]);
        // The pool is on unless turned off, and sized from the machine.
        assert_eq!(s.warm_pool, pool::Auto::Auto);
        assert_eq!(s.warm_pool_idle, Duration::from_secs(120));
        let plan = s.pool_plan(&pool::Machine {
            cpus: 2,
            memory_bytes: 8 << 30,
        });
        assert_eq!((plan.max, plan.min), (8, 2));
    }

    #[test]
    fn warm_pool_zero_is_off_and_sizes_are_checked() {
        let m = pool::Machine {
            cpus: 2,
            memory_bytes: 8 << 30,
        };
        let s = resolve(&["--warm-pool", "0"]).unwrap();
        assert_eq!(s.pool_plan(&m).max, 0);
        let s = resolve(&["--warm-pool", "3", "--warm-pool-min", "1"]).unwrap();
        assert_eq!((s.pool_plan(&m).max, s.pool_plan(&m).min), (3, 1));
        assert!(resolve(&["--warm-pool", "65"])
            .unwrap_err()
            .contains("at most 64"));
        assert!(resolve(&["--warm-pool", "many"])
            .unwrap_err()
            .contains("--warm-pool"));
        assert!(resolve(&["--warm-pool-memory", "0"]).is_err());
    }

    #[test]
    fn flags_beat_the_file() {
        let (dir, file) = temp_file(
            "flags",
            "session_timeout = \"10m\"\nmemory = \"1g\"\ndefault-image = \"busybox:latest\"\ncpus = 0.5\n",
        );
        let s = resolve(&[
            "--config",
            file.to_str().unwrap(),
            "--session-timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(s.session_timeout, Duration::from_secs(2));
        assert_eq!(s.memory, 1 << 30);
        assert_eq!(s.cpus, 0.5);
        assert_eq!(s.default_image, "busybox:latest");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn docker_host_from_the_environment_counts_after_the_file() {
        let fallbacks = Fallbacks {
            docker_host: Some("unix:///from-env.sock".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve_with(&[], &fallbacks)
                .unwrap()
                .docker_host
                .as_deref(),
            Some("unix:///from-env.sock")
        );
        let (dir, file) = temp_file("dh", "docker_host = \"unix:///from-file.sock\"\n");
        let s = resolve_with(&["--config", file.to_str().unwrap()], &fallbacks).unwrap();
        assert_eq!(s.docker_host.as_deref(), Some("unix:///from-file.sock"));
        let s = resolve_with(
            &[
                "--config",
                file.to_str().unwrap(),
                "--docker-host",
                "unix:///flag.sock",
            ],
            &fallbacks,
        )
        .unwrap();
        assert_eq!(s.docker_host.as_deref(), Some("unix:///flag.sock"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn non_loopback_without_tokens_is_refused() {
        let err = resolve(&["--listen", "0.0.0.0:3333"]).unwrap_err();
        assert!(err.contains("--insecure-no-auth"), "{err}");
        assert!(resolve(&["--listen", "0.0.0.0:3333", "--insecure-no-auth"]).is_ok());
        assert!(resolve(&["--listen", "0.0.0.0:3333", "--api-token", "t0k3n"]).is_ok());
    }

    #[test]
    fn rate_limits_come_from_flags_env_and_file() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.rate_limits(), RateLimits::default());
        assert_eq!(s.max_sessions_per_owner, 20);
        let s = resolve(&[
            "--rate-limit-general",
            "3/1m",
            "--rate-limit-auth",
            "off",
            "--max-sessions-per-owner",
            "2",
        ])
        .unwrap();
        assert_eq!(s.rate_limit_general, RateLimit::new(3, 60));
        assert_eq!(s.rate_limit_auth, RateLimit(None));
        assert_eq!(s.rate_limit_ws, RateLimit::new(5, 60));
        assert_eq!(s.max_sessions_per_owner, 2);
        let err = resolve(&["--rate-limit-ws", "five"]).unwrap_err();
        assert!(err.contains("N/DURATION"), "{err}");

        let (dir, file) = temp_file(
            "rl",
            "rate_limit_preview = \"7/30s\"\nrate_limit_container = \"off\"\n",
        );
        let s = resolve(&["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(s.rate_limit_preview, RateLimit::new(7, 30));
        assert_eq!(s.rate_limit_container, RateLimit(None));
        std::fs::remove_dir_all(dir).ok();
    }

    /// Every setting has a flag and its `STUDIO_*` variable, derived from
    /// one declaration.
    #[test]
    fn every_flag_has_its_variable() {
        let cmd = command();
        for d in DECLARATIONS {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(d.flag))
                .unwrap();
            let expected = format!("STUDIO_{}", d.flag.replace('-', "_").to_uppercase());
            assert_eq!(arg.get_env().unwrap(), expected.as_str(), "{}", d.flag);
            assert!(!d.help.trim().is_empty(), "{} has no help", d.flag);
        }
    }

    #[test]
    fn bad_values_are_refused_with_their_flag() {
        assert!(resolve(&["--session-timeout", "soon"])
            .unwrap_err()
            .contains("--session-timeout"));
        assert!(resolve(&["--session-timeout", "0s"]).is_err());
        assert!(resolve(&["--cpus", "0"]).is_err());
        let (dir, file) = temp_file("bad", "cpus = \"lots\"\n");
        let e = resolve(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(e.contains("lots") && e.contains("--cpus"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
