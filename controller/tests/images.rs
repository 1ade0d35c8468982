//! The container images: `scripts/build-images.sh` builds both with buildah (vfs storage, in a
//! private folder) from the binaries this test run built (`--profile dev --no-build`; the
//! release build is the same script without those flags), and the images hold exactly the
//! binary, the libraries it links and the dynamic loader, run as a non-root user, and start
//! the binary. `buildah run --isolation chroot` runs each binary inside its image (no
//! container runtime needed), which proves the libraries are complete.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{switchboard_binary, workspace_root};

struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.args(["--storage-driver", "vfs", "--root"])
            .arg(self.root.path().join("root"))
            .arg("--runroot")
            .arg(self.root.path().join("run"));
        c
    }

    fn out(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "--all"]).output();
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
    }
}

/// Every regular file under `dir`, as absolute paths inside the image.
fn files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            files(&e.path(), base, out);
        } else {
            out.push(format!(
                "/{}",
                e.path().strip_prefix(base).unwrap().display()
            ));
        }
    }
}

#[test]
fn the_script_builds_both_images_with_the_binary_its_libraries_and_a_non_root_entrypoint() {
    if Command::new("buildah").arg("--version").output().is_err() {
        panic!("buildah is not installed: run .ci/setup (apt-get install buildah)");
    }
    let proxy = switchboard_binary();
    let controller = Path::new(env!("CARGO_BIN_EXE_switchboard-controller"));
    let bin_dir = controller.parent().unwrap();
    assert_eq!(
        proxy.parent().unwrap(),
        bin_dir,
        "both binaries in one folder"
    );

    let b = Buildah {
        root: tempfile::tempdir().unwrap(),
    };
    let started = std::time::Instant::now();
    let out = Command::new(workspace_root().join("scripts/build-images.sh"))
        .args(["--profile", "dev", "--no-build", "--tag", "test"])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--root")
        .arg(b.root.path().join("root"))
        .arg("--runroot")
        .arg(b.root.path().join("run"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-images.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("images: both built in {:?}", started.elapsed());
    let images: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(
        images,
        [
            "localhost/switchboard:test",
            "localhost/switchboard-controller:test"
        ]
    );

    for (image, bin, cmd) in [
        (
            images[0],
            "switchboard",
            vec![
                "run",
                "--config",
                "/etc/switchboard/config.yaml",
                "--log-format",
                "json",
            ],
        ),
        (
            images[1],
            "switchboard-controller",
            vec!["run", "--log-format", "json"],
        ),
    ] {
        let inspect: serde_json::Value =
            serde_json::from_str(&b.out(&["inspect", "--type", "image", image])).unwrap();
        let config = &inspect["OCIv1"]["config"];
        let entrypoint = format!("/usr/local/bin/{bin}");
        assert_eq!(
            config["Entrypoint"],
            serde_json::json!([entrypoint]),
            "{image}"
        );
        assert_eq!(config["Cmd"], serde_json::json!(cmd), "{image}");
        assert_eq!(config["User"], "65532:65532", "{image}: non-root");

        // Contents: the binary, the libraries ldd names, the loader; no shell, nothing else.
        let container = b.out(&["from", image]).trim().to_string();
        let mount = b.out(&["mount", &container]).trim().to_string();
        let mut found = Vec::new();
        files(Path::new(&mount), Path::new(&mount), &mut found);
        // buildah adds these three to a working container.
        found
            .retain(|f| !["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"].contains(&f.as_str()));
        found.sort();
        let ldd = Command::new("ldd").arg(bin_dir.join(bin)).output().unwrap();
        let mut want: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let first = w.next()?;
                match w.next() {
                    Some("=>") => w.next().filter(|p| p.starts_with('/')).map(String::from),
                    _ => first.starts_with('/').then(|| first.to_string()),
                }
            })
            .collect();
        want.push(entrypoint.clone());
        want.sort();
        want.dedup();
        assert_eq!(found, want, "{image}");
        assert!(
            !found.iter().any(|f| f.ends_with("/sh")),
            "{image}: no shell"
        );
        let same = std::fs::read(Path::new(&mount).join(entrypoint.trim_start_matches('/')))
            .unwrap()
            == std::fs::read(bin_dir.join(bin)).unwrap();
        assert!(same, "{image}: the binary is the one built");

        // It runs inside its image (the libraries suffice).
        let version = b.out(&[
            "run",
            "--isolation",
            "chroot",
            &container,
            "--",
            &entrypoint,
            "--version",
        ]);
        assert_eq!(
            version.trim(),
            format!("{bin} {}", env!("CARGO_PKG_VERSION"))
        );
        b.out(&["rm", &container]);
    }
}
