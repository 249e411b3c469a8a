//! A room's bans, kept for the room's life: one file per room, `bans/ROOM` beside the host's
//! identity, one participant key per line. The room (its link) outlives a restart of its host,
//! so its bans must too; `--new-room` makes a new room, whose list starts empty. To lift a ban,
//! delete its line while the host is stopped.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::engine::identity::Identity;
use crate::protocol::guest::GuestId;

/// The most a list may hold, in bytes (about 14 000 bans): a list is read whole at start.
const MAX_BYTES: u64 = 1 << 20;

/// What a new list says first, for whoever opens it.
const HEADER: &str = "# Syncy: participants this room's host banned, one key per line (the rest of a line is the name it had).\n# Delete a line, with the host stopped, to lift that ban.\n";

/// Why a room's bans could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("cannot read the room's bans {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write the room's bans {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("the room's bans {0} can be changed by other users (mode {1:o}): run chmod 600 on it")]
    Exposed(PathBuf, u32),
    #[error("the room's bans {0} is larger than {MAX_BYTES} bytes: not a list Syncy wrote")]
    TooLarge(PathBuf),
}

/// Where `room`'s bans are kept under `identity`: nowhere for a fresh identity (its rooms
/// live one run).
pub fn path(identity: &Identity, room: &str) -> Option<PathBuf> {
    let Identity::File { path, .. } = identity else { return None };
    // Room ids are letters, digits, `-` and `_` (`identity::valid_label`): a file name, never a path.
    let plain = !room.is_empty() && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| path.parent().unwrap_or(Path::new("")).join("bans").join(room))
}

/// The keys banned in the list at `path` (none when there is no list). Lines that are not a
/// key (a crash mid-write, an edit) are skipped with a warning. Blocking: off the runtime.
pub fn load(path: &Path) -> Result<Vec<GuestId>, BanError> {
    let err = |e| BanError::Read(path.into(), e);
    // Never through a symlink: the list is the host's own, as its identity is.
    let f = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        other => other.map_err(err)?,
    };
    let mode = f.metadata().map_err(err)?.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(BanError::Exposed(path.into(), mode));
    }
    let mut bytes = vec![];
    f.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(BanError::TooLarge(path.into()));
    }
    Ok(parse(&String::from_utf8_lossy(&bytes), path))
}

fn parse(text: &str, path: &Path) -> Vec<GuestId> {
    let mut keys = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_whitespace().next().and_then(GuestId::from_hex) {
            Some(key) if !keys.contains(&key) => keys.push(key),
            Some(_) => {}
            None => tracing::warn!("{}:{}: not a participant key; skipped", path.display(), n + 1),
        }
    }
    keys
}

/// Adds `guest` (who called itself `name`) to the list at `path`, made private on first use,
/// and waits for it to reach the disk. Blocking: off the runtime.
pub fn append(path: &Path, guest: &GuestId, name: &str) -> Result<(), BanError> {
    let err = |e| BanError::Write(path.into(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
    }
    let mut f = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path).map_err(err)?;
    // Names come from the network: one line, nothing a terminal would act on.
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    let mut line = format!("{} {name}\n", guest.to_hex());
    if f.metadata().map_err(err)?.len() == 0 {
        line.insert_str(0, HEADER);
    }
    // One write of a short line to a file opened for appending: two bans at once do not mix.
    f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::guest::GuestSecret;

    fn guest(seed: u8) -> GuestId {
        GuestSecret::from_bytes([seed; 32]).key_for("room").public()
    }

    #[test]
    fn bans_are_kept_privately_per_room_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::File { path: dir.path().join("syncy/host-identity"), renew: false };
        let list = path(&identity, "movie-ab12").unwrap();
        assert_eq!(list, dir.path().join("syncy/bans/movie-ab12"));
        assert_ne!(path(&identity, "other-ab12"), Some(list.clone()), "each room its own list");
        assert_eq!(load(&list).unwrap(), vec![], "no list yet: nobody banned");
        append(&list, &guest(1), "eve\x1b[2J\nbob").unwrap();
        append(&list, &guest(2), "").unwrap();
        append(&list, &guest(1), "eve again").unwrap();
        assert_eq!(load(&list).unwrap(), vec![guest(1), guest(2)]);
        assert_eq!(std::fs::metadata(&list).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(list.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let text = std::fs::read_to_string(&list).unwrap();
        assert!(text.starts_with("# Syncy") && text.contains(&format!("{} eve[2Jbob\n", guest(1).to_hex())), "{text}");
        assert_eq!(text.lines().count(), 5, "one header of two lines, one line per ban: {text}");
    }

    #[test]
    fn a_fresh_identity_or_an_odd_room_id_keeps_no_list() {
        let file = Identity::File { path: "/x/host-identity".into(), renew: false };
        assert_eq!(path(&Identity::Fresh, "room"), None);
        for odd in ["", "../room", "a/b", ".", "room\n"] {
            assert_eq!(path(&file, odd), None, "{odd:?}");
        }
    }

    #[test]
    fn a_torn_or_edited_line_is_skipped_and_a_list_others_may_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("room");
        let text = format!("# a comment\n\nnot a key\n{} eve\n{}", guest(3).to_hex(), &guest(4).to_hex()[..20]);
        std::fs::write(&list, text).unwrap();
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&list).unwrap(), vec![guest(3)]);
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(matches!(load(&list), Err(BanError::Exposed(_, 0o622))));
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load(&list).unwrap(), vec![guest(3)], "others may read it: keys are not secret");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&list, &link).unwrap();
        assert!(matches!(load(&link), Err(BanError::Read(..))), "never through a symlink");
        assert!(matches!(append(&link, &guest(5), "x"), Err(BanError::Write(..))));
        std::fs::write(&list, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(load(&list), Err(BanError::TooLarge(..))));
    }
}
