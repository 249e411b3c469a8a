//! A room's bans, kept for the room's life: one file per room, `bans/ROOM` beside the host's
//! identity, one participant key per line. The room (its link) outlives a restart of its host,
//! so its bans must too; `--new-room` makes a new room, whose list starts empty. To lift a ban,
//! delete its line while the host is stopped.

use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::engine::identity::Identity;
use crate::protocol::guest::GuestId;

/// The most a list may hold, in bytes (about 7 000 bans): a list is read whole at start.
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
    #[error("the room's bans {0} can be changed by other users (mode {1:o}): run chmod go-w on it")]
    Exposed(PathBuf, u32),
    #[error("the room's bans {0} belong to another user, or are not a plain file: remove them")]
    NotOurs(PathBuf),
    #[error("the room's bans {0} are full ({MAX_BYTES} bytes): delete lines from it")]
    Full(PathBuf),
}

/// Where `room`'s bans are kept under `identity`: nowhere for a fresh identity (its rooms
/// live one run).
pub fn path(identity: &Identity, room: &str) -> Option<PathBuf> {
    let Identity::File { path, .. } = identity else { return None };
    // Room ids are letters, digits, `-` and `_` (`protocol::identity`): a file name, never a path.
    let plain = !room.is_empty() && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| path.parent().unwrap_or(Path::new("")).join("bans").join(room))
}

/// The keys banned in the list at `path` (none when there is no list). Lines that are not a
/// key (a crash mid-write, an edit) are skipped with a warning. Blocking: off the runtime.
pub fn load(path: &Path) -> Result<Vec<GuestId>, BanError> {
    let err = |e| BanError::Read(path.into(), e);
    let f = match open(path, std::fs::OpenOptions::new().read(true)) {
        Err(BanError::Read(_, e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        other => other?,
    };
    let mut bytes = vec![];
    f.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(BanError::Full(path.into()));
    }
    Ok(parse(&String::from_utf8_lossy(&bytes), path))
}

/// Opens the list at `path` as `how` says, if it is the host's own: a plain file of this
/// user's that nobody else may change, in a directory nobody else may change (whoever could
/// would lift bans, or add them). Never through a symlink, never blocked on a FIFO.
fn open(path: &Path, how: &mut std::fs::OpenOptions) -> Result<std::fs::File, BanError> {
    let read = |e| BanError::Read(path.into(), e);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ours(dir, &std::fs::metadata(dir).map_err(read)?)?;
    let f = how.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(read)?;
    let meta = f.metadata().map_err(read)?;
    if !meta.is_file() || meta.uid() != euid() {
        return Err(BanError::NotOurs(path.into()));
    }
    ours(path, &meta)?;
    Ok(f)
}

/// `Ok` when only this user may change what `meta` describes.
fn ours(path: &Path, meta: &std::fs::Metadata) -> Result<(), BanError> {
    let mode = meta.permissions().mode() & 0o777;
    match (meta.uid() == euid(), mode & 0o022) {
        (false, _) => Err(BanError::NotOurs(path.into())),
        (true, 0) => Ok(()),
        (true, _) => Err(BanError::Exposed(path.into(), mode)),
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
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
    crate::engine::identity::private_dir_for(path).map_err(err)?;
    let mut f = open(path, std::fs::OpenOptions::new().read(true).append(true).create(true).mode(0o600)).map_err(|e| match e {
        BanError::Read(p, e) => BanError::Write(p, e),
        other => other,
    })?;
    // Names come from the network: one line, nothing a terminal or an editor would act on.
    let name: String = crate::output::terminal::safe(name, false).chars().take(64).collect();
    let mut line = format!("{} {name}\n", guest.to_hex());
    let len = f.metadata().map_err(err)?.len();
    let mut last = [b'\n'];
    if len == 0 {
        line.insert_str(0, HEADER);
    } else if f.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n' {
        // An edit (or a crash) left the last line open: this ban must not join it.
        line.insert(0, '\n');
    }
    if len + line.len() as u64 > MAX_BYTES {
        return Err(BanError::Full(path.into()));
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
        assert!(text.starts_with("# Syncy") && text.contains(&format!("{} eve\\u{{1b}}[2J\\u{{a}}bob\n", guest(1).to_hex())), "{text}");
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
        assert!(matches!(load(&list), Err(BanError::Full(..))));
        // A FIFO (someone else's trap) is refused, not waited on.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only makes a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(load(&fifo), Err(BanError::NotOurs(..))));
    }

    #[test]
    fn a_list_in_a_directory_others_may_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bans = dir.path().join("bans");
        append(&bans.join("room"), &guest(1), "eve").unwrap();
        std::fs::set_permissions(&bans, std::fs::Permissions::from_mode(0o777)).unwrap();
        // Whoever may write the directory may delete the list: a ban lifted behind the host's back.
        assert!(matches!(load(&bans.join("room")), Err(BanError::Exposed(p, 0o777)) if p == bans));
        assert!(matches!(append(&bans.join("room"), &guest(2), "x"), Err(BanError::Exposed(..))));
    }

    #[test]
    fn a_ban_after_an_edit_that_left_the_last_line_open_gets_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("room");
        append(&list, &guest(1), "eve").unwrap();
        let text = std::fs::read_to_string(&list).unwrap();
        std::fs::write(&list, text.trim_end()).unwrap();
        append(&list, &guest(2), "bob").unwrap();
        assert_eq!(load(&list).unwrap(), vec![guest(1), guest(2)]);
    }

    #[test]
    fn a_full_list_takes_no_more_and_names_cannot_fake_lines() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("room");
        append(&list, &guest(1), "eve\u{2028}0000 bob\u{202e}").unwrap();
        let text = std::fs::read_to_string(&list).unwrap();
        assert!(text.contains(" eve\\u{2028}0000 bob\\u{202e}\n"), "{text}");
        let f = std::fs::OpenOptions::new().append(true).open(&list).unwrap();
        f.set_len(MAX_BYTES - 10).unwrap();
        assert!(matches!(append(&list, &guest(2), "bob"), Err(BanError::Full(..))));
        assert_eq!(std::fs::metadata(&list).unwrap().len(), MAX_BYTES - 10, "nothing written");
        assert!(load(&list).is_ok(), "the host still starts");
    }
}
