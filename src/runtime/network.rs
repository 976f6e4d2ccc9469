//! The Docker bridge network every session container joins.
//!
//! Docker does not make network names unique: two servers (or test
//! processes) that find the network missing at the same moment both create
//! it, and from then on every reference by name fails as "ambiguous". So the
//! network is found by listing, the one to use is chosen deterministically
//! (the smallest id among the candidates, so every process that sees the same
//! set agrees) and referred to by id from then on; surplus empty copies that
//! we made are removed on the way.
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
const MANAGED_LABEL: &str = "studio.managed";

/// Returns the id of the network `name`, creating it when there is none.
pub async fn ensure(docker: &Docker, name: &str) -> Result<String, RuntimeError> {
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
    Ok(chosen.to_string())
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
