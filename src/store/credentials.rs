//! The embedded store's access / secret key pair, kept in
//! `data_dir/credentials` so URLs signed before a restart stay valid.

use std::io;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};

use crate::hex;

pub(super) struct Keys {
    pub(super) access_key: String,
    pub(super) secret_key: String,
}

pub(super) fn load_or_create_keys(path: &Path) -> anyhow::Result<Keys> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_keys(&text).with_context(|| format!("reading {}", path.display())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let random = random_bytes::<30>()?;
            let keys = Keys {
                // AWS-like shape: 20 upper-case characters, 40 for the secret
                // (160 bits of entropy).
                access_key: hex::encode(&random[..10]).to_uppercase(),
                secret_key: hex::encode(&random[10..]),
            };
            crate::fsutil::write_private(
                path,
                format!("access_key={}\nsecret_key={}\n", keys.access_key, keys.secret_key).as_bytes(),
            )?;
            Ok(keys)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// A malformed file is an error, not a reason to mint new keys: silently
/// replacing them would invalidate every outstanding URL and hide corruption.
fn parse_keys(text: &str) -> anyhow::Result<Keys> {
    let (mut access_key, mut secret_key) = (None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some(("access_key", v)) => access_key = Some(v.trim().to_owned()),
            Some(("secret_key", v)) => secret_key = Some(v.trim().to_owned()),
            _ => bail!("unexpected line in credentials file"),
        }
    }
    match (access_key, secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(Keys { access_key: a, secret_key: s }),
        _ => bail!("credentials file lacks access_key or secret_key"),
    }
}

/// Kernel randomness, as for the session key.
fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(buf)
}
