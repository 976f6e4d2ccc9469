//! The Docker bridge network every session container joins.
//!
//! Docker does not make network names unique: two servers (or test
//! processes) that find the network missing at the same moment both create
//! it, and from then on every container start fails as "ambiguous" (the
//! engine looks the network up by name again at start, whatever id the
//! container joined). So looking for the network and creating it is done
//! under a lock that every server on this machine takes (a `flock` on a
//! file named after the engine and the network), and no second copy is
//! made. Copies made anyway (by servers on other machines sharing a remote
//! engine, or by an older version) are resolved: the one to use is chosen
//! deterministically (the smallest id among the candidates, so every
//! process that sees the same set agrees), and surplus empty copies that we
//! made are removed, also when a start fails as ambiguous.
//!
//! Only a bridge with inter-container traffic disabled qualifies: a network
//! of that name that allows it (made by someone else) is an error rather than
//! a silent loss of isolation.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{Network, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use bollard::Docker;

use super::docker::map_err;
use super::RuntimeError;

const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
const MANAGED_LABEL: &str = "studio.managed";

/// The session network, as found or made.
pub struct Found {
    pub id: String,
    /// Its bridge interface on the engine's machine.
    pub bridge: String,
    /// Held until dropped: what the caller does next with the network (its
    /// filter rules) is done once at a time too.
    _lock: MachineLock,
}

/// Finds the network `name`, creating it when there is none. `engine`
/// names the engine (its address), for the machine-wide lock.
pub async fn ensure(docker: &Docker, engine: &str, name: &str) -> Result<Found, RuntimeError> {
    let lock = MachineLock::take(engine, name).await;
    let mut found = named(docker, name).await?;
    if found.is_empty() {
        match docker.create_network(create_request(name)).await {
            Ok(_) => {}
            // Engines that check names refuse a second one: that is fine too.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(e) => return Err(map_err(e)),
        }
        found = named(docker, name).await?;
    }
    let usable: Vec<&Network> = found.iter().filter(|n| isolated(n)).collect();
    let Some(chosen) = choose(&usable) else {
        return Err(if found.is_empty() {
            RuntimeError::Engine(format!("network '{name}' could not be created"))
        } else {
            RuntimeError::Engine(format!(
                "network '{name}' exists but is not a bridge with inter-container traffic \
                 disabled; remove it or choose another --network"
            ))
        });
    };
    for surplus in usable.iter().filter(|n| n.id.as_deref() != Some(chosen)) {
        if managed(surplus) {
            // Fails harmlessly while containers are attached to it.
            let _ = docker
                .remove_network(surplus.id.as_deref().unwrap_or_default())
                .await;
        }
    }
    let network = usable
        .iter()
        .find(|n| n.id.as_deref() == Some(chosen))
        .expect("chosen among them");
    Ok(Found {
        id: chosen.to_string(),
        bridge: bridge_of(network),
        _lock: lock,
    })
}

/// The bridge interface of a bridge network: the name it was given, or
/// Docker's `br-` and the id's first 12 characters.
fn bridge_of(n: &Network) -> String {
    n.options
        .as_ref()
        .and_then(|o| o.get(BRIDGE_NAME_OPTION))
        .cloned()
        .unwrap_or_else(|| {
            format!(
                "br-{}",
                &n.id.as_deref().unwrap_or_default()
                    [..12.min(n.id.as_deref().unwrap_or_default().len())]
            )
        })
}

/// Whether an engine error says a network name matched more than one.
pub fn is_ambiguous(message: &str) -> bool {
    message.contains("is ambiguous") || message.contains("matches found")
}

/// Held while one process looks for the network and creates it; other
/// servers on this machine wait for it. Without a lock file (an unwritable
/// temporary directory) there is no lock, and duplicates are resolved as
/// above.
struct MachineLock {
    /// Locked until dropped.
    _file: Option<std::fs::File>,
}

impl MachineLock {
    async fn take(engine: &str, name: &str) -> MachineLock {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (engine, name).hash(&mut h);
        let path =
            std::env::temp_dir().join(format!("claude-studio-network-{:016x}.lock", h.finish()));
        let taken = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .ok()?;
            // SAFETY: flock on an fd we own; released when the file closes.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0;
            locked.then_some(file)
        })
        .await
        .ok()
        .flatten();
        MachineLock { _file: taken }
    }
}

/// What a new network looks like: a bridge, no traffic between containers.
fn create_request(name: &str) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        options: Some(HashMap::from([(ICC_OPTION.into(), "false".into())])),
        labels: Some(HashMap::from([(MANAGED_LABEL.into(), "true".into())])),
        ..Default::default()
    }
}

/// Networks called exactly `name` (the engine's filter matches substrings).
async fn named(docker: &Docker, name: &str) -> Result<Vec<Network>, RuntimeError> {
    let filters = HashMap::from([("name", vec![name])]);
    let opts = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let list = docker.list_networks(Some(opts)).await.map_err(map_err)?;
    Ok(list
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name) && n.id.is_some())
        .collect())
}

fn isolated(n: &Network) -> bool {
    n.driver.as_deref() == Some("bridge")
        && n.options
            .as_ref()
            .and_then(|o| o.get(ICC_OPTION))
            .is_some_and(|v| v == "false")
}

fn managed(n: &Network) -> bool {
    n.labels
        .as_ref()
        .is_some_and(|l| l.get(MANAGED_LABEL).is_some_and(|v| v == "true"))
}

/// The same answer in every process that sees the same set.
fn choose<'a>(candidates: &[&'a Network]) -> Option<&'a str> {
    candidates.iter().filter_map(|n| n.id.as_deref()).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, icc: Option<&str>, driver: &str) -> Network {
        Network {
            id: Some(id.into()),
            name: Some("claude-studio".into()),
            driver: Some(driver.into()),
            options: icc.map(|v| HashMap::from([(ICC_OPTION.to_string(), v.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn only_isolated_bridges_qualify() {
        assert!(isolated(&net("a", Some("false"), "bridge")));
        assert!(!isolated(&net("a", Some("true"), "bridge")));
        assert!(!isolated(&net("a", None, "bridge")));
        assert!(!isolated(&net("a", Some("false"), "overlay")));
    }

    #[test]
    fn the_choice_does_not_depend_on_listing_order() {
        let (a, b, c) = (
            net("9f", Some("false"), "bridge"),
            net("1a", Some("false"), "bridge"),
            net("5c", Some("false"), "bridge"),
        );
        assert_eq!(choose(&[&a, &b, &c]), Some("1a"));
        assert_eq!(choose(&[&c, &a, &b]), Some("1a"));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn a_new_network_disables_inter_container_traffic() {
        let req = create_request("n");
        assert_eq!(req.driver.as_deref(), Some("bridge"));
        assert_eq!(req.options.unwrap()[ICC_OPTION], "false");
        assert_eq!(req.labels.unwrap()[MANAGED_LABEL], "true");
    }
}
