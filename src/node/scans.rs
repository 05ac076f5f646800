//! Scan jobs on a running node (DESIGN §7, §9): a scan of a folder under
//! `scan.allowed_dirs` is started as an actor under `scans`; its record and report are
//! read from the store.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mark1_actors::domain::scan::{ScanId, ScanRecord};
use mark1_actors::ports::ScanQuery;
use mark1_actors::scans::ScanError;

use super::{NodeError, NodeHandle};

/// Where `path` lies against `allowed`: both made canonical (symlinks and `..` resolved),
/// so `allowed/../elsewhere` and a link out of an allowed folder are refused. Returns the
/// canonical folder to scan.
pub fn check_scan_path(path: &Path, allowed: &[PathBuf]) -> Result<PathBuf, ScanError> {
    if allowed.is_empty() {
        return Err(ScanError::Disabled);
    }
    if !path.is_absolute() {
        return Err(ScanError::InvalidPath(format!("{} is not an absolute path", path.display())));
    }
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| ScanError::InvalidPath(format!("{}: {e}", path.display())))?;
    let inside =
        allowed.iter().any(|dir| std::fs::canonicalize(dir).is_ok_and(|dir| canonical.starts_with(dir)));
    if !inside {
        let allowed = allowed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(ScanError::NotAllowed { path: path.display().to_string(), allowed });
    }
    if !canonical.is_dir() {
        return Err(ScanError::InvalidPath(format!("{} is not a directory", path.display())));
    }
    Ok(canonical)
}

impl NodeHandle {
    /// Starts a scan of `path` (a folder under `scan.allowed_dirs`) in `namespace`;
    /// returns its record once that is committed. The scan runs on: read it with
    /// [`scan`](Self::scan), its report with [`scan_result`](Self::scan_result).
    pub async fn start_scan(
        &self,
        namespace: &str,
        path: &Path,
        submitter: Option<String>,
    ) -> Result<ScanRecord, NodeError> {
        let path = check_scan_path(path, &self.config().scan.allowed_dirs)?;
        let env = self
            .tree_internals()
            .scans()
            .ok_or_else(|| NodeError::Unavailable("the scans supervisor is not running".into()))?;
        let record = ScanRecord::running(namespace, path, submitter, SystemTime::now());
        Ok(env.start(record, self.config().server.call_timeout).await?)
    }

    pub async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, NodeError> {
        Ok(self.store().scan(id).await.map_err(ScanError::from)?)
    }

    /// Scans matching `query`, newest first, without their reports.
    pub async fn scans(&self, query: &ScanQuery) -> Result<Vec<ScanRecord>, NodeError> {
        Ok(self.store().list_scans(query).await.map_err(ScanError::from)?)
    }

    /// A finished scan's report (the RepositoryAnalysis JSON, as stored).
    pub async fn scan_result(&self, id: ScanId) -> Result<Option<String>, NodeError> {
        Ok(self.store().scan_result(id).await.map_err(ScanError::from)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_allowed_folders_are_refused() {
        let root = std::env::temp_dir().join(format!("mark1-scan-path-{}", std::process::id()));
        let (allowed, other) = (root.join("allowed"), root.join("other"));
        std::fs::create_dir_all(allowed.join("project")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(allowed.join("file.py"), "").unwrap();
        let dirs = vec![allowed.clone()];
        let inside = check_scan_path(&allowed.join("project"), &dirs).unwrap();
        assert!(inside.ends_with("allowed/project"));
        assert_eq!(check_scan_path(&allowed, &[]), Err(ScanError::Disabled));
        assert!(matches!(check_scan_path(&other, &dirs), Err(ScanError::NotAllowed { .. })));
        let escape = allowed.join("..").join("other");
        assert!(
            matches!(check_scan_path(&escape, &dirs), Err(ScanError::NotAllowed { .. })),
            "`..` is resolved"
        );
        assert!(matches!(check_scan_path(&allowed.join("file.py"), &dirs), Err(ScanError::InvalidPath(_))));
        assert!(matches!(check_scan_path(Path::new("relative"), &dirs), Err(ScanError::InvalidPath(_))));
        #[cfg(unix)]
        {
            let link = allowed.join("link");
            let _ = std::os::unix::fs::symlink(&other, &link);
            assert!(
                matches!(check_scan_path(&link, &dirs), Err(ScanError::NotAllowed { .. })),
                "links are followed"
            );
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
