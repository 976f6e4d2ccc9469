//! The engines of a fleet as one runtime: this gateway's own engine, where
//! it makes its containers, and the other engines of the fleet
//! (`--fleet-engine`), where it serves the sessions it takes over from
//! gateways that are gone. Every call about a container goes to the engine
//! that holds it; which one that is, is learned once (the engine that
//! knows the id) and remembered. Ids are the engines' own random 256-bit
//! ids: two engines never share one.
//!
//! Listing asks every engine; one of the others that does not answer is
//! left out (this gateway's own must answer), so the sessions on it are
//! neither listed nor, since `engine_ids` leaves it out too, taken for
//! gone: adoption and the sweep leave what they cannot see alone.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    files, CommandHandle, CommandIo, CommandSpec, ContainerRuntime, ContainerSpec, ContainerStatus,
    ManagedContainer, PortDialer, PullProgress, RuntimeError, ShellIo, ShellSpec,
};

/// Remembered ids at most; beyond it the oldest half is forgotten (a
/// forgotten id is looked up again).
const REMEMBERED: usize = 100_000;

pub struct Engines {
    /// The first is this gateway's own engine.
    engines: Vec<Arc<dyn ContainerRuntime>>,
    /// Container and exec ids, by the index of the engine that has them.
    known: Mutex<HashMap<String, usize>>,
}

impl Engines {
    pub fn new(own: Arc<dyn ContainerRuntime>, others: Vec<Arc<dyn ContainerRuntime>>) -> Engines {
        let mut engines = vec![own];
        engines.extend(others);
        Engines {
            engines,
            known: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, id: &str, engine: usize) {
        let mut known = self.known.lock().unwrap();
        if known.len() >= REMEMBERED {
            let drop: Vec<String> = known.keys().take(REMEMBERED / 2).cloned().collect();
            for k in drop {
                known.remove(&k);
            }
        }
        known.insert(id.to_string(), engine);
    }

    fn remembered(&self, id: &str) -> Option<usize> {
        self.known.lock().unwrap().get(id).copied()
    }

    /// The first engine that knows container `id` (remembered from then
    /// on), with the container's state.
    async fn find(&self, id: &str) -> Result<Option<(usize, ContainerStatus)>, RuntimeError> {
        for (i, e) in self.engines.iter().enumerate() {
            if let Some(s) = e.container_status(id).await? {
                self.remember(id, i);
                return Ok(Some((i, s)));
            }
        }
        Ok(None)
    }

    /// The engine that holds container `id`: remembered, else the first
    /// that knows it; the own engine when none does (it answers "no such
    /// container" as it always has).
    async fn engine_of(&self, id: &str) -> Result<&Arc<dyn ContainerRuntime>, RuntimeError> {
        let i = match self.remembered(id) {
            Some(i) => i,
            None => self.find(id).await?.map_or(0, |(i, _)| i),
        };
        Ok(&self.engines[i])
    }

    /// The engine a shell or command was started on (`exec_id`).
    fn exec_engine(&self, exec_id: &str) -> &Arc<dyn ContainerRuntime> {
        &self.engines[self.remembered(exec_id).unwrap_or(0)]
    }

    fn index_of(&self, engine: &Arc<dyn ContainerRuntime>) -> usize {
        self.engines
            .iter()
            .position(|e| Arc::ptr_eq(e, engine))
            .unwrap_or(0)
    }
}

#[async_trait]
impl ContainerRuntime for Engines {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.engines[0].ping().await
    }
    /// The own engine's id first (it must answer), then those of the
    /// others that answer now.
    async fn engine_ids(&self) -> Result<Vec<String>, RuntimeError> {
        let mut ids = self.engines[0].engine_ids().await?;
        for e in &self.engines[1..] {
            // Only an engine that answers now counts as reached.
            let answers = async {
                e.ping().await?;
                e.engine_ids().await
            };
            match answers.await {
                Ok(more) => ids.extend(more),
                Err(err) => tracing::debug!(error = %err, "a fleet engine gives no id now"),
            }
        }
        Ok(ids)
    }
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        self.engines[0].image_present(image).await
    }
    async fn list_images(&self) -> Result<Vec<String>, RuntimeError> {
        self.engines[0].list_images().await
    }
    async fn pull_image(
        &self,
        image: &str,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<(), RuntimeError> {
        self.engines[0].pull_image(image, progress).await
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let id = self.engines[0].create_container(spec).await?;
        self.remember(&id, 0);
        Ok(id)
    }
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.engine_of(id).await?.start_container(id).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let r = self.engine_of(id).await?.remove_container(id).await;
        if r.is_ok() {
            self.known.lock().unwrap().remove(id);
        }
        r
    }
    async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        if let Some(i) = self.remembered(id) {
            return self.engines[i].container_status(id).await;
        }
        Ok(self.find(id).await?.map(|(_, s)| s))
    }
    async fn container_pid(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        self.engine_of(id).await?.container_pid(id).await
    }
    async fn container_memory(&self, id: &str) -> Result<Option<u64>, RuntimeError> {
        self.engine_of(id).await?.container_memory(id).await
    }
    async fn port_dialer(&self, id: &str) -> Result<Option<Arc<dyn PortDialer>>, RuntimeError> {
        self.engine_of(id).await?.port_dialer(id).await
    }
    async fn list_managed(&self, instance: &str) -> Result<Vec<ManagedContainer>, RuntimeError> {
        let mut all = Vec::new();
        for (i, e) in self.engines.iter().enumerate() {
            let listed = match e.list_managed(instance).await {
                Ok(l) => l,
                Err(err) if i > 0 => {
                    tracing::debug!(error = %err, "a fleet engine does not answer; its containers are left out");
                    continue;
                }
                Err(err) => return Err(err),
            };
            for c in listed {
                self.remember(&c.id, i);
                all.push(c);
            }
        }
        Ok(all)
    }
    async fn start_shell(
        &self,
        container_id: &str,
        spec: &ShellSpec,
    ) -> Result<ShellIo, RuntimeError> {
        let engine = self.engine_of(container_id).await?;
        let shell = engine.start_shell(container_id, spec).await?;
        self.remember(&shell.exec_id, self.index_of(engine));
        Ok(shell)
    }
    async fn resize_shell(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.exec_engine(exec_id)
            .resize_shell(exec_id, cols, rows)
            .await
    }
    async fn start_command(
        &self,
        container_id: &str,
        spec: &CommandSpec,
    ) -> Result<CommandIo, RuntimeError> {
        self.engine_of(container_id)
            .await?
            .start_command(container_id, spec)
            .await
    }
    async fn wait_command(
        &self,
        container_id: &str,
        handle: &CommandHandle,
    ) -> Result<i64, RuntimeError> {
        self.engine_of(container_id)
            .await?
            .wait_command(container_id, handle)
            .await
    }
    async fn signal_command(
        &self,
        container_id: &str,
        handle: &CommandHandle,
        signal: i32,
    ) -> Result<usize, RuntimeError> {
        self.engine_of(container_id)
            .await?
            .signal_command(container_id, handle, signal)
            .await
    }
    async fn files(&self, container_id: &str) -> Result<Arc<files::ContainerFiles>, RuntimeError> {
        self.engine_of(container_id)
            .await?
            .files(container_id)
            .await
    }
    async fn listening_ports(&self, container_id: &str) -> Result<BTreeSet<u16>, RuntimeError> {
        self.engine_of(container_id)
            .await?
            .listening_ports(container_id)
            .await
    }
    async fn shell_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        self.exec_engine(exec_id).shell_exit_code(exec_id).await
    }
}
