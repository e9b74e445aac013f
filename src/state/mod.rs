//! Durable state-directory I/O: atomic, fsynced, permission-restricted writes.
//!
//! Invariant: a reader never observes a partially written file, and a completed
//! write survives `kill -9` or power loss (write temp → fsync → rename → fsync dir).
//! At start the state root is made private (0700) and temp files a killed writer
//! left behind are removed — only names [`write_atomic`] makes, only in the state dir.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of secret-bearing files.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of state directories.
pub const STATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` (and parents) with 0700 if missing.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(STATE_DIR_MODE))
}

/// Infix of the temp files [`write_atomic`] writes: `.<name>.tmp-<pid>`.
const TMP_INFIX: &str = ".tmp-";

/// Atomically replaces `path` with `data`, created with `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    ensure_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}{TMP_INFIX}{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a file to a string; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the state root 0700, or tightens it when group/other have any access.
/// Returns the previous mode when it had to be tightened.
pub fn secure_root(dir: &Path) -> io::Result<Option<u32>> {
    ensure_dir(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(STATE_DIR_MODE))?;
    Ok(Some(mode))
}

/// Whether `name` is a temp file [`write_atomic`] made in another process.
fn is_stale_temp(name: &str) -> bool {
    let Some((stem, pid)) = name.rsplit_once(TMP_INFIX) else {
        return false;
    };
    name.starts_with('.')
        && stem.len() > 1
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && pid != std::process::id().to_string()
}

/// Removes stale `.<name>.tmp-<pid>` files from the state root and its direct
/// subdirectories (symlinks are never followed). Returns what was removed.
pub fn remove_stale_temps(root: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut removed = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    for dir in dirs {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let stale = entry.file_name().to_str().is_some_and(is_stale_temp);
            if stale && entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                removed.push(entry.path());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        write_atomic(&p, b"one", SECRET_FILE_MODE).unwrap();
        write_atomic(&p, b"two", SECRET_FILE_MODE).unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("two"));
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
        assert_eq!(read_optional(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn secures_the_root_and_removes_only_stale_temps() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        fs::create_dir_all(root.join("pairing")).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(secure_root(&root).unwrap(), Some(0o755));
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(secure_root(&root).unwrap(), None, "already private");
        let stale = root.join("pairing/.pairing.json.tmp-4242");
        let own = root.join(format!(".x.tmp-{}", std::process::id()));
        let keep = [
            "pairing/pairing.json",
            "notes.tmp-1",
            ".x.tmp-12a",
            ".tmp-7",
        ];
        for f in keep
            .iter()
            .map(|k| root.join(k))
            .chain([stale.clone(), own.clone()])
        {
            fs::write(f, "x").unwrap();
        }
        assert_eq!(remove_stale_temps(&root).unwrap(), vec![stale.clone()]);
        assert!(!stale.exists() && own.exists());
        assert!(keep.iter().all(|k| root.join(k).exists()));
    }
}
