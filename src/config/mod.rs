//! Settings: one typed struct built once at start-up from flags, `STUDIO_*`
//! environment variables and an optional TOML file (in that order of
//! precedence), then passed down. Nothing below `main` reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

mod file;
use file::FileConfig;

use crate::limits::{RateLimit, RateLimits};

/// Command line and environment. Every field is optional so that a value
/// given in the TOML file can fill what neither a flag nor a variable set.
#[derive(Debug, Default, Parser)]
#[command(
    name = "claude-studio",
    version,
    about = "Isolated Docker workspaces with a WebSocket terminal, a container API and live preview"
)]
pub struct Cli {
    /// TOML file with any of the settings below (keys as the flags, snake_case or kebab-case).
    #[arg(long, env = "STUDIO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve HTTP and WebSocket on.
    #[arg(long, env = "STUDIO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Host directory under which a session's workspaceDir must lie (repeatable).
    #[arg(
        long = "workspace-root",
        env = "STUDIO_WORKSPACE_ROOT",
        value_delimiter = ','
    )]
    pub workspace_root: Vec<PathBuf>,
    /// Glob of images a session may use (repeatable); none means any image.
    #[arg(
        long = "allowed-image",
        env = "STUDIO_ALLOWED_IMAGE",
        value_delimiter = ','
    )]
    pub allowed_image: Vec<String>,
    /// Image used when a create names none.
    #[arg(long, env = "STUDIO_DEFAULT_IMAGE")]
    pub default_image: Option<String>,
    /// Inactivity after which an unattached session is removed (e.g. 30m).
    #[arg(long, env = "STUDIO_SESSION_TIMEOUT", value_parser = parse_duration)]
    pub session_timeout: Option<Duration>,
    /// Interval between WebSocket pings.
    #[arg(long, env = "STUDIO_HEARTBEAT_INTERVAL", value_parser = parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Interval between cleanup sweeps.
    #[arg(long, env = "STUDIO_CLEANUP_INTERVAL", value_parser = parse_duration)]
    pub cleanup_interval: Option<Duration>,
    /// Container memory limit (e.g. 512m, 1g).
    #[arg(long, env = "STUDIO_MEMORY", value_parser = parse_bytes)]
    pub memory: Option<u64>,
    /// Container CPU limit (e.g. 1, 0.5).
    #[arg(long, env = "STUDIO_CPUS")]
    pub cpus: Option<f64>,
    /// Container process limit.
    #[arg(long = "pids-limit", env = "STUDIO_PIDS_LIMIT")]
    pub pids_limit: Option<i64>,
    /// Shell started in the terminal.
    #[arg(long, env = "STUDIO_SHELL")]
    pub shell: Option<String>,
    /// Docker bridge network the containers join (created when missing).
    #[arg(long, env = "STUDIO_NETWORK")]
    pub network: Option<String>,
    /// Docker Engine address (unix:///path or tcp://host:port); defaults to DOCKER_HOST or the local socket.
    #[arg(long, env = "STUDIO_DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// API token (repeatable).
    #[arg(long = "api-token", env = "STUDIO_API_TOKEN", value_delimiter = ',')]
    pub api_token: Vec<String>,
    /// File with one API token per line.
    #[arg(long, env = "STUDIO_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
    /// Trust X-Forwarded-For for the client address.
    #[arg(long, env = "STUDIO_TRUST_PROXY", value_parser = parse_bool)]
    pub trust_proxy: Option<Option<bool>>,
    /// Listen on a non-loopback address without API tokens.
    #[arg(long, env = "STUDIO_INSECURE_NO_AUTH", value_parser = parse_bool)]
    pub insecure_no_auth: Option<Option<bool>>,
    /// Domain for host-based previews (PORT-SESSIONID.DOMAIN).
    #[arg(long, env = "STUDIO_PREVIEW_DOMAIN")]
    pub preview_domain: Option<String>,
    /// Extra Origin allowed to open WebSockets (repeatable).
    #[arg(
        long = "allowed-origin",
        env = "STUDIO_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origin: Vec<String>,
    /// Extra Host name the server answers to (repeatable).
    #[arg(
        long = "allowed-host",
        env = "STUDIO_ALLOWED_HOST",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,
    /// Label value that scopes this server's containers (servers sharing an engine use different ones).
    #[arg(long, env = "STUDIO_INSTANCE")]
    pub instance: Option<String>,
    /// General API rate limit per IP: N/DURATION or off [default: 100/1m].
    #[arg(long = "rate-limit-general", env = "STUDIO_RATE_LIMIT_GENERAL", value_parser = RateLimit::parse)]
    pub rate_limit_general: Option<RateLimit>,
    /// Container operations per IP and session: N/DURATION or off [default: 10/1m].
    #[arg(long = "rate-limit-container", env = "STUDIO_RATE_LIMIT_CONTAINER", value_parser = RateLimit::parse)]
    pub rate_limit_container: Option<RateLimit>,
    /// Preview configuration per IP: N/DURATION or off [default: 20/1m].
    #[arg(long = "rate-limit-preview", env = "STUDIO_RATE_LIMIT_PREVIEW", value_parser = RateLimit::parse)]
    pub rate_limit_preview: Option<RateLimit>,
    /// WebSocket connections per IP: N/DURATION or off [default: 5/1m].
    #[arg(long = "rate-limit-ws", env = "STUDIO_RATE_LIMIT_WS", value_parser = RateLimit::parse)]
    pub rate_limit_ws: Option<RateLimit>,
    /// Failed token checks per IP: N/DURATION or off [default: 5/15m].
    #[arg(long = "rate-limit-auth", env = "STUDIO_RATE_LIMIT_AUTH", value_parser = RateLimit::parse)]
    pub rate_limit_auth: Option<RateLimit>,
    /// Sessions one owner (API token, or everyone when auth is off) may hold at once [default: 20].
    #[arg(long = "max-sessions-per-owner", env = "STUDIO_MAX_SESSIONS_PER_OWNER")]
    pub max_sessions_per_owner: Option<usize>,
    /// Origin allowed to call the REST API from a browser (CORS; repeatable). None: CORS closed.
    #[arg(
        long = "cors-origin",
        env = "STUDIO_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,
    /// HTTP connections served at once; beyond it new ones wait to be accepted [default: 1024].
    #[arg(long = "max-connections", env = "STUDIO_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// A connection that has not sent a complete request head within this is closed (idle keep-alive and slow heads alike), and a request body that stalls this long fails [default: 30s].
    #[arg(long = "connection-idle-timeout", env = "STUDIO_CONNECTION_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub connection_idle_timeout: Option<Duration>,
    /// Pre-started hardened containers kept ready per pooled image (0 = off).
    #[arg(long, env = "STUDIO_WARM_POOL")]
    pub warm_pool: Option<usize>,
    /// Image to keep a warm pool of (repeatable); default: the default image.
    #[arg(
        long = "warm-pool-image",
        env = "STUDIO_WARM_POOL_IMAGE",
        value_delimiter = ','
    )]
    pub warm_pool_image: Vec<String>,
}

/// Limits applied to every container.
#[derive(Debug, Clone)]
pub struct ContainerLimits {
    pub memory_bytes: u64,
    pub nano_cpus: i64,
    pub pids: i64,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub workspace_roots: Vec<PathBuf>,
    pub allowed_images: Vec<String>,
    pub default_image: String,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub cleanup_interval: Duration,
    pub limits: ContainerLimits,
    pub shell: String,
    pub network: String,
    pub docker_host: Option<String>,
    pub api_tokens: Vec<String>,
    pub trust_proxy: bool,
    pub insecure_no_auth: bool,
    pub preview_domain: String,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub instance: String,
    pub rate_limits: RateLimits,
    pub max_sessions_per_owner: usize,
    pub max_connections: usize,
    pub connection_idle_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub warm_pool: usize,
    pub warm_pool_images: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 3333)),
            workspace_roots: Vec::new(),
            allowed_images: Vec::new(),
            default_image: "node:20-alpine".into(),
            session_timeout: Duration::from_secs(30 * 60),
            heartbeat_interval: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(5 * 60),
            limits: ContainerLimits {
                memory_bytes: 512 * 1024 * 1024,
                nano_cpus: 1_000_000_000,
                pids: 256,
            },
            shell: "/bin/sh".into(),
            network: "claude-studio".into(),
            docker_host: None,
            api_tokens: Vec::new(),
            trust_proxy: false,
            insecure_no_auth: false,
            preview_domain: "localhost".into(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            instance: "default".into(),
            rate_limits: RateLimits::default(),
            max_sessions_per_owner: 20,
            max_connections: 1024,
            connection_idle_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            warm_pool: 0,
            warm_pool_images: Vec::new(),
        }
    }
}

/// `30m`, `1h 30m`, `500ms`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            humantime::parse_duration(t).map_err(|e| format!("invalid duration {s:?}: {e}"))?
        }
    };
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be greater than zero"));
    }
    Ok(d)
}

/// `512m`, `1g`, `1048576`, `64k` (binary units, as Docker reads them).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid size {s:?}"))
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case), as people
/// write switches in environment variables.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err(format!(
            "invalid switch value {s:?}: use true or false (or 1/0, yes/no, on/off)"
        )),
    }
}

fn flag(v: Option<Option<bool>>) -> Option<bool> {
    // `--trust-proxy` alone means true; `--trust-proxy=false` or STUDIO_TRUST_PROXY=false means false.
    v.map(|inner| inner.unwrap_or(true))
}

impl Settings {
    /// Merges flags/env over the TOML file over the defaults, and checks the result.
    pub fn resolve(cli: Cli) -> Result<Settings, String> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let d = Settings::default();
        let file_listen = file.listen()?;
        let file_roots = file.workspace_roots();
        let dur = |cli: Option<Duration>,
                   file: Option<String>,
                   def: Duration|
         -> Result<Duration, String> {
            match (cli, file) {
                (Some(v), _) => Ok(v),
                (None, Some(s)) => parse_duration(&s),
                (None, None) => Ok(def),
            }
        };
        let list = |cli: Vec<String>, file: Option<Vec<String>>| {
            if cli.is_empty() {
                file.unwrap_or_default()
            } else {
                cli
            }
        };

        let memory_bytes = match (cli.memory, file.memory) {
            (Some(v), _) => v,
            (None, Some(s)) => parse_bytes(&s)?,
            (None, None) => d.limits.memory_bytes,
        };
        let cpus = cli.cpus.or(file.cpus).unwrap_or(1.0);
        if !(cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0) {
            return Err(format!("invalid cpus {cpus}"));
        }
        let pids = cli.pids_limit.or(file.pids_limit).unwrap_or(d.limits.pids);
        if pids < 1 {
            return Err(format!("invalid pids limit {pids}"));
        }

        let mut api_tokens = list(cli.api_token, file.api_token);
        if let Some(path) = cli
            .api_tokens_file
            .or(file.api_tokens_file.as_deref().map(PathBuf::from))
        {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read tokens file {}: {e}", path.display()))?;
            api_tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }

        let rate = |cli: Option<RateLimit>, file: Option<String>, def: RateLimit| match (cli, file)
        {
            (Some(v), _) => Ok(v),
            (None, Some(s)) => RateLimit::parse(&s),
            (None, None) => Ok(def),
        };
        let rl = d.rate_limits;
        let rate_limits = RateLimits {
            general: rate(cli.rate_limit_general, file.rate_limit_general, rl.general)?,
            container: rate(
                cli.rate_limit_container,
                file.rate_limit_container,
                rl.container,
            )?,
            preview: rate(cli.rate_limit_preview, file.rate_limit_preview, rl.preview)?,
            ws: rate(cli.rate_limit_ws, file.rate_limit_ws, rl.ws)?,
            auth: rate(cli.rate_limit_auth, file.rate_limit_auth, rl.auth)?,
        };
        let max_sessions_per_owner = cli
            .max_sessions_per_owner
            .or(file.max_sessions_per_owner)
            .unwrap_or(d.max_sessions_per_owner);
        if max_sessions_per_owner == 0 {
            return Err("--max-sessions-per-owner must be at least 1".into());
        }
        let max_connections = cli
            .max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections);
        if max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }

        let settings = Settings {
            listen: cli.listen.or(file_listen).unwrap_or(d.listen),
            workspace_roots: if cli.workspace_root.is_empty() {
                file_roots.unwrap_or_default()
            } else {
                cli.workspace_root
            },
            allowed_images: list(cli.allowed_image, file.allowed_image),
            default_image: cli
                .default_image
                .or(file.default_image)
                .unwrap_or(d.default_image),
            session_timeout: dur(cli.session_timeout, file.session_timeout, d.session_timeout)?,
            heartbeat_interval: dur(
                cli.heartbeat_interval,
                file.heartbeat_interval,
                d.heartbeat_interval,
            )?,
            cleanup_interval: dur(
                cli.cleanup_interval,
                file.cleanup_interval,
                d.cleanup_interval,
            )?,
            limits: ContainerLimits {
                memory_bytes,
                nano_cpus: (cpus * 1e9) as i64,
                pids,
            },
            shell: cli.shell.or(file.shell).unwrap_or(d.shell),
            network: cli.network.or(file.network).unwrap_or(d.network),
            docker_host: cli.docker_host.or(file.docker_host),
            api_tokens,
            trust_proxy: flag(cli.trust_proxy).or(file.trust_proxy).unwrap_or(false),
            insecure_no_auth: flag(cli.insecure_no_auth)
                .or(file.insecure_no_auth)
                .unwrap_or(false),
            preview_domain: cli
                .preview_domain
                .or(file.preview_domain)
                .unwrap_or(d.preview_domain),
            allowed_origins: list(cli.allowed_origin, file.allowed_origin),
            allowed_hosts: list(cli.allowed_host, file.allowed_host),
            instance: cli.instance.or(file.instance).unwrap_or(d.instance),
            rate_limits,
            max_sessions_per_owner,
            max_connections,
            connection_idle_timeout: dur(
                cli.connection_idle_timeout,
                file.connection_idle_timeout,
                d.connection_idle_timeout,
            )?,
            cors_origins: list(cli.cors_origin, file.cors_origin),
            warm_pool: cli.warm_pool.or(file.warm_pool).unwrap_or(0),
            warm_pool_images: Vec::new(),
        };
        let mut settings = settings;
        settings.warm_pool_images = list(cli.warm_pool_image, file.warm_pool_image);
        if settings.warm_pool_images.is_empty() {
            settings
                .warm_pool_images
                .push(settings.default_image.clone());
        }
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.api_tokens.is_empty() && !self.insecure_no_auth {
            return Err(format!(
                "refusing to listen on non-loopback address {} without API tokens; give --api-token or --api-tokens-file, or --insecure-no-auth",
                self.listen
            ));
        }
        crate::image::ImageRef::parse(&self.default_image)
            .map_err(|e| format!("invalid --default-image: {e}"))?;
        let policy = crate::image::ImagePolicy::new(&self.allowed_images)?;
        if self.warm_pool > 64 {
            return Err(format!(
                "--warm-pool {} is too large (at most 64)",
                self.warm_pool
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["claude-studio"];
        argv.extend_from_slice(args);
        Settings::resolve(Cli::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    #[test]
    fn switches_read_as_people_write_them() {
        for yes in ["true", "TRUE", "1", "yes", "on"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
            let s = resolve(&[&format!("--trust-proxy={yes}")]).unwrap();
            assert!(s.trust_proxy, "{yes}");
        }
        for no in ["false", "0", "no", "off"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
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
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0").is_err());
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
        assert_eq!(s.limits.memory_bytes, 512 << 20);
        assert_eq!(s.limits.nano_cpus, 1_000_000_000);
        assert_eq!(s.limits.pids, 256);
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = std::env::temp_dir().join(format!("studio-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "session_timeout = \"10m\"\nmemory = \"1g\"\ndefault_image = \"busybox:latest\"\n",
        )
        .unwrap();
        let s = resolve(&[
            "--config",
            file.to_str().unwrap(),
            "--session-timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(s.session_timeout, Duration::from_secs(2));
        assert_eq!(s.limits.memory_bytes, 1 << 30);
        assert_eq!(s.default_image, "busybox:latest");
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
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn rate_limits_come_from_flags_env_and_file() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.rate_limits, RateLimits::default());
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
        assert_eq!(s.rate_limits.general, RateLimit::new(3, 60));
        assert_eq!(s.rate_limits.auth, RateLimit(None));
        assert_eq!(s.rate_limits.ws, RateLimit::new(5, 60));
        assert_eq!(s.max_sessions_per_owner, 2);
        let err = resolve(&["--rate-limit-ws", "five"]).unwrap_err();
        assert!(err.contains("N/DURATION"), "{err}");

        let dir = std::env::temp_dir().join(format!("studio-cfg-rl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "rate_limit_preview = \"7/30s\"\nrate_limit_container = \"off\"\n",
        )
        .unwrap();
        let s = resolve(&["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(s.rate_limits.preview, RateLimit::new(7, 30));
        assert_eq!(s.rate_limits.container, RateLimit(None));
        std::fs::remove_dir_all(dir).ok();
        // The variables are declared on the flags (clap reads them).
        let cmd = <Cli as clap::CommandFactory>::command();
        for (flag, var) in [
            ("rate-limit-general", "STUDIO_RATE_LIMIT_GENERAL"),
            ("rate-limit-container", "STUDIO_RATE_LIMIT_CONTAINER"),
            ("rate-limit-preview", "STUDIO_RATE_LIMIT_PREVIEW"),
            ("rate-limit-ws", "STUDIO_RATE_LIMIT_WS"),
            ("rate-limit-auth", "STUDIO_RATE_LIMIT_AUTH"),
            ("max-sessions-per-owner", "STUDIO_MAX_SESSIONS_PER_OWNER"),
            ("cors-origin", "STUDIO_CORS_ORIGIN"),
        ] {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap();
            assert_eq!(arg.get_env().unwrap(), var);
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(resolve(&["--session-timeout", "soon"]).is_err());
        assert!(resolve(&["--session-timeout", "0s"]).is_err());
    }
}
