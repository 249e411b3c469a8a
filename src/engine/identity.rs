//! Where the secrets that make an identity live: private files under the config dir. The
//! host's (`host-identity`) keeps its link (room id and key) good across restarts; `--new-room`
//! replaces it. A participant's (`guest-identity`) keeps it the same person to a host across
//! restarts, which is what a host's ban names.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::protocol::guest::GuestSecret;
use crate::protocol::identity::{HostSecret, SECRET_LEN};

/// The first word of a host's file: what it is, and its format's version.
const MAGIC: &str = "syncy-host-secret-v1";
/// The first word of a participant's file.
const GUEST_MAGIC: &str = "syncy-guest-secret-v1";

/// Which secret a host (or a participant) uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A new one each run, kept nowhere (`syncy demo`, benchmarks).
    Fresh,
    /// The one in `path`, made there on first use; `renew` replaces it (`--new-room`).
    File { path: PathBuf, renew: bool },
}

/// Why the secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the identity {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write the identity {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("the identity {0} is not a Syncy secret of this kind (remove it; a host may pass --new-room to replace it)")]
    Garbled(PathBuf),
    #[error("the identity {0} can be read by other users (mode {1:o}): run chmod 600 on it (or remove it, for a new one)")]
    Exposed(PathBuf, u32),
}

/// The host secret `identity` names. Blocking file I/O: call it off the async runtime.
pub fn load(identity: &Identity) -> Result<HostSecret, IdentityError> {
    load_bytes(identity, MAGIC).map(HostSecret::from_bytes)
}

/// The participant secret `identity` names. Blocking file I/O: call it off the async runtime.
pub fn load_guest(identity: &Identity) -> Result<GuestSecret, IdentityError> {
    load_bytes(identity, GUEST_MAGIC).map(GuestSecret::from_bytes)
}

fn load_bytes(identity: &Identity, magic: &str) -> Result<[u8; SECRET_LEN], IdentityError> {
    let (path, renew) = match identity {
        Identity::Fresh => return Ok(random()),
        Identity::File { path, renew } => (path, *renew),
    };
    if !renew {
        match read(path, magic) {
            Err(IdentityError::Read(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
    }
    write(path, magic, &random(), renew)?;
    read(path, magic)
}

fn random() -> [u8; SECRET_LEN] {
    rand::random()
}

fn read(path: &Path, magic: &str) -> Result<[u8; SECRET_LEN], IdentityError> {
    let err = |e| IdentityError::Read(path.into(), e);
    // Never through a symlink: someone who can write the directory must not swap in a file
    // of theirs (or point this at one of ours).
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(err)?;
    let mode = f.metadata().map_err(err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Exposed(path.into(), mode));
    }
    let mut text = String::new();
    f.take(256).read_to_string(&mut text).map_err(|_| IdentityError::Garbled(path.into()))?;
    parse(&text, magic).ok_or_else(|| IdentityError::Garbled(path.into()))
}

fn parse(text: &str, want: &str) -> Option<[u8; SECRET_LEN]> {
    let (magic, hex_secret) = text.trim().split_once(' ')?;
    let bytes: [u8; SECRET_LEN] = hex::decode(hex_secret.trim()).ok()?.try_into().ok()?;
    (magic == want).then_some(bytes)
}

/// Makes the directory `path` goes in, private (0700) where it is made, with its parents.
pub(crate) fn private_dir_for(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir),
        None => Ok(()),
    }
}

/// Writes `secret` to a new private file beside `path`, then puts it in place: over the old
/// one when `renew`, else only if there is none. Two hosts starting at once both find no file:
/// the first to link its own wins, and both then read the winner's.
fn write(path: &Path, magic: &str, secret: &[u8; SECRET_LEN], renew: bool) -> Result<(), IdentityError> {
    let err = |e| IdentityError::Write(path.into(), e);
    private_dir_for(path).map_err(err)?;
    let tmp = path.with_file_name(format!(".identity.{}.{}.tmp", std::process::id(), hex::encode(&random()[..4])));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&tmp).map_err(err)?;
    let place = |tmp: &Path| match renew {
        true => std::fs::rename(tmp, path),
        false => match std::fs::hard_link(tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        },
    };
    let written = writeln!(f, "{magic} {}", hex::encode(secret)).and_then(|_| f.sync_all()).and_then(|_| place(&tmp));
    let _ = std::fs::remove_file(&tmp);
    // The new name durable too: a crash must not silently change the link.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    written.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_made_once_kept_private_and_renewed_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/syncy/host-identity");
        let keep = Identity::File { path: path.clone(), renew: false };
        let first = load(&keep).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(load(&keep).unwrap(), first, "the same secret on the next start");
        let renewed = load(&Identity::File { path: path.clone(), renew: true }).unwrap();
        assert_ne!(renewed, first);
        assert_eq!(load(&keep).unwrap(), renewed);
        assert_ne!(load(&Identity::Fresh).unwrap(), renewed);
    }

    #[test]
    fn a_participants_secret_is_kept_apart_from_a_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest-identity");
        let keep = Identity::File { path: path.clone(), renew: false };
        let first = load_guest(&keep).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_guest(&keep).unwrap(), first, "the same person after a restart");
        assert!(matches!(load(&keep), Err(IdentityError::Garbled(..))), "a guest secret is no host secret");
    }

    #[test]
    fn an_exposed_garbled_or_linked_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host-identity");
        let keep = Identity::File { path: path.clone(), renew: false };
        load(&keep).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&keep), Err(IdentityError::Exposed(..))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a secret").unwrap();
        assert!(matches!(load(&keep), Err(IdentityError::Garbled(..))));
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        std::fs::write(dir.path().join("elsewhere"), format!("{MAGIC} {}\n", "00".repeat(SECRET_LEN))).unwrap();
        std::fs::set_permissions(dir.path().join("elsewhere"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load(&keep), Err(IdentityError::Read(..))), "a symlink is not followed");
    }
}
