//! Root key files: `private.key` (mode 0600, `ed25519-private/<hex>`) and `public.key`
//! (`ed25519/<hex>`), the text forms Biscuit prints and parses.

use std::io;
use std::path::{Path, PathBuf};

use biscuit_auth::{KeyPair, PrivateKey, PublicKey};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file does not hold a key.
    #[error("{path}: not a Biscuit key ({reason})", path = path.display())]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// Refusing to replace an existing private key.
    #[error("{path} already exists: refusing to overwrite a root key", path = path.display())]
    Exists {
        /// The existing key file.
        path: PathBuf,
    },
}

/// `DIR/private.key`.
pub fn private_key_path(dir: &Path) -> PathBuf {
    dir.join("private.key")
}

/// `DIR/public.key`.
pub fn public_key_path(dir: &Path) -> PathBuf {
    dir.join("public.key")
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `pair` as `DIR/private.key` (mode 0600) and `DIR/public.key`. Refuses to replace an
/// existing private key.
pub fn write_pair(dir: &Path, pair: &KeyPair) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let private = private_key_path(dir);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&private).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: private.clone(),
            }
        } else {
            io_err(&private)(e)
        }
    })?;
    io::Write::write_all(
        &mut file,
        format!("{}\n", pair.private().to_prefixed_string()).as_bytes(),
    )
    .and_then(|()| file.sync_all())
    .map_err(io_err(&private))?;
    let public = public_key_path(dir);
    std::fs::write(&public, format!("{}\n", pair.public())).map_err(io_err(&public))
}

/// Generates a new root key pair and writes it to `dir`.
pub fn generate(dir: &Path) -> Result<KeyPair, KeyError> {
    let pair = KeyPair::new();
    write_pair(dir, &pair)?;
    Ok(pair)
}

/// Reads `dir`'s key pair, or generates one there if there is none (the development default).
pub fn load_or_generate(dir: &Path) -> Result<KeyPair, KeyError> {
    let private = private_key_path(dir);
    if private.exists() {
        read_private(&private)
    } else {
        generate(dir)
    }
}

/// Reads a private key file.
pub fn read_private(path: &Path) -> Result<KeyPair, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let key: PrivateKey = text
        .trim()
        .parse()
        .map_err(|e: biscuit_auth::error::Format| KeyError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(KeyPair::from(&key))
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<PublicKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    text.trim()
        .parse()
        .map_err(|e: biscuit_auth::error::Format| KeyError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate(dir.path()).unwrap();
        let again = read_private(&private_key_path(dir.path())).unwrap();
        assert_eq!(again.public(), pair.public());
        assert_eq!(
            read_public(&public_key_path(dir.path())).unwrap(),
            pair.public()
        );
        assert!(matches!(generate(dir.path()), Err(KeyError::Exists { .. })));
        assert_eq!(
            load_or_generate(dir.path()).unwrap().public(),
            pair.public()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(private_key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad.key"), "hello").unwrap();
        assert!(matches!(
            read_public(&dir.path().join("bad.key")),
            Err(KeyError::Invalid { .. })
        ));
    }
}
