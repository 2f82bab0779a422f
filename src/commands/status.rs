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
    let manifest = match super::read_manifest(&path) {
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

    let document = json!({
        "root": layout.root(),
        "manifest": manifest,
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
