//! One mutating run at a time per node: an exclusive flock, holding the holder's pid.
use std::io::{Read, Seek, Write};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::node::NodeLayout;

/// Held for as long as it lives; the kernel releases it if the process dies.
pub struct NodeLock {
    _lock: Flock<std::fs::File>,
}

pub fn acquire(layout: &NodeLayout) -> Result<NodeLock> {
    let path = &layout.lock_file();
    if let Some(dir) = path.parent() {
        layout
            .fs()
            .private_dir(dir)
            .map_err(|e| Error::io("cannot create", dir, e))?;
    }
    // A symlink planted here must not make root truncate whatever it points at.
    let file = layout
        .fs()
        .open_read_write(path)
        .map_err(|e| Error::io("cannot open the lock file (a symlink is refused)", path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "{}", std::process::id());
            let _ = lock.sync_all();
            Ok(NodeLock { _lock: lock })
        }
        Err((mut file, _)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(Error::Refused(format!(
                "another kubeadm-recover is working on this node (pid {}; lock {}). Wait for it to finish; \
                 if that process is gone the lock is free again",
                if holder.is_empty() { "unknown" } else { holder },
                path.display()
            )))
        }
    }
}
