//! The simulated kubelet: watches the static pod directory like the real one (every non-dot
//! regular file, inotify plus a periodic full relist), keys pods by namespace/name, hashes the
//! parsed pod, and on a semantic change stops the old apiserver and starts a new one from the
//! manifest's command and args. A manifest that does not parse leaves the old pod running. A
//! container that exits is restarted with a back-off, like CrashLoopBackOff.
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{self, SigHandler, Signal};
use serde_json::{Value, json};

use super::config::{SimConfig, sim_dir};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn mirror_pod_path(root: &Path, ns: &str, name: &str) -> PathBuf {
    sim_dir(root)
        .join("mirror")
        .join(format!("{ns}_{name}.json"))
}

fn bin_dir(root: &Path) -> PathBuf {
    sim_dir(root).join("bin")
}

/// Becomes the simulated kubelet for the node at `root` (exec, so the caller's child is the
/// kubelet itself), running as a process named `kubelet`. The simulator binary plays `kubelet`
/// and `kube-apiserver` when started under those names (busybox-style, through symlinks in the
/// sandbox), so /proc shows them as the real ones would be shown. Returns only on failure.
pub fn exec(root: &Path) -> std::io::Error {
    match prepare_exec(root) {
        Ok(mut command) => command.exec(),
        Err(e) => e,
    }
}

fn prepare_exec(root: &Path) -> std::io::Result<Command> {
    let exe = std::env::current_exe()?;
    let bin = bin_dir(root);
    std::fs::create_dir_all(&bin)?;
    for name in ["kubelet", "kube-apiserver"] {
        let link = bin.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)?;
    }
    let logs = sim_dir(root).join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("kubelet.log"))?;
    let mut command = Command::new(bin.join("kubelet"));
    command
        .arg0("kubelet")
        .arg(format!(
            "--root-dir={}",
            root.join("var/lib/kubelet").display()
        ))
        .arg(format!(
            "--pod-manifest-path={}",
            root.join("etc/kubernetes/manifests").display()
        ))
        .env(crate::ROOT_ENV, root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(command)
}

struct Running {
    hash: String,
    attempt: u32,
    pod: Value,
    child: Option<Child>,
    started: Instant,
    exited_at: Option<Instant>,
    restarts: u32,
}

/// A static pod's namespace ("default" when unset, as the kubelet does) and name.
fn namespace_and_name(pod: &Value) -> (String, String) {
    let field = |path: &str| {
        pod.pointer(path)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (
        field("/metadata/namespace").unwrap_or_else(|| "default".into()),
        field("/metadata/name").unwrap_or_default(),
    )
}

/// Canonical JSON (sorted keys), so that only semantic changes change the hash.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn config_hash(pod: &Value) -> String {
    kubeadm_recover::node::store::sha256_hex(canonical(pod).to_string().as_bytes())[..16]
        .to_string()
}

/// (pods by namespace/name, whether some file failed to parse).
fn scan(dir: &Path) -> (BTreeMap<String, Value>, bool) {
    let mut pods = BTreeMap::new();
    let mut broken = false;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (pods, true);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            broken = true;
            continue;
        };
        let parsed: Option<Value> = serde_saphyr::from_str(&text)
            .ok()
            .or_else(|| serde_json::from_str(&text).ok());
        match parsed {
            Some(pod) if pod["kind"] == "Pod" => {
                let (ns, name) = namespace_and_name(&pod);
                pods.insert(format!("{ns}/{name}"), pod);
            }
            _ => {
                eprintln!(
                    "kubelet: could not read {} as a pod; keeping what runs",
                    file.display()
                );
                broken = true;
            }
        }
    }
    (pods, broken)
}

fn apiserver_container(pod: &Value) -> Option<&Value> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .find(|c| {
            c["name"] == "kube-apiserver"
                || c.pointer("/command/0")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.ends_with("kube-apiserver"))
        })
}

/// The program a container runs (`command[0]`'s file name).
fn program(container: &Value) -> Option<&str> {
    let first = container.pointer("/command/0")?.as_str()?;
    Some(first.rsplit('/').next().unwrap_or(first))
}

/// The container this kubelet runs for a pod: with real binaries, the first container whose
/// program is one of them (etcd, kube-apiserver); simulated, the apiserver container.
fn container_to_run<'a>(pod: &'a Value, config: &SimConfig) -> Option<&'a Value> {
    match &config.kube_bin {
        Some(bin) => pod
            .pointer("/spec/containers")?
            .as_array()?
            .iter()
            .find(|c| program(c).is_some_and(|p| bin.join(p).is_file())),
        None => apiserver_container(pod),
    }
}

/// Container logs where the real kubelet keeps them: one file per attempt, in a directory named
/// after the pod (for a static pod the UID is its config hash) and the container.
fn log_file(
    root: &Path,
    config: &SimConfig,
    pod: &Value,
    hash: &str,
    attempt: u32,
) -> Option<std::fs::File> {
    let (ns, name) = namespace_and_name(pod);
    let container = container_to_run(pod, config)?["name"]
        .as_str()
        .unwrap_or("kube-apiserver")
        .to_string();
    let dir = root.join(format!(
        "var/log/pods/{ns}_{name}-{}_{hash}/{container}",
        config.node_name
    ));
    std::fs::create_dir_all(&dir).ok()?;
    // Dead containers are garbage-collected down to one, with their logs: the running
    // attempt's file and at most the one before it remain (a crash loop shows only `N.log`).
    for old in 0..attempt.saturating_sub(1) {
        let _ = std::fs::remove_file(dir.join(format!("{old}.log")));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{attempt}.log")))
        .ok()
}

/// The container's full argument list: `command` after the program, then `args`.
fn command_line(container: &Value) -> Vec<String> {
    let strings = |key: &str| -> Vec<String> {
        container[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    strings("command")
        .into_iter()
        .chain(strings("args"))
        .collect()
}

fn start(
    root: &Path,
    config: &SimConfig,
    pod: &Value,
    log: Option<std::fs::File>,
) -> Option<Child> {
    let container = container_to_run(pod, config)?;
    let command = command_line(container);
    let mut log = log?;
    let mut cmd = match &config.kube_bin {
        Some(bin) => {
            if let Some(refused) = command.iter().find(|a| config.reject_args.contains(a)) {
                // A runtime that refuses this argument list (the tests' fault injection): the
                // container never starts, and the kubelet backs off as for a crash.
                use std::io::Write;
                let _ = writeln!(
                    log,
                    "runtime: refusing to start the container: {refused} is on the rejected list"
                );
                return None;
            }
            real::container_command(root, bin, pod, container).ok()?
        }
        None => {
            let mut cmd = Command::new(bin_dir(root).join("kube-apiserver"));
            cmd.env(crate::ROOT_ENV, root).env(
                "KUBEADM_RECOVER_SIM_IMAGE",
                container["image"].as_str().unwrap_or_default(),
            );
            cmd
        }
    };
    cmd.arg0(command.first().map_or("kube-apiserver", String::as_str))
        .args(command.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(log.try_clone().ok()?)
        .stderr(log);
    // The runtime has created the container (its log exists); its process starts a moment later.
    std::thread::sleep(Duration::from_millis(config.container_start_ms));
    // SAFETY: prctl only; a container does not outlive the simulated kubelet.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd.spawn().ok()
}

/// Mirror pods in the real apiserver: the kubelet replaces a static pod's mirror pod whenever the
/// pod's config hash changes. The real kubelet does it with its node credential; this one uses
/// super-admin.conf (no Node object exists for NodeRestriction to check), and keeps trying in the
/// background while the apiserver comes up.
mod mirror_pods {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, PostParams};
    use serde_json::Value;

    /// The newest publication per pod: an older one still retrying gives up.
    static GENERATIONS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

    fn current(key: &str) -> u64 {
        let generations = GENERATIONS.lock().unwrap_or_else(|e| e.into_inner());
        generations
            .as_ref()
            .and_then(|g| g.get(key).copied())
            .unwrap_or(0)
    }

    pub fn publish(root: &Path, key: &str, mirror: Value) {
        let generation = {
            let mut generations = GENERATIONS.lock().unwrap_or_else(|e| e.into_inner());
            let entry = generations
                .get_or_insert_with(HashMap::new)
                .entry(key.to_string())
                .or_insert(0);
            *entry += 1;
            *entry
        };
        let root: PathBuf = root.to_path_buf();
        let key = key.to_string();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            while Instant::now() < deadline && current(&key) == generation {
                match replace(&root, &mirror) {
                    Ok(()) => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(500)),
                }
            }
        });
    }

    fn replace(root: &Path, mirror: &Value) -> Result<(), String> {
        let pod: Pod = serde_json::from_value(mirror.clone()).map_err(|e| e.to_string())?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(root.join("etc/kubernetes/super-admin.conf"))
                    .map_err(|e| e.to_string())?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            match pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.to_string()),
            }
            pods.create(&PostParams::default(), &pod)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// Running a static pod's container from a real binary, as a container runtime would show it
/// on the host: a process whose comm and command line are exactly the pod's, in a private mount
/// namespace, chrooted into the sandbox so that its hostPath volumes are at their own paths.
mod real {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::Command;

    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    use serde_json::Value;

    /// Creates the pod's `DirectoryOrCreate` hostPath directories, as the kubelet does.
    fn create_host_paths(root: &Path, pod: &Value) {
        let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
        for volume in volumes.into_iter().flatten() {
            if volume.pointer("/hostPath/type").and_then(Value::as_str) == Some("DirectoryOrCreate")
                && let Some(path) = volume.pointer("/hostPath/path").and_then(Value::as_str)
            {
                let _ = std::fs::create_dir_all(root.join(path.trim_start_matches('/')));
            }
        }
    }

    pub fn container_command(
        root: &Path,
        bin: &Path,
        pod: &Value,
        container: &Value,
    ) -> std::io::Result<Command> {
        create_host_paths(root, pod);
        let program = super::program(container).unwrap_or_default().to_string();
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)
        };
        let binary = c(&bin.join(&program))?;
        let mount_point = c(&root.join("usr/local/bin").join(&program))?;
        let dev = c(&root.join("dev"))?;
        let proc = c(&root.join("proc"))?;
        let new_root = c(root)?;
        let mut cmd = Command::new(format!("/usr/local/bin/{program}"));
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        // SAFETY: only system calls between fork and exec, on strings prepared before.
        unsafe {
            cmd.pre_exec(move || {
                let none: Option<&str> = None;
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
                mount(
                    Some(binary.as_c_str()),
                    mount_point.as_c_str(),
                    none,
                    MsFlags::MS_BIND,
                    none,
                )?;
                let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
                mount(Some(c"/dev"), dev.as_c_str(), none, rbind, none)?;
                mount(Some(c"/proc"), proc.as_c_str(), none, rbind, none)?;
                nix::unistd::chroot(new_root.as_c_str())?;
                nix::unistd::chdir("/")?;
                Ok(())
            });
        }
        Ok(cmd)
    }
}

/// How the real kubelet stops a container: SIGTERM, then SIGKILL at the end of the pod's
/// `terminationGracePeriodSeconds` (default 30). The new pod starts only after this returns.
fn stop(child: &mut Child, pod: &Value) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = signal::kill(pid, Signal::SIGTERM);
    let grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    let deadline = Instant::now() + Duration::from_secs(grace);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn write_mirror(root: &Path, config: &SimConfig, key: &str, hash: &str, pod: &Value) {
    let (ns, name) = key.split_once('/').unwrap_or(("default", key));
    let mirror_name = format!("{name}-{}", config.node_name);
    let mut annotations = pod
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(json!({}));
    annotations["kubernetes.io/config.hash"] = json!(hash);
    annotations["kubernetes.io/config.mirror"] = json!(hash);
    annotations["kubernetes.io/config.source"] = json!("file");
    annotations["kubernetes.io/config.seen"] =
        json!(kubeadm_recover::runtime::clock::rfc3339(crate::now_unix()));
    let mut mirror = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": mirror_name, "namespace": ns,
            "annotations": annotations,
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
        },
        "spec": pod["spec"].clone(),
        "status": {"phase": "Running"},
    });
    mirror["spec"]["nodeName"] = json!(config.node_name);
    if config.kube_bin.is_some() {
        // The real apiserver holds the mirror pod, as on a node.
        mirror.as_object_mut().map(|m| m.remove("status"));
        mirror_pods::publish(root, key, mirror);
        return;
    }
    let path = mirror_pod_path(root, ns, &mirror_name);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, mirror.to_string()).is_ok() {
        let _ = std::fs::rename(tmp, path);
    }
}

/// Entry point when this binary runs as `kubelet`.
pub fn main() -> i32 {
    let root = match crate::persona_root("kubelet") {
        Ok(root) => root,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { signal::signal(sig, SigHandler::Handler(on_term)) };
    }
    let manifests = root.join("etc/kubernetes/manifests");
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
    if let Some(fd) = &inotify {
        let _ = fd.add_watch(
            &manifests,
            AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_ATTRIB,
        );
    }
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    // Pods the kubelet ran and removed, by config hash: re-added (the same change tried again
    // after a rollback), a pod continues its restart count and its back-off, as the real
    // kubelet's does while the pod's dead containers remain (measured: a retried change's
    // first log was `3.log`).
    let mut ran_before: BTreeMap<String, Running> = BTreeMap::new();
    let mut last_sync: Option<Instant> = None;
    eprintln!("kubelet: watching {}", manifests.display());
    while !STOP.load(Ordering::SeqCst) && root.join("etc/kubernetes").is_dir() {
        let config = SimConfig::load(&root);
        let notified = config.inotify
            && inotify
                .as_ref()
                .is_some_and(|fd| fd.read_events().is_ok_and(|e| !e.is_empty()));
        let relist =
            last_sync.is_none_or(|t| t.elapsed() >= Duration::from_millis(config.relist_ms));
        if (notified || relist) && !config.frozen {
            last_sync = Some(Instant::now());
            let (pods, broken) = scan(&manifests);
            for (key, pod) in &pods {
                if container_to_run(pod, &config).is_none() {
                    continue;
                }
                let hash = config_hash(pod);
                if running.get(key).is_some_and(|r| r.hash == hash) {
                    continue;
                }
                if let Some(mut old) = running.remove(key) {
                    eprintln!(
                        "kubelet: {key} changed ({} -> {hash}); restarting",
                        old.hash
                    );
                    if let Some(child) = old.child.as_mut() {
                        stop(child, &old.pod);
                    }
                    old.exited_at.get_or_insert_with(Instant::now);
                    ran_before.insert(old.hash.clone(), old);
                    // REMOVE of the old pod, ADD of the new one: a new sandbox first.
                    std::thread::sleep(Duration::from_millis(config.pod_replace_ms));
                }
                write_mirror(&root, &config, key, &hash, pod);
                let pod_to_run = match ran_before.remove(&hash) {
                    // Its next attempt, when its back-off allows (the loop below).
                    Some(before) => {
                        eprintln!(
                            "kubelet: starting {key} ({hash}) again, after attempt {}",
                            before.attempt
                        );
                        Running {
                            child: None,
                            pod: pod.clone(),
                            ..before
                        }
                    }
                    None => {
                        eprintln!("kubelet: starting {key} ({hash})");
                        Running {
                            child: start(
                                &root,
                                &config,
                                pod,
                                log_file(&root, &config, pod, &hash, 0),
                            ),
                            hash,
                            attempt: 0,
                            pod: pod.clone(),
                            started: Instant::now(),
                            exited_at: None,
                            restarts: 0,
                        }
                    }
                };
                running.insert(key.clone(), pod_to_run);
            }
            if !broken {
                let gone: Vec<String> = running
                    .keys()
                    .filter(|k| !pods.contains_key(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    eprintln!("kubelet: {key} removed; stopping it");
                    if let Some(mut old) = running.remove(&key) {
                        if let Some(child) = old.child.as_mut() {
                            stop(child, &old.pod);
                        }
                        old.exited_at.get_or_insert_with(Instant::now);
                        ran_before.insert(old.hash.clone(), old);
                    }
                }
            }
        }
        // CrashLoopBackOff as the real kubelet's: the first restart at once, then 1, 2, 4, 8 …
        // units, at most 30 (the real unit is 10 s: 10 s, 20 s, 40 s … 5 min).
        for pod in running.values_mut() {
            let exited = match pod.child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => true,
            };
            if !exited {
                if pod.started.elapsed() > Duration::from_secs(10) {
                    pod.restarts = 0;
                }
                continue;
            }
            let at = *pod.exited_at.get_or_insert_with(Instant::now);
            let unit = config.backoff_unit_ms;
            let backoff = Duration::from_millis(match pod.restarts {
                0 => 0,
                n => (unit << (n - 1).min(5)).min(30 * unit),
            });
            if at.elapsed() >= backoff && !config.frozen {
                pod.restarts += 1;
                pod.attempt += 1;
                pod.exited_at = None;
                pod.started = Instant::now();
                pod.child = start(
                    &root,
                    &config,
                    &pod.pod,
                    log_file(&root, &config, &pod.pod, &pod.hash, pod.attempt),
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for pod in running.values_mut() {
        if let Some(child) = pod.child.as_mut() {
            stop(child, &pod.pod);
        }
    }
    0
}
