//! What etcd's own log says about a cluster-ID mismatch. Pure: the tail of the log in, what
//! is known out.
//!
//! etcd logs the mismatch from both ends (server/etcdserver/api/rafthttp): a member sending to a
//! peer it lists says "request sent was ignored by remote peer due to cluster ID mismatch" and
//! names that peer (`remote-peer-id`); the member receiving it says "request cluster ID
//! mismatch" and names only the other cluster's ID. Neither end tells which member holds the
//! other cluster's data: the healthy member that had a stranger added logs the first line, and
//! so does a stale member (a machine reused without `kubeadm reset`) whose old member list
//! names a healthy peer. So this reads only what is known; which member to take out is decided
//! by the operator from each member's data, never here.

/// The newest "cluster ID mismatch" line of an etcd log, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterIdMismatch {
    /// This member lists a peer that answers as another cluster.
    PeerAnswersAsAnotherCluster {
        line: String,
        peer_id: String,
        /// Its peer URL, when the tail still has the line that added it.
        peer_url: Option<String>,
        peer_cluster: String,
        own_cluster: String,
    },
    /// A peer sent to this member as another cluster.
    PeerSentAsAnotherCluster {
        line: String,
        peer_cluster: String,
        own_cluster: String,
    },
    /// The words only (not etcd's JSON, or fields this reading does not know).
    Unread { line: String },
}

impl ClusterIdMismatch {
    /// The log line it was read from (the finding's evidence).
    pub fn line(&self) -> &str {
        match self {
            ClusterIdMismatch::PeerAnswersAsAnotherCluster { line, .. }
            | ClusterIdMismatch::PeerSentAsAnotherCluster { line, .. }
            | ClusterIdMismatch::Unread { line } => line,
        }
    }
}

/// How long after the newest mismatch line the log may go on before the mismatch counts as over.
/// etcd retries its peers several times a second, so a mismatch that still holds is logged again
/// well within this; a member removed, or a stranger stopped, leaves the old lines in the tail.
const STILL_LOGGED_MS: i64 = 60_000;

/// The newest mismatch in `tail` (CRI log lines, or etcd's bare JSON lines), if any, and if it
/// still holds: not when the log went on for more than a minute after it.
pub fn cluster_id_mismatch(tail: &str) -> Option<ClusterIdMismatch> {
    let line = tail
        .lines()
        .rev()
        .find(|l| l.contains("cluster ID mismatch"))?;
    if let (Some(at), Some(last)) = (logged_at(line), tail.lines().rev().find_map(logged_at))
        && last - at > STILL_LOGGED_MS
    {
        return None;
    }
    let unread = || ClusterIdMismatch::Unread {
        line: line.to_string(),
    };
    let Some(entry) = json_of(line) else {
        return Some(unread());
    };
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let msg = field("msg").unwrap_or_default();
    let (Some(peer_cluster), Some(own_cluster)) = (
        field("remote-peer-cluster-id"),
        field("local-member-cluster-id"),
    ) else {
        return Some(unread());
    };
    let read = if msg.starts_with("request sent was ignored") {
        let Some(peer_id) = field("remote-peer-id") else {
            return Some(unread());
        };
        ClusterIdMismatch::PeerAnswersAsAnotherCluster {
            line: line.to_string(),
            peer_url: peer_url(tail, &peer_id),
            peer_id,
            peer_cluster,
            own_cluster,
        }
    } else if msg == "request cluster ID mismatch" {
        ClusterIdMismatch::PeerSentAsAnotherCluster {
            line: line.to_string(),
            peer_cluster,
            own_cluster,
        }
    } else {
        unread()
    };
    Some(read)
}

/// When a line was logged (Unix milliseconds): the CRI prefix's time, else etcd's own `ts`.
fn logged_at(line: &str) -> Option<i64> {
    let parse = crate::runtime::clock::parse_rfc3339_ms;
    line.split(' ').next().and_then(parse).or_else(|| {
        let entry = json_of(line)?;
        parse(entry.get("ts")?.as_str()?)
    })
}

/// The JSON object of a log line: after the CRI prefix (`TIME STREAM TAG `) or the whole line.
fn json_of(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let start = line.find('{')?;
    match serde_json::from_str::<serde_json::Value>(&line[start..]).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The peer URL etcd logged when it added `peer_id` ("added member"), newest first.
fn peer_url(tail: &str, peer_id: &str) -> Option<String> {
    tail.lines().rev().find_map(|l| {
        if !l.contains("added member") {
            return None;
        }
        let entry = json_of(l)?;
        if entry.get("added-peer-id")?.as_str()? != peer_id {
            return None;
        }
        entry
            .get("added-peer-peer-urls")?
            .as_array()?
            .first()?
            .as_str()
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as the real etcd 3.7 wrote them under the real kubelet (the real-node tier).
    const ADDED: &str = r#"2026-12-07T11:19:59.791022772Z stderr F {"level":"info","ts":"2026-12-07T11:19:59.790498Z","caller":"membership/cluster.go:408","msg":"added member","cluster-id":"8f4c80132f8048a3","local-member-id":"8e6b67e66cb51ec1","added-peer-id":"ccb3f09e3bebbbea","added-peer-peer-urls":["http://127.0.0.1:23990"],"added-peer-is-learner":false}"#;
    const IGNORED: &str = r#"2026-12-07T11:20:07.694347567Z stderr F {"level":"warn","ts":"2026-12-07T11:20:07.694206Z","caller":"rafthttp/stream.go:658","msg":"request sent was ignored by remote peer due to cluster ID mismatch","remote-peer-id":"ccb3f09e3bebbbea","remote-peer-cluster-id":"5190ae681092b6a8","local-member-id":"8e6b67e66cb51ec1","local-member-cluster-id":"8f4c80132f8048a3","error":"cluster ID mismatch"}"#;
    const REFUSED: &str = r#"{"level":"warn","ts":"2026-12-07T11:20:07.693620Z","caller":"rafthttp/http.go:512","msg":"request cluster ID mismatch","local-member-id":"7ff970377b0cc08d","local-member-cluster-id":"5190ae681092b6a8","local-member-server-version":"3.7.3","remote-peer-server-name":"","remote-peer-cluster-id":"8f4c80132f8048a3"}"#;

    #[test]
    fn a_peer_this_member_lists_answers_as_another_cluster_with_its_url() {
        let tail = format!("{ADDED}\n{IGNORED}\n");
        assert_eq!(
            cluster_id_mismatch(&tail),
            Some(ClusterIdMismatch::PeerAnswersAsAnotherCluster {
                line: IGNORED.into(),
                peer_id: "ccb3f09e3bebbbea".into(),
                peer_url: Some("http://127.0.0.1:23990".into()),
                peer_cluster: "5190ae681092b6a8".into(),
                own_cluster: "8f4c80132f8048a3".into(),
            })
        );
        // The line that added it rotated out of the tail: the peer without its URL.
        let Some(ClusterIdMismatch::PeerAnswersAsAnotherCluster { peer_url, .. }) =
            cluster_id_mismatch(IGNORED)
        else {
            panic!("read");
        };
        assert_eq!(peer_url, None);
    }

    #[test]
    fn a_peer_that_sent_as_another_cluster_is_read_with_both_ids() {
        assert_eq!(
            cluster_id_mismatch(REFUSED),
            Some(ClusterIdMismatch::PeerSentAsAnotherCluster {
                line: REFUSED.into(),
                peer_cluster: "8f4c80132f8048a3".into(),
                own_cluster: "5190ae681092b6a8".into(),
            })
        );
    }

    #[test]
    fn the_words_alone_are_still_a_mismatch_and_other_logs_are_none() {
        let plain = "E1207 11:20:07 request cluster ID mismatch (got 1 want 2)";
        assert_eq!(
            cluster_id_mismatch(plain),
            Some(ClusterIdMismatch::Unread { line: plain.into() })
        );
        assert_eq!(cluster_id_mismatch(ADDED), None);
        assert_eq!(cluster_id_mismatch(""), None);
    }

    #[test]
    fn a_mismatch_the_log_went_on_from_for_over_a_minute_is_over() {
        let later = |at: &str| {
            format!(
                "{at} stderr F {{\"level\":\"info\",\"ts\":\"{at}\",\"msg\":\"removed member\"}}"
            )
        };
        let over = format!("{IGNORED}\n{}\n", later("2026-12-07T11:21:08.000000000Z"));
        assert_eq!(cluster_id_mismatch(&over), None);
        let recent = format!("{IGNORED}\n{}\n", later("2026-12-07T11:21:07.000000000Z"));
        assert!(cluster_id_mismatch(&recent).is_some());
        // etcd's bare JSON lines carry their time in `ts`.
        let bare = format!(
            "{REFUSED}\n{{\"level\":\"info\",\"ts\":\"2026-12-07T11:25:00Z\",\"msg\":\"x\"}}\n"
        );
        assert_eq!(cluster_id_mismatch(&bare), None);
    }
}
