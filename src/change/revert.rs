//! Going back on a recorded change (`revert`), or finishing one that stopped half-way
//! (`resume`): which session, what going back or finishing means now, and the plan for it.
//! Planning reads the journal, the manifest and the backups; the executor writes and proves.
use crate::change::journal::{Journal, ManifestVersion, Session, State};
use crate::change::plan::{self, Gate, GoingBack, Mark, Plan, PlannedWrite};
use crate::error::{Error, Result};
use crate::manifest::{FlagState, Manifest, Target, edit_extend_tokens};
use crate::node::NodeLayout;
use crate::node::read_apiserver_manifest as read_manifest;
use crate::node::store::{backup, sha256_hex};
use crate::ui::unified_diff;

/// What a revert or a resume is about, as the command reports it: the recorded session, and
/// what going back (or finishing) means now.
#[derive(Debug)]
pub struct Chosen {
    pub session: Session,
    pub how: String,
}

/// The plan for `revert`: the session named, else the unfinished one, else the latest change
/// in effect; its files or its manifest put back as they were.
pub fn revert_plan(layout: &NodeLayout, wanted: Option<&str>) -> Result<(Plan, Chosen)> {
    let journal = Journal::load(layout)?;
    let target = pick(
        &journal,
        wanted,
        |j| j.unfinished().or_else(|| j.revertable()),
        &nothing_to_revert(&journal),
    )?;
    if !is_unfinished(&target) && target.state != State::Done {
        return Err(Error::Usage(format!(
            "session {} is already {:?}",
            target.id, target.state
        )));
    }
    if !target.is_manifest() {
        let plan = files_revert_plan(layout, &target)?;
        return Ok((
            plan,
            Chosen {
                session: target,
                how: "the previous files come back exactly".to_string(),
            },
        ));
    }
    let current = read_manifest(layout)?;
    let (new_text, how) = revert_text(layout, &target, &current)?;
    let final_state = if is_unfinished(&target) {
        State::RolledBack
    } else {
        State::Reverted
    };
    let action = match &new_text {
        None => plan::Action::Prove {
            manifest: current.clone(),
            otherwise: None,
        },
        Some(text) => plan::Action::Write {
            writes: vec![manifest_write(layout, &current, text.clone().into_bytes())],
            verify: plan::Verify::Nothing,
        },
    };
    let mut plan = Plan::new("revert", format!("revert session {}?", target.id), action)
        .step(format!(
            "revert session {} ({}, started {}): {how}",
            target.id, target.command, target.started
        ))
        .gate(Gate::Kubelet)
        .gate(Gate::Strays);
    if let Some(text) = &new_text {
        plan.diff = unified_diff(
            &layout.node_path(&layout.apiserver_manifest()),
            &current,
            text,
        );
        if turns_off(&current, text) {
            plan = plan.gate(Gate::StaleTokens {
                manifest: current.clone(),
                session: Some((target.started_unix, target.stale_tokens_at_start)),
            });
        }
    }
    plan.manifest.reverts = Some(target.id.clone());
    plan.on_success = Some(Mark {
        session: target.id.clone(),
        state: final_state,
        step: if new_text.is_some() {
            "reverted".into()
        } else {
            "reverted: the original was in place and is proved".into()
        },
    });
    Ok((
        plan,
        Chosen {
            session: target,
            how,
        },
    ))
}

/// The session `resume` finishes: the one named, else the unfinished one. Only an unfinished
/// change of the manifest is resumed.
pub fn resume_target(layout: &NodeLayout, wanted: Option<&str>) -> Result<Session> {
    let target = pick(
        &Journal::load(layout)?,
        wanted,
        |j| j.unfinished(),
        "nothing to resume: no unfinished change in the journal",
    )?;
    if !is_unfinished(&target) {
        return Err(Error::Usage(format!(
            "session {} is {:?}, not unfinished",
            target.id, target.state
        )));
    }
    if !target.is_manifest() {
        return Err(Error::Usage(format!(
            "session {} ({}) changed credentials: it is not resumed (that would issue yet another \
             certificate). `kubeadm-recover revert` puts the previous files back; then run it again",
            target.id, target.command
        )));
    }
    Ok(target)
}

/// The plan for `resume` of `target` (from `resume_target`): prove a write that happened,
/// or make one that never did.
pub fn resume_plan(layout: &NodeLayout, target: Session) -> Result<(Plan, Chosen)> {
    let current = read_manifest(layout)?;
    let current_sha = sha256_hex(current.as_bytes());
    let question = format!("finish session {} ({})?", target.id, target.command);
    let (_, intended, intended_text) = manifest_parts(&target)?;
    let (plan, how) = if current_sha == intended.sha256 {
        // Written already: prove it; if it cannot be proved, go back and prove that.
        let how = "the manifest holds the new version; proving the restart";
        // Without an intact backup of the original there is nowhere to go back to; the
        // proof may still succeed.
        let going_back = original_bytes(layout, &target)
            .ok()
            .map(|original| GoingBack {
                writes: vec![manifest_write(layout, &current, original)],
                mark: Mark {
                    session: target.id.clone(),
                    state: State::RolledBack,
                    step: "could not be proved; reverted".into(),
                },
            });
        let mut plan = Plan::new(
            target.command.clone(),
            question,
            plan::Action::Prove {
                manifest: current.clone(),
                otherwise: going_back,
            },
        );
        plan.on_success = Some(Mark {
            session: target.id.clone(),
            state: State::Done,
            step: "proved (resumed)".into(),
        });
        (plan, how)
    } else if current_sha == manifest_parts(&target)?.0.sha256 {
        // The write never happened: do it now, as a change of its own.
        let how = "the manifest is still the original; writing the change now";
        let mut plan = Plan::new(
            target.command.clone(),
            question,
            plan::Action::Write {
                writes: vec![manifest_write(
                    layout,
                    &current,
                    intended_text.as_bytes().to_vec(),
                )],
                verify: plan::Verify::Nothing,
            },
        )
        .gate(Gate::Kubelet)
        .gate(Gate::Strays);
        plan.diff = unified_diff(
            &layout.node_path(&layout.apiserver_manifest()),
            &current,
            intended_text,
        );
        plan.manifest.stale_tokens = plan::StaleTokens::Carried(target.stale_tokens_at_start);
        plan.supersedes = Some(Mark {
            session: target.id.clone(),
            state: State::RolledBack,
            step: "never written; resumed as a new session".into(),
        });
        (plan, how)
    } else {
        return Err(Error::Refused(format!(
            "{} is neither the original nor the version session {} wrote; someone changed it. Check it by hand, \
             then `{}` hands the session over to you",
            layout.apiserver_manifest().display(),
            target.id,
            crate::change::journal::abandon_command(&target.id)
        )));
    };
    let plan = plan.step(format!("session {}: {how}", target.id));
    Ok((
        plan,
        Chosen {
            session: target,
            how: how.to_string(),
        },
    ))
}

fn pick(
    journal: &Journal,
    wanted: Option<&str>,
    fallback: impl Fn(&Journal) -> Option<&Session>,
    none: &str,
) -> Result<Session> {
    match wanted {
        Some(id) => journal.find(id).cloned().ok_or_else(|| {
            Error::Usage(format!(
                "no session {id} in the journal; see `kubeadm-recover status`"
            ))
        }),
        None => fallback(journal)
            .cloned()
            .ok_or_else(|| Error::Usage(none.to_string())),
    }
}

/// Why `revert` without `--session` has nothing to do, naming what the latest change was.
fn nothing_to_revert(journal: &Journal) -> String {
    match journal.latest_change() {
        None => "nothing to revert: the journal records no change".into(),
        Some(latest) => match (&latest.reverts, latest.state) {
            (Some(undone), _) => format!(
                "nothing to revert: the latest change, session {}, already reverted session {undone}. \
                 Earlier sessions are reverted only when named: `kubeadm-recover revert --session ID` (see `status`)",
                latest.id
            ),
            (None, state) => format!(
                "nothing to revert: the latest change, session {} ({}), is {state:?}. \
                 Earlier sessions are reverted only when named: `kubeadm-recover revert --session ID`",
                latest.id, latest.command
            ),
        },
    }
}

fn is_unfinished(session: &Session) -> bool {
    matches!(session.state, State::InProgress | State::Failed)
}

/// The original manifest bytes of a session, from its backup (checksums verified), or from
/// any backup holding bytes with the recorded hash.
fn original_bytes(layout: &NodeLayout, session: &Session) -> Result<Vec<u8>> {
    let manifest = layout.node_path(&layout.apiserver_manifest());
    let (original, _, _) = manifest_parts(session)?;
    backed_up_bytes(layout, session, &manifest, &original.sha256).ok_or_else(|| {
        Error::Refused(format!(
            "no intact backup holds the original manifest of session {} (sha256 {}); restore it by hand",
            session.id, original.sha256
        ))
    })
}

/// The manifest's versions of a session that changed it.
fn manifest_parts(session: &Session) -> Result<(&ManifestVersion, &ManifestVersion, &str)> {
    session.manifest().ok_or_else(|| {
        Error::Refused(format!(
            "session {} changed other files than the manifest",
            session.id
        ))
    })
}

/// The bytes a session backed up for `node_path` with hash `sha256`: from the session's own
/// backup, else from any intact backup holding those very bytes (checksums verified).
fn backed_up_bytes(
    layout: &NodeLayout,
    session: &Session,
    node_path: &str,
    sha256: &str,
) -> Option<Vec<u8>> {
    let from = |b: &backup::Backup| -> Option<Vec<u8>> {
        if !b.verify(layout).is_empty() {
            return None;
        }
        let file = b
            .files
            .iter()
            .find(|f| f.path == node_path && f.sha256 == sha256)?;
        b.read(layout, file).ok()
    };
    let own = session
        .backup_id
        .as_deref()
        .and_then(|id| backup::find(layout, id))
        .and_then(|b| b.ok());
    own.as_ref().and_then(from).or_else(|| {
        backup::list(layout)
            .into_iter()
            .rev()
            .filter_map(|b| b.ok())
            .find_map(|b| from(&b))
    })
}

fn manifest_write(layout: &NodeLayout, current: &str, new: Vec<u8>) -> PlannedWrite {
    PlannedWrite {
        path: layout.apiserver_manifest(),
        old: Some(current.as_bytes().to_vec()),
        new,
        ownership: None,
    }
}

/// What going back to a session's original means now: the exact original bytes when the
/// manifest is what the session wrote; only the flag (minimal edit) when it changed since.
/// `None`: the original is already in place.
fn revert_text(
    layout: &NodeLayout,
    target: &Session,
    current: &str,
) -> Result<(Option<String>, String)> {
    let path = layout.apiserver_manifest();
    let current_sha = sha256_hex(current.as_bytes());
    let (original, intended, _) = manifest_parts(target)?;
    if current_sha == original.sha256 {
        return Ok((None, "the manifest is already the original".into()));
    }
    if current_sha == intended.sha256 {
        let text = String::from_utf8(original_bytes(layout, target)?)
            .map_err(|_| Error::Refused("the original manifest is not UTF-8".into()))?;
        return Ok((Some(text), "the original bytes come back exactly".into()));
    }
    if is_unfinished(target) {
        return Err(Error::Refused(format!(
            "{} is neither the original nor the version session {} wrote; someone changed it. Check it by hand, \
             then `{}` hands the session over to you \
             (and `backups restore` can put the original back)",
            layout.node_path(&path),
            target.id,
            crate::change::journal::abandon_command(&target.id)
        )));
    }
    let goal = match &original.flag {
        Some(FlagState::Explicit { value }) => Target::Set(*value),
        Some(FlagState::Absent { .. }) => Target::Remove,
        Some(FlagState::Invalid { value }) => {
            return Err(Error::Refused(format!(
                "the original manifest had an invalid value {value:?}; choose with extend-tokens enable|disable"
            )));
        }
        None => {
            return Err(Error::Refused(
                "the original manifest could not be read; choose with extend-tokens enable|disable"
                    .into(),
            ));
        }
    };
    let edit = edit_extend_tokens(current, goal).map_err(|e| Error::manifest(&path, &e))?;
    Ok((
        edit.changed.then_some(edit.new_text),
        "the manifest changed since (an upgrade or another edit): only the flag goes back".into(),
    ))
}

/// Whether going from `current` to `after` turns token extension off (explicitly, or back to
/// an old default of false): then stale-token users must be checked first.
fn turns_off(current: &str, after: &str) -> bool {
    let effective = |text: &str| {
        Manifest::parse(text)
            .ok()
            .and_then(|m| m.extend_tokens().state.effective())
    };
    effective(after) == Some(false) && effective(current) != Some(false)
}

/// Going back on a change of files (credentials): every file that no longer holds its
/// original bytes gets them back from the session's backup.
fn files_revert_plan(layout: &NodeLayout, target: &Session) -> Result<Plan> {
    let mut writes = Vec::new();
    let mut steps = Vec::new();
    for file in target.files() {
        let path = layout.path(&file.path);
        let now = layout.fs().read(&path).ok();
        if now.as_deref().map(sha256_hex) == file.sha256_before {
            continue;
        }
        let Some(before) = &file.sha256_before else {
            steps.push(format!(
                "leave {} (it did not exist before; remove it by hand if it should not)",
                file.path
            ));
            continue;
        };
        let original = backed_up_bytes(layout, target, &file.path, before).ok_or_else(|| {
            Error::Refused(format!(
                "no intact backup holds the previous {} of session {}; restore it by hand",
                file.path, target.id
            ))
        })?;
        steps.push(format!("put back the previous {}", file.path));
        writes.push(PlannedWrite {
            path,
            old: now,
            new: original,
            ownership: None,
        });
    }
    // A renewal's components are proved on the files put back, as its rollback would.
    let verify = if target.command == "certs renew" && !writes.is_empty() {
        let paths: Vec<_> = writes.iter().map(|w| w.path.clone()).collect();
        let verify = crate::change::renew::of_restored_files(layout, &paths)?;
        if let plan::Verify::Components(checks) = &verify {
            steps.extend(checks.iter().map(|check| {
                format!(
                    "then prove {} on the files put back",
                    check.component().name()
                )
            }));
        }
        verify
    } else {
        plan::Verify::Nothing
    };
    let action = if writes.is_empty() {
        plan::Action::CloseSession
    } else {
        plan::Action::Write { writes, verify }
    };
    let mut plan = Plan::new("revert", format!("revert session {}?", target.id), action);
    plan.steps = steps;
    plan.manifest.reverts = Some(target.id.clone());
    plan.on_success = Some(Mark {
        session: target.id.clone(),
        state: if is_unfinished(target) {
            State::RolledBack
        } else {
            State::Reverted
        },
        step: "reverted: the previous files are back".into(),
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBEADM_130: &str = include_str!("../../tests/fixtures/manifests/kubeadm-1.30.yaml");
    /// A change of the manifest (done) and a change of files (in progress), as 0.1.0 wrote them.
    const RELEASE_0_1_0: &str = include_str!("../../tests/fixtures/journal-0.1.0.json");

    fn with_flag(value: bool) -> String {
        edit_extend_tokens(KUBEADM_130, Target::Set(value))
            .unwrap()
            .new_text
    }

    #[test]
    fn only_going_to_false_from_something_else_turns_extension_off() {
        let (on, off) = (with_flag(true), with_flag(false));
        assert!(turns_off(&on, &off));
        assert!(
            turns_off(KUBEADM_130, &off),
            "from the default (true) to false"
        );
        assert!(!turns_off(&off, &off), "already off");
        assert!(!turns_off(&off, &on));
        assert!(!turns_off(&off, KUBEADM_130), "back to the default (true)");
    }

    #[test]
    fn a_revert_without_a_session_says_what_the_latest_change_was() {
        assert_eq!(
            nothing_to_revert(&Journal::default()),
            "nothing to revert: the journal records no change"
        );
        let journal: Journal = serde_json::from_str(RELEASE_0_1_0).unwrap();
        let why = nothing_to_revert(&journal);
        assert!(
            why.contains(
                "session 20261201T101500.000Z-extend-tokens-enable (extend-tokens enable), is Done"
            ),
            "{why}"
        );
    }

    #[test]
    fn a_named_session_must_be_in_the_journal_and_none_named_takes_the_fallback() {
        let journal: Journal = serde_json::from_str(RELEASE_0_1_0).unwrap();
        let err = pick(&journal, Some("no-such"), |j| j.unfinished(), "none").unwrap_err();
        assert!(
            matches!(&err, Error::Usage(m) if m.starts_with("no session no-such in the journal")),
            "{err:?}"
        );
        let unfinished = pick(&journal, None, |j| j.unfinished(), "none").unwrap();
        assert_eq!(unfinished.id, "20261201T102000.000Z-admin-conf-regenerate");
    }
}
