//! A local image registry (Debian's `docker-registry` on a loopback port;
//! the engine treats 127.0.0.0/8 registries as plain HTTP), fed with an
//! image built from the test image and a layer of fresh random bytes: the
//! engine has never seen it, so creating a session of it must pull it.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use super::{docker, eventually, test_image, unique};

pub struct Registry {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// An image in the registry that the engine has not pulled.
    pub image: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn registry_with_test_image() -> Registry {
    let bin = "/usr/bin/docker-registry";
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} is missing: scripts/test installs Debian's docker-registry"
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(unique("registry"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let image = format!("127.0.0.1:{port}/studio/pulltest:v1");
    let reg = Registry {
        child,
        dir,
        image: image.clone(),
    };
    let http = reqwest::Client::new();
    eventually("registry to answer", || async {
        let r = http
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let run = |args: &[&str]| {
        docker(args);
    };
    // A layer of fresh random bytes on top of the test image: the engine
    // has never seen it, so the pull must really download it.
    let builder = unique("pull-src");
    run(&[
        "run",
        "--name",
        &builder,
        &test_image(),
        "sh",
        "-c",
        "head -c 3000000 /dev/urandom > /junk",
    ]);
    run(&["commit", &builder, &image]);
    run(&["rm", "-f", &builder]);
    run(&["push", &image]);
    run(&["rmi", &image]);
    reg
}
