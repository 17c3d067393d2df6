//! The keyring: where master keys live, and the per-backend cache of the active one.
//!
//! Keys are 256 bits from the operating system's CSPRNG and are stored only in
//! `medanon.keyring`, which no role but its owner can read. Keyed functions load the
//! active key once per backend, as the keyring's owner (as a SECURITY DEFINER
//! function would, but without handing the key to SQL), and keep it until a relcache
//! invalidation on the keyring says it may have changed. `rotate_key` sends that
//! invalidation, so every backend reloads after the rotation commits, and no
//! per-row lookup is needed.

use crate::error::raise;
use medanon_core::keyed::{DomainKey, MasterKey, Purpose, KEY_BYTES};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use rand::rngs::OsRng;
use rand::RngCore;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use zeroize::Zeroizing;

/// The purposes of keys in the keyring (its `purpose` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Tokens and date offsets; replaced by `rotate_key()`.
    Pseudonym,
    /// Link keys and name encodings; never rotated.
    Link,
}

impl KeyPurpose {
    fn name(self) -> &'static str {
        match self {
            KeyPurpose::Pseudonym => "pseudonym",
            KeyPurpose::Link => "link",
        }
    }
}

struct ActiveKey {
    /// The id of the active pseudonym key.
    key_id: i32,
    pseudonym: MasterKey,
    link: MasterKey,
    /// Derived subkeys, one map per purpose, so a lookup borrows the domain
    /// instead of allocating a key for every row.
    derived: [HashMap<Vec<u8>, DomainKey>; 3],
    /// The domain used last, per purpose. A query tokenizes a whole column in one
    /// domain, so comparing the domain's bytes skips hashing it for every row
    /// (SipHash was 4% of `tokenize`'s time in `make bench`).
    recent: [Option<(Vec<u8>, DomainKey)>; 3],
}

fn slot(purpose: Purpose) -> usize {
    match purpose {
        Purpose::Token => 0,
        Purpose::DateShift => 1,
        Purpose::LinkKey => 2,
    }
}

thread_local! {
    static ACTIVE: RefCell<Option<ActiveKey>> = const { RefCell::new(None) };
    /// Set by the relcache callback; checked before every use of the cache.
    static STALE: Cell<bool> = const { Cell::new(true) };
    static KEYRING_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Only flag the cache here: a callback must not run queries, and may fire while
    // the cache is being loaded.
    if relid == pg_sys::InvalidOid || relid == KEYRING_OID.get() {
        STALE.set(true);
    }
}

pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache_invalidation), pg_sys::Datum::from(0usize));
    }
}

/// Look up the keyring table and its owner through the catalog. Every name is
/// schema-qualified, so a caller's search_path cannot redirect it.
pub fn keyring_and_owner() -> (pg_sys::Oid, pg_sys::Oid) {
    let row = Spi::get_two::<pg_sys::Oid, pg_sys::Oid>(
        "SELECT c.oid, c.relowner FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE n.nspname OPERATOR(pg_catalog.=) 'medanon' AND c.relname OPERATOR(pg_catalog.=) 'keyring'",
    );
    match row {
        Ok((Some(oid), Some(owner))) => (oid, owner),
        _ => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "medanon keyring is missing",
            None,
            Some("reinstall the extension with CREATE EXTENSION medanon".into()),
        ),
    }
}

/// Run `f` with `search_path = pg_catalog, pg_temp`, as a function with that
/// `SET` clause would: nothing in a caller's schemas (a look-alike function or
/// operator) is resolved by the SQL `f` runs, or stored in objects it creates.
/// On error, PostgreSQL's abort processing restores the setting.
pub fn with_safe_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&[(c"search_path", c"pg_catalog, pg_temp")], f)
}

/// Run `f` with settings changed as a function's `SET` clause would change them,
/// and restored afterwards (on error, by PostgreSQL's abort processing).
pub fn with_settings<R>(settings: &[(&std::ffi::CStr, &std::ffi::CStr)], f: impl FnOnce() -> R) -> R {
    let nest_level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        level
    };
    let result = f();
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}

/// Run `f` with the keyring owner's privileges and a safe search_path, as a
/// SECURITY DEFINER function with `SET search_path` would. The user is restored on
/// the way out, also on error (and PostgreSQL's abort processing restores it too).
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R + std::panic::UnwindSafe) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0i32;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    with_safe_search_path(|| {
        PgTryBuilder::new(f)
            .finally(|| unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) })
            .execute()
    })
}

fn load_active() -> ActiveKey {
    let (keyring_oid, owner) = keyring_and_owner();
    KEYRING_OID.set(keyring_oid);
    let rows = as_owner(owner, || {
        Spi::connect(|client| {
            client
                .select("SELECT purpose, key_id, material FROM medanon.keyring WHERE active", None, &[])?
                .map(|row| Ok((row.get::<String>(1)?, row.get::<i32>(2)?, row.get::<Vec<u8>>(3)?)))
                .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
        })
    });
    let mut rows = rows.unwrap_or_else(|e| {
        crate::error::spi_failed("could not read the medanon keyring", e)
    });
    let take = |purpose: KeyPurpose| -> (i32, MasterKey) {
        let Some((_, Some(id), Some(material))) = rows.iter().find(|(p, _, _)| p.as_deref() == Some(purpose.name()))
        else {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("medanon has no active {} key", purpose.name()),
                None,
                Some("reinstall the extension with CREATE EXTENSION medanon, or restore the keyring from a dump".into()),
            );
        };
        let material = Zeroizing::new(material.clone());
        match MasterKey::from_bytes(&material) {
            Some(master) => (*id, master),
            // Say which key, never what is in it.
            None => raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "medanon key is damaged",
                Some(format!("key {id} does not have {KEY_BYTES} bytes")),
                Some("restore the keyring from a dump".into()),
            ),
        }
    };
    let (key_id, pseudonym) = take(KeyPurpose::Pseudonym);
    let (_, link) = take(KeyPurpose::Link);
    // Wipe the copies SPI handed over.
    for (_, _, material) in rows.iter_mut() {
        if let Some(material) = material.as_mut() {
            zeroize::Zeroize::zeroize(material);
        }
    }
    ActiveKey { key_id, pseudonym, link, derived: Default::default(), recent: Default::default() }
}

/// Call `f` with the subkey for `purpose` and `domain` under the active key.
/// The first call in a backend, and the first after a rotation, loads the key;
/// every other call is a hash lookup.
pub fn with_domain_key<R>(purpose: Purpose, domain: &[u8], f: impl FnOnce(&DomainKey) -> R) -> R {
    let missing = ACTIVE.with(|a| a.borrow().is_none());
    // During a parallel operation a cached key serves the rest of the statement:
    // loading runs SPI, which cannot start a command in parallel mode once the
    // transaction has written (a rotation is seen from the next statement on).
    // STALE stays set, so the key is reloaded after it.
    let keep_cached = !missing && unsafe { pg_sys::IsInParallelMode() };
    if (STALE.get() || missing) && !keep_cached {
        STALE.set(false);
        // Load outside any borrow: SPI may process invalidations, which call back into us.
        let fresh = load_active();
        ACTIVE.with(|a| *a.borrow_mut() = Some(fresh));
    }
    ACTIVE.with(|a| {
        let mut guard = a.borrow_mut();
        let active = guard.as_mut().expect("key loaded above");
        let slot = slot(purpose);
        if let Some((recent_domain, key)) = &active.recent[slot] {
            if recent_domain == domain {
                return f(key);
            }
        }
        let key = match active.derived[slot].get(domain) {
            Some(key) => key.clone(),
            None => {
                let master = match purpose {
                    Purpose::Token | Purpose::DateShift => &active.pseudonym,
                    Purpose::LinkKey => &active.link,
                };
                let key = master.derive(purpose, domain);
                active.derived[slot].insert(domain.to_vec(), key.clone());
                key
            }
        };
        let out = f(&key);
        active.recent[slot] = Some((domain.to_vec(), key));
        out
    })
}

/// Loads the active keys now, if they are not cached: a statement that may run in
/// parallel after the transaction has written calls this first (see above).
pub fn preload() {
    with_domain_key(Purpose::Token, b"", |_| ());
}

/// The id of the active key, as the cache sees it (for tests and reports).
pub fn active_key_id() -> i32 {
    with_domain_key(Purpose::Token, b"", |_| ());
    ACTIVE.with(|a| a.borrow().as_ref().map(|k| k.key_id).unwrap_or(0))
}

/// Create a new key for `purpose` from the OS CSPRNG, make it the only active one
/// of that purpose, and tell every backend to drop its cached keys when this
/// transaction commits.
pub fn rotate_key(purpose: KeyPurpose, origin: &str) -> i32 {
    let mut material = Zeroizing::new([0u8; KEY_BYTES]);
    if OsRng.try_fill_bytes(&mut material[..]).is_err() {
        raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            "could not read the operating system's random number generator",
            None,
            None,
        );
    }
    let (keyring_oid, _) = keyring_and_owner();
    let key_id = Spi::connect_mut(|client| {
        // One rotation at a time; readers of the keyring are not blocked.
        client.update("LOCK TABLE medanon.keyring IN SHARE ROW EXCLUSIVE MODE", None, &[])?;
        client.update(
            "UPDATE medanon.keyring SET active = false, retired_at = pg_catalog.now() \
             WHERE active AND purpose OPERATOR(pg_catalog.=) $1",
            None,
            &[purpose.name().into()],
        )?;
        let bytes: &[u8] = &material[..];
        let inserted = client.update(
            "INSERT INTO medanon.keyring (purpose, material, origin) VALUES ($1, $2, $3) RETURNING key_id",
            None,
            &[purpose.name().into(), bytes.into(), origin.into()],
        )?;
        let key_id = inserted.first().get_one::<i32>()?;
        // Every rotation goes into the provision ledger (提供記録): tokens and offsets
        // change with it. The keys CREATE EXTENSION makes are not entered, so that a
        // restored ledger does not collide with entries of a fresh install.
        if origin == "rotate" {
            client.update(
                "INSERT INTO medanon.provision_ledger (event, detail)
                 VALUES ('key_rotation', pg_catalog.jsonb_build_object('key_id', $1::int, 'purpose', $2::text))",
                None,
                &[key_id.into(), purpose.name().into()],
            )?;
        }
        Ok::<_, pgrx::spi::SpiError>(key_id)
    });
    let key_id = match key_id {
        Ok(Some(id)) => id,
        Ok(None) => raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "key rotation inserted no key", None, None),
        // Permission and constraint failures are raised by PostgreSQL itself inside
        // SPI; what reaches here is an SPI status we did not expect.
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "could not rotate the medanon key",
            Some(e.to_string()),
            None,
        ),
    };
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(keyring_oid) };
    key_id
}
