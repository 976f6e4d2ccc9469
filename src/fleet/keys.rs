//! The names of the fleet's keys in Redis, all under `studio:INSTANCE:`.

pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(instance: &str) -> Keys {
        Keys {
            prefix: format!("studio:{instance}:"),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn secret(&self) -> String {
        format!("{}secret", self.prefix)
    }

    pub fn gateways(&self) -> String {
        format!("{}gateways", self.prefix)
    }

    pub fn gateway(&self, id: &str) -> String {
        format!("{}gw:{id}", self.prefix)
    }

    pub fn sessions(&self) -> String {
        format!("{}sessions", self.prefix)
    }

    pub fn session(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }

    pub fn lease(&self, id: &str) -> String {
        format!("{}lease:{id}", self.prefix)
    }

    /// The session whose id, lower-cased, is `label` (a preview host name's).
    pub fn label(&self, label: &str) -> String {
        format!("{}label:{}", self.prefix, label.to_ascii_lowercase())
    }

    pub fn replay(&self, id: &str) -> String {
        format!("{}replay:{id}", self.prefix)
    }

    pub fn sweeper(&self) -> String {
        format!("{}sweeper", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_instance() {
        let k = Keys::new("team-a");
        for key in [
            k.secret(),
            k.gateways(),
            k.gateway("g1"),
            k.sessions(),
            k.session("session-x"),
            k.lease("session-x"),
            k.replay("session-x"),
            k.label("Session-X"),
            k.sweeper(),
        ] {
            assert!(key.starts_with("studio:team-a:"), "{key}");
        }
        assert_ne!(k.lease("a"), k.session("a"));
        assert_eq!(k.label("Session-AbC"), k.label("session-abc"));
    }
}
