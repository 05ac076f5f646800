//! The sandbox of process agents: which commands may run, what environment they see,
//! where they work and which resource limits they get (DESIGN §3, §13.6).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mark1_actors::domain::{ProcessSpec, ResourceLimits};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Node variables passed to every agent unless the policy says otherwise: enough to find
/// programs and pick a locale, nothing that identifies or authorizes the node.
pub const DEFAULT_ENV_ALLOW: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

/// The node's own configuration and credentials live in `MARK1_*` variables (§13.1);
/// none of them is ever copied into an agent (or an MCP server), even if allow-listed. A spec may still set
/// such a name as a fixed value.
pub(crate) const NEVER_PASSED_PREFIX: &str = "MARK1_";

/// Node-wide rules for process agents.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxPolicy {
    /// Commands must resolve (symlinks followed) to a file under one of these.
    /// Empty means no process agent may run.
    pub allowed_dirs: Vec<PathBuf>,
    /// Instances without a `working_dir` get a fresh directory under here, removed when
    /// the instance ends. A relative `working_dir` is taken relative to it too.
    pub work_root: PathBuf,
    /// Names of the node's variables every agent sees; a spec's `env_allow` adds more.
    pub env_allow: Vec<String>,
}

/// Why a command may not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SandboxError {
    #[error("command '{0}' must be an absolute path")]
    NotAbsolute(PathBuf),
    #[error("command '{path}' cannot be resolved: {reason}")]
    Unresolvable { path: PathBuf, reason: String },
    #[error("command '{command}' (resolved to '{resolved}') is not under an allowed directory ({allowed})")]
    NotAllowed { command: PathBuf, resolved: PathBuf, allowed: String },
    #[error("command '{0}' is not an executable file")]
    NotExecutable(PathBuf),
}

impl SandboxPolicy {
    /// A policy with [`DEFAULT_ENV_ALLOW`].
    pub fn new(allowed_dirs: Vec<PathBuf>, work_root: impl Into<PathBuf>) -> Self {
        SandboxPolicy {
            allowed_dirs,
            work_root: work_root.into(),
            env_allow: DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Resolves `command` and checks it lies under an allowed directory and is an
    /// executable file. Returns the resolved path, which is what should be executed so a
    /// symlink swapped later cannot redirect it. Use at registration time too.
    pub fn check_command(&self, command: &Path) -> Result<PathBuf, SandboxError> {
        if !command.is_absolute() {
            return Err(SandboxError::NotAbsolute(command.to_path_buf()));
        }
        let resolved = command
            .canonicalize()
            .map_err(|e| SandboxError::Unresolvable { path: command.to_path_buf(), reason: e.to_string() })?;
        // Allowed dirs are resolved on every check: cheap, and a dir created after the
        // node started still counts. One that does not exist allows nothing.
        let allowed = self.allowed_dirs.iter().filter_map(|d| d.canonicalize().ok());
        if !allowed.into_iter().any(|dir| resolved.starts_with(&dir)) {
            let allowed = self.allowed_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>();
            return Err(SandboxError::NotAllowed {
                command: command.to_path_buf(),
                resolved,
                allowed: if allowed.is_empty() { "none configured".into() } else { allowed.join(", ") },
            });
        }
        let executable = std::fs::metadata(&resolved)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !executable {
            return Err(SandboxError::NotExecutable(command.to_path_buf()));
        }
        Ok(resolved)
    }

    /// The child's whole environment: allow-listed node variables, then the spec's fixed
    /// values (which win), and `HOME` set to the working directory unless the spec sets
    /// it, so nothing under the node user's home is found by default.
    pub fn environment(
        &self,
        spec: &ProcessSpec,
        working_dir: &Path,
        node_env: impl Fn(&str) -> Option<OsString>,
    ) -> BTreeMap<OsString, OsString> {
        let mut env = BTreeMap::new();
        let names = self.env_allow.iter().chain(&spec.env_allow);
        for name in names.filter(|n| !n.starts_with(NEVER_PASSED_PREFIX)) {
            if let Some(value) = node_env(name) {
                env.insert(OsString::from(name), value);
            }
        }
        env.insert("HOME".into(), working_dir.as_os_str().to_owned());
        for (name, value) in &spec.env {
            env.insert(name.into(), value.into());
        }
        env
    }

    /// The working directory of a new instance: the spec's (created if missing), or a
    /// fresh one under `work_root` that the caller owns and removes.
    pub fn working_dir(&self, spec: &ProcessSpec, instance: &str) -> std::io::Result<WorkingDir> {
        match &spec.working_dir {
            Some(dir) => {
                let dir = self.work_root.join(dir); // join keeps an absolute `dir` as is
                std::fs::create_dir_all(&dir)?;
                Ok(WorkingDir { path: dir, owned: false })
            }
            None => {
                let dir = self.work_root.join(instance);
                std::fs::create_dir_all(&dir)?;
                Ok(WorkingDir { path: dir, owned: true })
            }
        }
    }
}

/// A child's working directory; one created for the instance is removed on drop.
#[derive(Debug)]
pub struct WorkingDir {
    path: PathBuf,
    owned: bool,
}

impl WorkingDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkingDir {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove agent working dir");
            }
        }
    }
}

/// One `setrlimit` call, computed before fork so the child only makes the syscall.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// The limits to set in the child. A value above the node's own hard limit is lowered
/// to it: an unprivileged process cannot raise a hard limit, and failing every start
/// over that would help nobody.
pub fn rlimits(limits: &ResourceLimits) -> Vec<Rlimit> {
    const MIB: u64 = 1024 * 1024;
    let wanted = [
        (Resource::RLIMIT_AS, limits.memory_mb.map(|mb| mb.saturating_mul(MIB))),
        (Resource::RLIMIT_CPU, limits.cpu_seconds),
        (Resource::RLIMIT_NOFILE, limits.open_files),
        (Resource::RLIMIT_NPROC, limits.processes),
    ];
    wanted
        .into_iter()
        .filter_map(|(resource, value)| {
            let value = value?;
            let current_hard = getrlimit(resource).map(|(_, hard)| hard).unwrap_or(u64::MAX);
            let limit = value.min(current_hard);
            Some(Rlimit { resource, soft: limit, hard: limit })
        })
        .collect()
}

/// Makes the child apply `limits` between fork and exec.
// The one place this crate needs `unsafe`: std offers no other way to run code in the
// child before exec.
#[allow(unsafe_code)]
pub fn apply_rlimits_before_exec(command: &mut tokio::process::Command, limits: Vec<Rlimit>) {
    // SAFETY: the closure runs in the forked child, where only async-signal-safe calls
    // are allowed. It iterates a Vec allocated before fork (no allocation) and calls
    // setrlimit(2), a plain syscall; building an io::Error from an errno does not
    // allocate either.
    unsafe {
        command.pre_exec(move || {
            for l in &limits {
                setrlimit(l.resource, l.soft, l.hard)
                    .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn commands_must_resolve_under_an_allowed_dir() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let policy = SandboxPolicy::new(vec![allowed.path().into()], "/nonexistent");
        let inside = exe(allowed.path(), "agent");
        assert_eq!(policy.check_command(&inside), Ok(inside.canonicalize().unwrap()));

        let foreign = exe(outside.path(), "agent");
        assert!(matches!(policy.check_command(&foreign), Err(SandboxError::NotAllowed { .. })));
        // A symlink inside pointing outside is judged by its target.
        let link = allowed.path().join("link");
        std::os::unix::fs::symlink(&foreign, &link).unwrap();
        assert!(matches!(policy.check_command(&link), Err(SandboxError::NotAllowed { .. })));
        // `..` cannot climb out either.
        let climb = allowed.path().join("..").join(outside.path().file_name().unwrap()).join("agent");
        assert!(matches!(policy.check_command(&climb), Err(SandboxError::NotAllowed { .. })));
    }

    #[test]
    fn relative_missing_and_non_executable_commands_are_rejected() {
        let allowed = tempfile::tempdir().unwrap();
        let policy = SandboxPolicy::new(vec![allowed.path().into()], "/nonexistent");
        assert!(matches!(policy.check_command(Path::new("agent")), Err(SandboxError::NotAbsolute(_))));
        let missing = allowed.path().join("missing");
        assert!(matches!(policy.check_command(&missing), Err(SandboxError::Unresolvable { .. })));
        let plain = allowed.path().join("data.txt");
        std::fs::write(&plain, "x").unwrap();
        assert_eq!(policy.check_command(&plain), Err(SandboxError::NotExecutable(plain.clone())));
        assert!(matches!(policy.check_command(allowed.path()), Err(SandboxError::NotExecutable(_))));
    }

    #[test]
    fn no_allowed_dirs_allows_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SandboxPolicy::new(vec![], "/nonexistent");
        let err = policy.check_command(&exe(dir.path(), "agent")).unwrap_err();
        assert!(err.to_string().contains("none configured"), "{err}");
    }

    #[test]
    fn environment_is_the_allow_list_plus_fixed_values_and_never_node_config() {
        let policy = SandboxPolicy::new(vec![], "/w");
        let mut spec = ProcessSpec::new("/bin/true");
        spec.env_allow = vec!["EXTRA".into(), "MARK1_API_KEY".into()];
        spec.env.insert("FIXED".into(), "1".into());
        spec.env.insert("LANG".into(), "C".into());
        let node = |name: &str| match name {
            "PATH" | "EXTRA" | "SECRET" | "MARK1_API_KEY" | "LANG" => {
                Some(OsString::from(format!("node-{name}")))
            }
            _ => None,
        };
        let env = policy.environment(&spec, Path::new("/w/1"), node);
        let pairs: Vec<(String, String)> =
            env.into_iter().map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap())).collect();
        let expected =
            [("EXTRA", "node-EXTRA"), ("FIXED", "1"), ("HOME", "/w/1"), ("LANG", "C"), ("PATH", "node-PATH")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn fresh_working_dirs_are_removed_configured_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let policy = SandboxPolicy::new(vec![], root.path());
        let spec = ProcessSpec::new("/bin/true");
        let fresh = policy.working_dir(&spec, "ns/agent/1").unwrap();
        let fresh_path = fresh.path().to_path_buf();
        assert!(fresh_path.is_dir() && fresh_path.starts_with(root.path()));
        drop(fresh);
        assert!(!fresh_path.exists());

        let mut spec = spec;
        spec.working_dir = Some("shared".into());
        let kept = policy.working_dir(&spec, "ns/agent/2").unwrap();
        assert_eq!(kept.path(), root.path().join("shared"));
        drop(kept);
        assert!(root.path().join("shared").is_dir());
    }

    #[test]
    fn rlimits_convert_units_and_never_exceed_the_current_hard_limit() {
        let limits = ResourceLimits {
            memory_mb: Some(512),
            cpu_seconds: Some(u64::MAX),
            open_files: None,
            processes: Some(50),
        };
        let got = rlimits(&limits);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].resource, Resource::RLIMIT_AS);
        assert!(got[0].soft <= 512 * 1024 * 1024);
        let (_, cpu_hard) = getrlimit(Resource::RLIMIT_CPU).unwrap();
        assert_eq!(got[1].hard, cpu_hard);
        assert_eq!(got[2].resource, Resource::RLIMIT_NPROC);
    }
}
