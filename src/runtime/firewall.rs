//! Network isolation of the sessions: what a session's container may reach
//! through its bridge, enforced by packet filter rules the server installs
//! (and removes) itself, scoped to the session network's bridge interface so
//! that other containers on the machine are untouched.
//!
//! Two chains per bridge, replaced whole and atomically (`iptables-restore
//! --noflush` flushes a chain it declares):
//!
//! - `STUDIO-F-<bridge>`, jumped to from Docker's `DOCKER-USER` for packets
//!   that come in on the bridge and are forwarded: replies pass; the
//!   `--egress-allow` exceptions pass; private, shared, link-local,
//!   loopback, multicast and reserved ranges (the host's networks, other
//!   Docker networks, cloud metadata at 169.254.169.254) are refused; with
//!   `--egress deny`, everything else too.
//! - `STUDIO-I-<bridge>`, jumped to from `INPUT` for packets from the
//!   bridge to the host itself, whichever of its addresses (the gateway,
//!   docker0, its public address, an engine API on TCP): refused, but for
//!   replies and `--egress-allow` exceptions. The same for IPv6 (a
//!   container has a link-local address even on a network without IPv6).
//!
//! The preview does not need either: it connects from inside the
//! container's own network namespace (or, as a fallback, from the host,
//! whose replies pass as established traffic).
//!
//! The rules stay while their bridge exists: sessions kept across a
//! restart stay isolated, and other servers sharing the network rely on
//! them (removing them at one server's shutdown would race another's
//! create). The rules of bridges that no longer exist (a network removed)
//! are removed the next time rules are installed.

use std::net::IpAddr;
use std::process::Command;

use ipnet::IpNet;

use super::RuntimeError;

/// What sessions may reach beyond their container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub mode: EgressMode,
    /// Exceptions: these addresses (and port, when given) are reachable
    /// whatever the mode, the host's own included.
    pub allow: Vec<Allow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressMode {
    /// The internet, but not the host nor any private or reserved range.
    Internet,
    /// Nothing but the exceptions.
    Deny,
    /// No rules at all: sessions reach whatever the machine's own firewall
    /// lets them (for engines whose bridge this server cannot filter).
    Unfiltered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow {
    pub net: IpNet,
    pub port: Option<u16>,
}

impl EgressMode {
    pub fn parse(s: &str) -> Result<EgressMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "internet" => Ok(EgressMode::Internet),
            "deny" => Ok(EgressMode::Deny),
            "unfiltered" => Ok(EgressMode::Unfiltered),
            _ => Err(format!(
                "invalid egress {s:?}: use internet (the default), deny, or unfiltered"
            )),
        }
    }
}

impl Allow {
    /// `CIDR[:PORT]` or `ADDRESS[:PORT]`; IPv6 in brackets when a port
    /// follows (`[fd00::/8]:443`).
    pub fn parse(s: &str) -> Result<Allow, String> {
        let t = s.trim();
        let bad =
            || format!("invalid --egress-allow {s:?}: use CIDR[:PORT], e.g. 10.1.2.3/32:3128");
        let (net, port) = if let Some(rest) = t.strip_prefix('[') {
            let (net, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (net, port)
        } else if t.matches(':').count() == 1 {
            let (net, port) = t.split_once(':').ok_or_else(bad)?;
            (net, Some(port))
        } else {
            (t, None)
        };
        let net: IpNet = net
            .parse()
            .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| bad())?;
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad))
            .transpose()?;
        Ok(Allow {
            net: net.trunc(),
            port,
        })
    }

    fn matches(&self, chain: &str) -> Vec<String> {
        let d = format!("-A {chain} -d {}", self.net);
        match self.port {
            None => vec![format!("{d} -j RETURN")],
            Some(p) => vec![
                format!("{d} -p tcp --dport {p} -j RETURN"),
                format!("{d} -p udp --dport {p} -j RETURN"),
            ],
        }
    }
}

/// Ranges a session never reaches by default (RFC 6890 special-purpose
/// blocks that are not the internet).
const BLOCKED_V4: [&str; 12] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
];
const BLOCKED_V6: [&str; 5] = [
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "::ffff:0:0/96",
];

/// Which of the two tools (and address families) a rule set is for.
#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
    fn includes(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_))
        )
    }
    fn blocked(self) -> &'static [&'static str] {
        match self {
            Family::V4 => &BLOCKED_V4,
            Family::V6 => &BLOCKED_V6,
        }
    }
    fn reject(self) -> &'static str {
        match self {
            Family::V4 => "REJECT --reject-with icmp-admin-prohibited",
            Family::V6 => "REJECT --reject-with icmp6-adm-prohibited",
        }
    }
}

fn forward_chain(bridge: &str) -> String {
    format!("STUDIO-F-{bridge}")
}

fn input_chain(bridge: &str) -> String {
    format!("STUDIO-I-{bridge}")
}

/// The `iptables-restore` input that replaces both chains of `bridge`.
fn rules(family: Family, bridge: &str, egress: &Egress) -> String {
    let (f, i) = (forward_chain(bridge), input_chain(bridge));
    let mut out = vec![
        "*filter".to_string(),
        format!(":{f} - [0:0]"),
        format!(":{i} - [0:0]"),
    ];
    for chain in [&f, &i] {
        out.push(format!(
            "-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
        ));
        for a in egress.allow.iter().filter(|a| family.includes(&a.net)) {
            out.extend(a.matches(chain));
        }
    }
    let reject = family.reject();
    for net in family.blocked() {
        out.push(format!("-A {f} -d {net} -j {reject}"));
    }
    if egress.mode == EgressMode::Deny {
        out.push(format!("-A {f} -j {reject}"));
    }
    out.push(format!("-A {f} -j RETURN"));
    // Nothing from the bridge reaches the host itself but replies.
    out.push(format!("-A {i} -p tcp -j REJECT --reject-with tcp-reset"));
    out.push(format!("-A {i} -j {reject}"));
    out.push("COMMIT".into());
    out.join("\n") + "\n"
}

fn run(tool: &str, args: &[&str]) -> Result<std::process::Output, RuntimeError> {
    Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| RuntimeError::Engine(format!("cannot run {tool}: {e}")))
}

fn restore(family: Family, input: &str) -> Result<(), RuntimeError> {
    use std::io::Write;
    let tool = format!("{}-restore", family.tool());
    let mut child = Command::new(&tool)
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::Engine(format!("cannot run {tool}: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(|e| RuntimeError::Engine(format!("{tool}: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| RuntimeError::Engine(format!("{tool}: {e}")))?;
    if !out.status.success() {
        return Err(RuntimeError::Engine(format!(
            "{tool} refused the isolation rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Makes sure `chain` is jumped to from `from` for packets in on `bridge`.
fn jump(family: Family, from: &str, bridge: &str, chain: &str) -> Result<(), RuntimeError> {
    let rule = ["-i", bridge, "-j", chain];
    let check: Vec<&str> = ["-C", from].iter().chain(rule.iter()).copied().collect();
    if run(family.tool(), &check)?.status.success() {
        return Ok(());
    }
    let insert: Vec<&str> = ["-I", from, "1"]
        .iter()
        .chain(rule.iter())
        .copied()
        .collect();
    let out = run(family.tool(), &insert)?;
    if !out.status.success() {
        return Err(RuntimeError::Engine(format!(
            "{} could not insert the isolation jump into {from}: {}",
            family.tool(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Installs (or replaces) the rules for the session network's `bridge`.
/// Blocking: runs the filter tools.
pub fn install(bridge: &str, egress: &Egress) -> Result<(), RuntimeError> {
    if egress.mode == EgressMode::Unfiltered {
        return Ok(());
    }
    if !std::path::Path::new("/sys/class/net").join(bridge).exists() {
        return Err(RuntimeError::Engine(format!(
            "the session network's bridge {bridge} is not on this machine, so its traffic cannot be \
             filtered here; filter it on the engine's machine and pass --egress unfiltered"
        )));
    }
    remove_stale();
    for family in [Family::V4, Family::V6] {
        // IPv6 filtering needs ip6tables; a machine without it has no IPv6
        // forwarding to filter either.
        if matches!(family, Family::V6) && which("ip6tables-restore").is_none() {
            continue;
        }
        restore(family, &rules(family, bridge, egress))?;
        jump(family, "DOCKER-USER", bridge, &forward_chain(bridge)).or_else(|e| match family {
            // Without Docker's chain for IPv6 there is no IPv6 forwarding
            // of Docker's to filter.
            Family::V6 => Ok(()),
            Family::V4 => Err(e),
        })?;
        jump(family, "INPUT", bridge, &input_chain(bridge))?;
    }
    Ok(())
}

/// Removes the rules of `bridge`.
pub fn remove(bridge: &str) {
    for family in [Family::V4, Family::V6] {
        for (from, chain) in [
            ("DOCKER-USER", forward_chain(bridge)),
            ("INPUT", input_chain(bridge)),
        ] {
            // Every copy of the jump (two servers may have raced to add it).
            while run(family.tool(), &["-D", from, "-i", bridge, "-j", &chain])
                .is_ok_and(|o| o.status.success())
            {}
            let _ = run(family.tool(), &["-F", &chain]);
            let _ = run(family.tool(), &["-X", &chain]);
        }
    }
}

/// Removes the rules of bridges that no longer exist.
fn remove_stale() {
    let Ok(out) = run("iptables", &["-S"]) else {
        return;
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    let stale: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("-N STUDIO-F-"))
        .filter(|bridge| !std::path::Path::new("/sys/class/net").join(bridge).exists())
        .collect();
    for bridge in stale {
        tracing::info!(
            bridge,
            "removing the isolation rules of a network that is gone"
        );
        remove(bridge);
    }
}

/// Whether the filter tools are here and usable (root).
pub fn available() -> Result<(), String> {
    if which("iptables-restore").is_none() || which("iptables").is_none() {
        return Err("iptables is not installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the server does not run as root".into());
    }
    Ok(())
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_exceptions_parse_with_and_without_ports() {
        let a = Allow::parse("10.1.2.3/32:3128").unwrap();
        assert_eq!(a.net.to_string(), "10.1.2.3/32");
        assert_eq!(a.port, Some(3128));
        assert_eq!(
            Allow::parse("192.168.7.9").unwrap().net.to_string(),
            "192.168.7.9/32"
        );
        assert_eq!(
            Allow::parse("10.9.9.9/8").unwrap().net.to_string(),
            "10.0.0.0/8"
        );
        let v6 = Allow::parse("[fd00::/8]:443").unwrap();
        assert_eq!(
            (v6.net.to_string().as_str(), v6.port),
            ("fd00::/8", Some(443))
        );
        assert_eq!(Allow::parse("fd00::1").unwrap().port, None);
        for bad in [
            "",
            "10.0.0.0/33",
            "host:80",
            "10.0.0.1:0",
            "10.0.0.1:99999",
            "[fd00::1",
        ] {
            assert!(Allow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rules_refuse_private_ranges_and_the_host_but_keep_exceptions_first() {
        let egress = Egress {
            mode: EgressMode::Internet,
            allow: vec![Allow::parse("10.1.2.3/32:3128").unwrap()],
        };
        let r = rules(Family::V4, "br-abc", &egress);
        let lines: Vec<&str> = r.lines().collect();
        let pos = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in {r}"))
        };
        assert!(pos("10.1.2.3/32 -p tcp --dport 3128 -j RETURN") < pos("-d 10.0.0.0/8 -j REJECT"));
        assert!(r.contains("-A STUDIO-F-br-abc -d 169.254.0.0/16 -j REJECT"));
        assert!(r.contains("-A STUDIO-F-br-abc -d 172.16.0.0/12 -j REJECT"));
        assert!(
            r.contains("-A STUDIO-I-br-abc -j REJECT"),
            "the host itself"
        );
        assert!(
            !r.contains("-A STUDIO-F-br-abc -j REJECT"),
            "the internet stays open"
        );
        let deny = rules(
            Family::V4,
            "br-abc",
            &Egress {
                mode: EgressMode::Deny,
                allow: vec![],
            },
        );
        assert!(deny.contains("-A STUDIO-F-br-abc -j REJECT"));
        let v6 = rules(Family::V6, "br-abc", &egress);
        assert!(
            !v6.contains("10.1.2.3"),
            "an IPv4 exception is not an IPv6 rule"
        );
        assert!(v6.contains("-d fe80::/10 -j REJECT --reject-with icmp6-adm-prohibited"));
    }
}
