//! `certs renew --method kubeadm`: the real `kubeadm certs renew NAME`, one program per
//! certificate, each given the cluster's own configuration with `--config`, so that kubeadm
//! cannot fall back to its defaults (which it does, saying little, when the cluster is down and
//! no `--config` is given). The files it rewrites are backed up, proved and put back by the one
//! transaction, as the native renewal's are.
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::node::NodeLayout;

/// The scratch copy's name, before the pid of the run that wrote it. Not the temp files' prefix:
/// each change removes those of killed runs, and this one is live across several changes.
const SCRATCH_PREFIX: &str = "kubeadm-recover-kubeadm-config-";

/// Where kubeadm's configuration comes from.
#[derive(Debug, Clone)]
pub enum Configuration {
    /// `--config FILE`, as the node sees it.
    File(PathBuf),
    /// The kubeadm-config ConfigMap's ClusterConfiguration: written to a private scratch file
    /// for the run, removed after it.
    Cluster { text: String, scratch: PathBuf },
}

impl Configuration {
    /// The configuration to give kubeadm: `--config`, else the cluster's own; refused when
    /// there is neither (kubeadm would renew with its defaults).
    pub fn choose(
        layout: &NodeLayout,
        given: Option<&PathBuf>,
        cluster: &dyn Fn() -> Option<String>,
    ) -> Result<Configuration> {
        if let Some(path) = given {
            return Ok(Configuration::File(layout.given_path(path)?));
        }
        match cluster() {
            Some(text) => Ok(Configuration::Cluster {
                text,
                // The pid says whether its run is alive; the random part keeps a name no
                // earlier run (a container's reused pid) can hold.
                scratch: layout.tmp_dir().join(format!(
                    "{SCRATCH_PREFIX}{}.{:016x}.yaml",
                    std::process::id(),
                    rand::random::<u64>()
                )),
            }),
            None => Err(Error::Refused(
                "--method kubeadm: the kubeadm-config ConfigMap cannot be read (is the apiserver or admin.conf what is broken?), \
                 and without a configuration kubeadm renews with its defaults. Give --config FILE (the cluster's \
                 ClusterConfiguration, e.g. the one kubeadm init was given), or use --method native"
                    .into(),
            )),
        }
    }

    fn path(&self) -> &PathBuf {
        match self {
            Configuration::File(path) => path,
            Configuration::Cluster { scratch, .. } => scratch,
        }
    }

    /// Where it was taken from, for the plan.
    pub fn describe(&self, layout: &NodeLayout) -> String {
        match self {
            Configuration::File(path) => layout.node_path(path),
            Configuration::Cluster { .. } => {
                "the kubeadm-config ConfigMap's ClusterConfiguration (a private copy for the run)"
                    .into()
            }
        }
    }

    /// Puts the scratch copy in place for the run (nothing for `--config`); it is removed when
    /// the guard goes, and a copy a killed run left behind (its pid gone) is removed here.
    pub fn in_place<'a>(&self, layout: &'a NodeLayout) -> Result<Scratch<'a>> {
        let Configuration::Cluster { text, scratch } = self else {
            return Ok(Scratch { layout, path: None });
        };
        remove_left_behind(layout);
        layout
            .fs()
            .create_dir_all(&layout.tmp_dir(), 0o700, None)
            .map_err(|e| Error::io("cannot create", &layout.tmp_dir(), e))?;
        layout
            .fs()
            .create_new_private(scratch, text.as_bytes())
            .map_err(|e| Error::io("cannot write kubeadm's configuration to", scratch, e))?;
        Ok(Scratch {
            layout,
            path: Some(scratch.clone()),
        })
    }

    /// `kubeadm certs renew NAME --config FILE` (chrooted into a sandbox root with `--rootfs`,
    /// as it would run on that node).
    pub fn program(&self, layout: &NodeLayout, name: &str) -> Vec<String> {
        let mut program: Vec<String> = vec![
            "kubeadm".into(),
            "certs".into(),
            "renew".into(),
            name.into(),
            format!("--config={}", layout.node_path(self.path())),
        ];
        if !layout.is_host() {
            program.push(format!("--rootfs={}", layout.root().display()));
        }
        program
    }
}

/// Scratch copies whose run is gone (killed before its guard could remove them).
fn remove_left_behind(layout: &NodeLayout) {
    let Ok(entries) = layout.fs().read_dir(&layout.tmp_dir()) else {
        return;
    };
    for entry in entries {
        let name = entry.name.to_string_lossy();
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.strip_suffix(".yaml"))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            let _ = layout.fs().remove_file(&layout.tmp_dir().join(&*name));
        }
    }
}

/// The scratch configuration for as long as the renewal runs.
pub struct Scratch<'a> {
    layout: &'a NodeLayout,
    path: Option<PathBuf>,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = self.layout.fs().remove_file(path);
        }
    }
}

/// kubeadm must be there to be run.
pub fn require_kubeadm() -> Result<()> {
    match crate::node::on_path("kubeadm") {
        Some(_) => Ok(()),
        None => Err(Error::Refused(
            "--method kubeadm needs `kubeadm` on PATH; it is not there. Use --method native (signs with the CA keys on this node)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_is_always_given_a_configuration_and_refused_without_one() {
        let root = tempfile::tempdir().unwrap();
        let layout = NodeLayout::new(Some(root.path().to_path_buf())).unwrap();
        let given = std::path::PathBuf::from("/root/kubeadm.yaml");
        let file = Configuration::choose(&layout, Some(&given), &|| {
            panic!("the cluster is not asked when --config answers")
        });
        assert!(matches!(file, Ok(Configuration::File(_))));
        let refused = Configuration::choose(&layout, None, &|| None)
            .err()
            .unwrap();
        assert!(
            matches!(&refused, Error::Refused(m) if m.contains("--config FILE")),
            "{refused}"
        );
        let cluster = Configuration::choose(&layout, None, &|| {
            Some("kind: ClusterConfiguration\n".into())
        })
        .unwrap();
        let program = cluster.program(&layout, "apiserver");
        assert_eq!(&program[..4], ["kubeadm", "certs", "renew", "apiserver"]);
        assert!(
            program[4].starts_with("--config=/etc/kubernetes/tmp/kubeadm-recover-kubeadm-config-"),
            "{program:?}"
        );
        assert_eq!(
            program[5],
            format!("--rootfs={}", layout.root().display()),
            "a sandbox root is kubeadm's --rootfs"
        );
        let scratch = cluster.path().clone();
        // Left by a killed run (a pid that is gone), and one of a run that is alive (pid 1).
        std::fs::create_dir_all(layout.tmp_dir()).unwrap();
        let dead = layout
            .tmp_dir()
            .join(format!("{SCRATCH_PREFIX}4194303.yaml"));
        let alive = layout.tmp_dir().join(format!("{SCRATCH_PREFIX}1.yaml"));
        std::fs::write(&dead, "left").unwrap();
        std::fs::write(&alive, "live").unwrap();
        {
            let _in_place = cluster.in_place(&layout).unwrap();
            let meta = layout.fs().metadata(&scratch).unwrap();
            assert_eq!(meta.mode & 0o777, 0o600);
        }
        assert!(
            layout.fs().metadata(&scratch).is_err(),
            "removed after the run"
        );
        assert!(!dead.exists(), "a killed run's copy is removed");
        assert!(alive.exists(), "a live run's copy is not");
    }
}
