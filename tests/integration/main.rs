//! End-to-end tests: the real binary against sandbox nodes laid out by tests/sandbox-node.sh
//! (real openssl). One test binary, ripgrep-style; `harness` is the small fluent builder.
mod harness;

mod admin_conf;
mod architecture;
mod backups;
mod certs;
mod confinement;
mod crash;
mod deadlines;
mod diagnose;
mod dry_run;
mod extend_tokens;
mod guide;
mod hostile;
mod kubeconfig;
mod machines;
mod migrate;
mod playbooks;
mod realnode;
mod rehearsal_scripts;
mod restart;
mod schedule;
mod sessions;
mod shell;
mod snapshots;
mod status;
mod token;
mod untrusted;
mod upstream;
mod workstation;
