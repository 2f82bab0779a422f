//! `status`: what the node says, read-only.
use serde_json::json;

use super::Context;
use crate::error::Result;
use crate::kubeconfig::{CredentialInfo, credential_info};
use crate::manifest::{ExtendTokens, Manifest};
use crate::store::{backup, strays};

pub fn run(ctx: &Context) -> Result<()> {
    let layout = &ctx.layout;
    let path = layout.apiserver_manifest();
    let node_path = layout.node_path(&path);
    let now = crate::clock::now_unix();

    let mut flag = None;
    let mut running = json!(null);
    let manifest = match super::read_manifest(layout) {
        Err(e) => json!({ "path": node_path, "error": e.to_string() }),
        Ok(text) => match Manifest::parse(&text) {
            Err(e) => json!({
                "path": node_path,
                "error": format!("{e}"),
                "hint": e.hint(),
                "line": e.line,
                "column": e.col,
            }),
            Ok(m) => {
                flag = Some(m.extend_tokens());
                running = running_apiserver(layout, &m);
                json!({
                    "path": node_path,
                    "container": m.container_name,
                    "image": m.image,
                    "version": m.version().map(|(a, b, c)| format!("{a}.{b}.{c}")),
                    "securePort": m.flag("secure-port"),
                    "extendTokenExpiration": flag,
                })
            }
        },
    };
    let strays: Vec<_> = strays::find(&layout.manifests_dir(), &path)
        .into_iter()
        .map(|s| json!({ "path": layout.node_path(&s.path), "why": s.why }))
        .collect();
    let backups: Vec<_> = backup::list(layout)
        .into_iter()
        .map(|b| match b {
            Ok(b) => {
                let problems = b.verify();
                json!({ "id": b.id, "created": b.created, "operation": b.operation,
                        "files": b.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
                        "checksumsOk": problems.is_empty() })
            }
            Err((dir, e)) => json!({ "path": layout.node_path(&dir), "error": e }),
        })
        .collect();
    let credentials: Vec<CredentialInfo> = [layout.admin_conf(), layout.super_admin_conf()]
        .iter()
        .map(|p| credential_info(p, &layout.node_path(p), now))
        .collect();

    let journal = crate::journal::Journal::load(layout).unwrap_or_default();
    let session = journal
        .unfinished()
        .map(|s| (s, true))
        .or_else(|| journal.revertable().map(|s| (s, false)));
    let session_json = session.map(|(s, unfinished)| {
        json!({
            "id": s.id, "command": s.command, "state": s.state, "step": s.step, "started": s.started,
            "ageSeconds": now - s.started_unix, "uid": s.uid, "sudoUser": s.sudo_user, "reason": s.reason,
            "unfinished": unfinished, "credentialsIssued": s.credentials_issued,
            "message": if unfinished { crate::journal::unfinished_message(layout, s) } else { describe_session(s, now) },
        })
    });
    let document = json!({
        "root": layout.root(),
        "session": session_json,
        "manifest": manifest,
        "apiserver": running,
        "kubeletRunning": crate::apiserver::process::kubelet_running(layout.root()),
        "strays": strays,
        "backups": backups,
        "credentials": credentials,
    });
    let text = render_text(&document, flag.as_ref(), &credentials);
    ctx.ui.report("Status", document, || text);
    Ok(())
}

fn render_text(
    doc: &serde_json::Value,
    flag: Option<&ExtendTokens>,
    credentials: &[CredentialInfo],
) -> String {
    let m = &doc["manifest"];
    let mut out = format!("manifest  {}\n", m["path"].as_str().unwrap_or("?"));
    if let Some(error) = m["error"].as_str() {
        out.push_str(&format!("  PROBLEM: {error}\n"));
        if let Some(hint) = m["hint"].as_str() {
            out.push_str(&format!("  what to do: {hint}\n"));
        }
    } else if let Some(flag) = flag {
        out.push_str(&format!(
            "  image     {} (version {})\n",
            m["image"].as_str().unwrap_or("?"),
            m["version"].as_str().unwrap_or("unknown")
        ));
        if let Some(port) = m["securePort"].as_str() {
            out.push_str(&format!("  port      {port}\n"));
        }
        out.push_str(&format!(
            "  --service-account-extend-token-expiration: {}\n",
            flag.state.describe()
        ));
        if flag.occurrences.len() > 1 {
            let lines: Vec<String> = flag
                .occurrences
                .iter()
                .map(|o| o.line.to_string())
                .collect();
            out.push_str(&format!(
                "    written {} times (lines {}); the last one wins\n",
                lines.len(),
                lines.join(", ")
            ));
        }
    }
    if let Some(message) = doc["session"]["message"].as_str() {
        let label = if doc["session"]["unfinished"] == true {
            "UNFINISHED"
        } else {
            "session"
        };
        out.push_str(&format!(
            "{label:<9} {}\n",
            message.replace('\n', "\n          ")
        ));
    }
    let a = &doc["apiserver"];
    if a["pid"].is_null() {
        out.push_str(&format!(
            "apiserver no kube-apiserver process serves port {} (kubelet {})\n",
            a["port"],
            if doc["kubeletRunning"] == true {
                "running"
            } else {
                "NOT running"
            }
        ));
    } else {
        out.push_str(&format!(
            "apiserver pid {}, started {}, {}\n",
            a["pid"],
            a["started"].as_str().unwrap_or("?"),
            match a["health"].as_str() {
                Some("ok") => "healthy (/livez, /readyz ok)".to_string(),
                Some(other) => format!("NOT healthy: {other}"),
                None => "health unknown".to_string(),
            }
        ));
        out.push_str(&format!(
            "  --service-account-extend-token-expiration in its command line: {}\n",
            a["extendTokenExpirationDescription"]
                .as_str()
                .unwrap_or("?")
        ));
        if a["matchesManifest"] == false {
            out.push_str("  its command line differs from the manifest: a restart is pending (or the kubelet is not picking it up)\n");
        }
    }
    let strays = doc["strays"].as_array().map_or(&[][..], |v| v);
    if strays.is_empty() {
        out.push_str("strays    none\n");
    } else {
        out.push_str("strays    (the kubelet reads these too; a change will be refused until they are moved)\n");
        for s in strays {
            out.push_str(&format!(
                "  {}: {}\n",
                s["path"].as_str().unwrap_or("?"),
                s["why"].as_str().unwrap_or("")
            ));
        }
    }
    let backups = doc["backups"].as_array().map_or(&[][..], |v| v);
    out.push_str(&format!("backups   {}\n", backups.len()));
    for b in backups {
        match b["id"].as_str() {
            Some(id) => out.push_str(&format!(
                "  {id}  {}{}\n",
                b["created"].as_str().unwrap_or(""),
                if b["checksumsOk"] == true {
                    ""
                } else {
                    "  CHECKSUM MISMATCH"
                }
            )),
            None => out.push_str(&format!("  {}: unreadable: {}\n", b["path"], b["error"])),
        }
    }
    out.push_str("credentials\n");
    for c in credentials {
        out.push_str(&format!("  {}: {}\n", c.path, c.describe()));
    }
    out
}

/// The running apiserver for this manifest: pid, start, health, and the flag in its command line.
fn running_apiserver(layout: &crate::node::NodeLayout, manifest: &Manifest) -> serde_json::Value {
    use crate::apiserver::{client::ApiClient, client::Endpoint, process};
    let port = manifest.secure_port();
    let Some(found) = process::find_apiserver(port) else {
        return json!({ "port": port, "pid": null });
    };
    let args = found.args.get(1..).unwrap_or_default();
    let flag = crate::manifest::extend_tokens_of_process(args, manifest.version());
    let (host, probe_port) = manifest.probe_endpoint();
    let health = crate::apiserver::runtime().block_on(async {
        let client = ApiClient::new(
            layout,
            &Endpoint {
                host,
                port: probe_port,
            },
        )?;
        client.healthy().await.map_err(|e| e.to_string())
    });
    json!({
        "port": port,
        "pid": found.identity.pid,
        "started": process::started_unix(&found.identity).map(crate::clock::rfc3339),
        "health": match &health { Ok(()) => "ok".to_string(), Err(e) => e.clone() },
        "extendTokenExpiration": flag,
        "extendTokenExpirationDescription": flag.state.describe(),
        "matchesManifest": args == manifest.argument_values().as_slice(),
    })
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} seconds"),
        s if s < 2 * 3600 => format!("{} minutes", s / 60),
        s if s < 2 * 86_400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// "token extension enabled 3 days ago by root (sudo alice), reason: ...; revert with: ..."
fn describe_session(s: &crate::journal::Session, now: i64) -> String {
    let what = match s.command.as_str() {
        "extend-tokens enable" => "token extension enabled".to_string(),
        "extend-tokens disable" => "token extension disabled".to_string(),
        other => other.to_string(),
    };
    let who = match (&s.sudo_user, s.uid) {
        (Some(user), _) => format!("{user} (via sudo)"),
        (None, 0) => "root".to_string(),
        (None, uid) => format!("uid {uid}"),
    };
    let reason = s
        .reason
        .as_deref()
        .map(|r| format!(", reason: {r}"))
        .unwrap_or_default();
    format!(
        "{what} {} ago by {who}{reason}; revert with: kubeadm-recover revert",
        age(now - s.started_unix)
    )
}
