//! The kubelet reads every non-dot regular file in the manifest directory, whatever its suffix:
//! a `kube-apiserver.yaml.bak` is a second definition of the same pod that can silently win
//! (kubernetes#136962). Editor leftovers mean someone is editing right now.
use std::path::PathBuf;

use serde::Serialize;

use crate::node::NodeLayout;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stray {
    pub path: PathBuf,
    pub why: String,
}

fn is_editor_leftover(name: &str) -> bool {
    let swap = [".swp", ".swo", ".swn", ".swx"]
        .iter()
        .any(|s| name.ends_with(s));
    swap || name == "4913" || name.ends_with('~') || (name.starts_with('#') && name.ends_with('#'))
}

/// The pod a text declares, as `namespace/name`, if it reads as a pod manifest.
fn declared_pod(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_saphyr::from_str(text)
        .ok()
        .or_else(|| serde_json::from_str(text).ok())?;
    let name = value.pointer("/metadata/name")?.as_str()?;
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    Some(format!("{namespace}/{name}"))
}

/// The port a text's kube-apiserver container serves, if it declares one.
fn apiserver_port(text: &str) -> Option<u16> {
    crate::manifest::Manifest::parse(text)
        .ok()
        .map(|m| m.secure_port())
}

/// Files in `dir`, other than `manifest`, that would confuse the kubelet or the tool.
pub fn find(layout: &NodeLayout) -> Vec<Stray> {
    let (dir, manifest) = (&layout.manifests_dir(), &layout.apiserver_manifest());
    let fs = layout.fs();
    let Ok(entries) = fs.read_dir(dir) else {
        return Vec::new();
    };
    let our_text = fs.read_to_string(manifest).unwrap_or_default();
    let ours = declared_pod(&our_text).unwrap_or_else(|| "kube-system/kube-apiserver".into());
    let our_port = apiserver_port(&our_text);
    let mut strays = Vec::new();
    for entry in entries {
        let path = entry.path.clone();
        let name = entry.name.to_string_lossy().into_owned();
        if &path == manifest {
            continue;
        }
        if is_editor_leftover(&name) {
            strays.push(Stray {
                path,
                why: "editor leftover: someone may be editing the manifests right now".into(),
            });
            continue;
        }
        // The kubelet stats each entry, so a symlink to a regular file is read like one.
        let regular = fs.metadata(&path).is_ok_and(|m| m.is_file());
        if name.starts_with('.') || !regular {
            continue;
        }
        let link = if entry.kind == crate::node::fs::Kind::Symlink {
            format!(
                " (a symlink to {})",
                fs.read_link(&path).unwrap_or_default().display()
            )
        } else {
            String::new()
        };
        // The kubelet runs whatever pod any file here declares: one that a user owns or may
        // write is a way to root (a privileged hostPID pod), whatever it holds today.
        if let Ok(meta) = fs.metadata(&path)
            && (meta.uid != 0 || meta.mode & 0o022 != 0)
        {
            strays.push(Stray {
                path,
                why: format!(
                    "owned by uid {} with mode {:04o}: a file a user controls in the manifest directory is a pod they can make the kubelet run as root",
                    meta.uid, meta.mode
                ),
            });
            continue;
        }
        let text = fs.read_to_string(&path).unwrap_or_default();
        let declared = declared_pod(&text);
        let same_pod = declared.as_deref() == Some(ours.as_str());
        let lookalike = name.starts_with("kube-apiserver") && declared.is_none();
        if same_pod {
            strays.push(Stray {
                path,
                why: format!("declares the same pod ({ours}){link}; the kubelet reads it too and may run it instead"),
            });
        } else if let Some(port) = our_port.filter(|p| apiserver_port(&text) == Some(*p)) {
            strays.push(Stray {
                path,
                why: format!(
                    "a second kube-apiserver pod ({}){link} on the same port {port}: the kubelet runs both, and \
                     only one can serve",
                    declared.unwrap_or_default()
                ),
            });
        } else if lookalike {
            strays.push(Stray {
                path,
                why: "looks like a copy of the kube-apiserver manifest; the kubelet reads every non-dot file".into(),
            });
        }
    }
    strays.sort_by(|a, b| a.path.cmp(&b.path));
    strays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_copies_and_editor_leftovers_but_not_other_pods_or_dot_files() {
        let root = tempfile::tempdir().unwrap();
        let layout = NodeLayout::new(Some(root.path().to_path_buf())).unwrap();
        let dir = layout.manifests_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --secure-port=6443]\n";
        let manifest = dir.join("kube-apiserver.yaml");
        std::fs::write(&manifest, pod).unwrap();
        std::fs::write(dir.join("kube-apiserver.yaml.bak"), pod).unwrap();
        std::fs::write(dir.join("old-apiserver"), pod).unwrap();
        std::fs::write(dir.join(".kube-apiserver.yaml.swp"), "x").unwrap();
        std::fs::write(dir.join("4913"), "").unwrap();
        std::fs::write(dir.join(".hidden-copy"), pod).unwrap();
        std::fs::write(dir.join("etcd.yaml"), pod.replace("kube-apiserver", "etcd")).unwrap();
        std::os::unix::fs::symlink("kube-apiserver.yaml.bak", dir.join("linked.yaml")).unwrap();
        let renamed = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: apiserver-old\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --secure-port=6443]\n";
        std::fs::write(dir.join("renamed.yaml"), renamed).unwrap();
        std::fs::write(dir.join("other-port.yaml"), renamed.replace("6443", "7443")).unwrap();
        let names: Vec<String> = find(&layout)
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                ".kube-apiserver.yaml.swp",
                "4913",
                "kube-apiserver.yaml.bak",
                "linked.yaml",
                "old-apiserver",
                "renamed.yaml"
            ]
        );
    }
}
