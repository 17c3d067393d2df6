//! The keyring: where master keys live, and the per-backend cache of the active one.
//!
//! Keys are 256 bits from the operating system's CSPRNG and are stored only in
//! `medanon.keyring`, which no role but its owner can read with SQL. Keyed functions
//! read the active keys once per process straight from the table (see
//! `read_active_keys`: no SQL, so it also works in a parallel worker), never hand
//! them to SQL, and keep them until a relcache invalidation on the keyring says they
//! may have changed. `rotate_key` sends that invalidation, so every backend reloads
//! after the rotation commits, and no per-row lookup is needed.

use crate::error::raise;
use medanon_core::keyed::{DomainKey, MasterKey, Purpose, KEY_BYTES};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, PgTupleDesc};
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
    /// The id of the active link key.
    link_id: i32,
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

/// The keyring table and its owner (the extension owner, whose rights `definer::as_owner`
/// lends to linking and contracts), from the catalog caches. No SQL runs, so a
/// caller's search_path cannot redirect the lookup, and it works in a parallel worker.
pub fn keyring_and_owner() -> (pg_sys::Oid, pg_sys::Oid) {
    let missing = || -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "medanon keyring is missing",
            None,
            Some("reinstall the extension with CREATE EXTENSION medanon".into()),
        )
    };
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"medanon".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            missing();
        }
        let keyring = pg_sys::get_relname_relid(c"keyring".as_ptr(), schema);
        if keyring == pg_sys::InvalidOid {
            missing();
        }
        let rel = pg_sys::table_open(keyring, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        (keyring, owner)
    }
}

/// One active row of the keyring: its purpose, id and key material.
struct KeyRow {
    purpose: String,
    key_id: i32,
    material: Zeroizing<Vec<u8>>,
    origin: String,
    /// The check value written where the key was made (NULL in a keyring dumped
    /// before check values existed).
    check_value: Option<Vec<u8>>,
}

/// The active keys, read straight from the keyring's heap under the statement's
/// snapshot: no SPI, no SQL, no change of user.
///
/// Loading through SPI as the owner broke parallel plans: a parallel worker may not
/// assign a transaction id (pgrx's SPI asks for one), start a command, or take a
/// snapshot of its own. A scan under the active snapshot does none of these, in a
/// worker or in a leader in parallel mode, and every process of one statement reads
/// the same snapshot, so a parallel plan uses the same key as a serial one. Privileges
/// are not checked here, as they would not be for a SECURITY DEFINER function of the
/// owner: the gate is EXECUTE on the keyed functions. The material is copied once, into
/// memory that is wiped when dropped, and never formatted.
fn read_active_keys(keyring: pg_sys::Oid) -> Vec<KeyRow> {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    let mut rows = Vec::new();
    unsafe {
        let rel = pg_sys::table_open(keyring, lock);
        let desc = (*rel).rd_att;
        let attnum = |name: &str| -> i32 {
            let found = PgTupleDesc::from_pg_unchecked(desc)
                .iter()
                .find(|a| !a.is_dropped() && a.name() == name)
                .map(|a| a.num() as i32);
            found.unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                    "medanon keyring is damaged",
                    Some(format!("the keyring has no column {name}")),
                    Some("reinstall the extension, or restore the keyring from a dump".into()),
                )
            })
        };
        let (purpose_at, id_at, material_at, active_at) =
            (attnum("purpose"), attnum("key_id"), attnum("material"), attnum("active"));
        let (origin_at, check_at) = (attnum("origin"), attnum("check_value"));
        let snapshot =
            if pg_sys::ActiveSnapshotSet() { pg_sys::GetActiveSnapshot() } else { pg_sys::GetTransactionSnapshot() };
        let scan = pg_sys::systable_beginscan(rel, pg_sys::InvalidOid, false, snapshot, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let get = |at: i32| {
                let mut isnull = false;
                let datum = pg_sys::heap_getattr(tuple, at, desc, &mut isnull);
                (!isnull).then_some(datum)
            };
            if !get(active_at).is_some_and(|d| bool::from_datum(d, false).unwrap_or(false)) {
                continue;
            }
            // The columns are NOT NULL; a NULL would make the row unusable, and is
            // reported as a missing key below.
            let (Some(purpose), Some(key_id), Some(material)) = (get(purpose_at), get(id_at), get(material_at)) else {
                continue;
            };
            let Some(purpose) = String::from_datum(purpose, false) else { continue };
            let Some(key_id) = i32::from_datum(key_id, false) else { continue };
            // Detoasted (if at all) into the current context, copied, and the copy
            // is the only one medanon keeps.
            let material = match <&[u8]>::from_datum(material, false) {
                Some(bytes) => Zeroizing::new(bytes.to_vec()),
                None => continue,
            };
            let origin = get(origin_at).and_then(|d| String::from_datum(d, false)).unwrap_or_default();
            let check_value = get(check_at).and_then(|d| <&[u8]>::from_datum(d, false)).map(<[u8]>::to_vec);
            rows.push(KeyRow { purpose, key_id, material, origin, check_value });
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, lock);
    }
    rows
}

fn load_active() -> ActiveKey {
    let (keyring_oid, _) = keyring_and_owner();
    KEYRING_OID.set(keyring_oid);
    let rows = read_active_keys(keyring_oid);
    // On a Citus worker, only the coordinator's keys may be used: a node with keys
    // of its own would give other tokens and offsets without a word (the keys that
    // CREATE EXTENSION makes on each node differ). See `citus`.
    let worker_group = crate::citus::local_group().filter(|g| *g > 0);
    let take = |purpose: KeyPurpose| -> (i32, MasterKey) {
        let Some(row) = rows.iter().find(|r| r.purpose == purpose.name()) else {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("medanon has no active {} key", purpose.name()),
                None,
                Some("reinstall the extension with CREATE EXTENSION medanon, or restore the keyring from a dump".into()),
            );
        };
        if let Some(group) = worker_group {
            if row.origin != "cluster" {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "this Citus worker's medanon keys are not the coordinator's",
                    Some(format!(
                        "the active {} key of node group {group} was made on this node ({}), not copied from the coordinator",
                        purpose.name(),
                        row.origin
                    )),
                    Some("run SELECT medanon.citus_sync_keys() on the coordinator".into()),
                );
            }
        }
        match MasterKey::from_bytes(&row.material) {
            Some(master) => {
                if row.check_value.as_deref().is_some_and(|check| check != master.check_value()) {
                    let hint = if worker_group.is_some() {
                        "run SELECT medanon.citus_sync_keys() on the coordinator"
                    } else {
                        "restore the keyring from a dump"
                    };
                    raise(
                        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                        "medanon key does not match its check value",
                        Some(format!(
                            "the active {} key {} on {} is not the key its check value was made from",
                            purpose.name(),
                            row.key_id,
                            worker_group.map_or("this node".to_string(), |g| format!("Citus node group {g}"))
                        )),
                        Some(hint.into()),
                    );
                }
                (row.key_id, master)
            }
            // Say which key, never what is in it.
            None => raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "medanon key is damaged",
                Some(format!("key {} does not have {KEY_BYTES} bytes", row.key_id)),
                Some("restore the keyring from a dump".into()),
            ),
        }
    };
    let (key_id, pseudonym) = take(KeyPurpose::Pseudonym);
    let (link_id, link) = take(KeyPurpose::Link);
    ActiveKey { key_id, link_id, pseudonym, link, derived: Default::default(), recent: Default::default() }
}

/// Call `f` with the subkey for `purpose` and `domain` under the active key.
/// The first call in a backend, and the first after a rotation, loads the key;
/// every other call is a hash lookup.
pub fn with_domain_key<R>(purpose: Purpose, domain: &[u8], f: impl FnOnce(&DomainKey) -> R) -> R {
    let missing = ACTIVE.with(|a| a.borrow().is_none());
    if STALE.get() || missing {
        STALE.set(false);
        // Load outside any borrow: opening the keyring may process invalidations,
        // which call back into us. Loading works in parallel mode too (see
        // `read_active_keys`), in the leader and in every worker.
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

/// The id of the active key, as the cache sees it (for tests and reports).
pub fn active_key_id() -> i32 {
    with_domain_key(Purpose::Token, b"", |_| ());
    ACTIVE.with(|a| a.borrow().as_ref().map(|k| k.key_id).unwrap_or(0))
}

/// Create a new key for `purpose` from the OS CSPRNG, make it the only active one
/// of that purpose, and tell every backend to drop its cached keys when this
/// transaction commits.
pub fn rotate_key(purpose: KeyPurpose, origin: &str) -> i32 {
    // A worker's keys are copies of the coordinator's; a rotation of its own would
    // split the cluster (CREATE EXTENSION's first keys are replaced by the copies).
    if origin == "rotate" {
        crate::citus::refuse_on_worker("rotate_key");
    }
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
        let check = MasterKey::from_bytes(bytes).map(|k| k.check_value().to_vec());
        let inserted = client.update(
            "INSERT INTO medanon.keyring (purpose, material, origin, check_value) VALUES ($1, $2, $3, $4) RETURNING key_id",
            None,
            &[purpose.name().into(), bytes.into(), origin.into(), check.into()],
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
    // On a Citus coordinator, every worker gets the new key in this transaction.
    if origin == "rotate" {
        crate::citus::push_keys();
    }
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(keyring_oid) };
    key_id
}

/// Stores one key row that the coordinator sent (the trigger on
/// `medanon.keyring_transfer`, sql/citus.sql) in this worker's keyring, as a copy
/// ('cluster'), and makes every backend reload its keys at commit. On the
/// coordinator (which holds a placement of the conduit when it is in Citus's
/// metadata) and without Citus, it does nothing: the keys there are the source.
#[allow(clippy::too_many_arguments)]
pub fn apply_transferred_key(
    key_id: i32,
    purpose: &str,
    material: &[u8],
    active: bool,
    created_at: pgrx::datum::TimestampWithTimeZone,
    retired_at: Option<pgrx::datum::TimestampWithTimeZone>,
    check_value: Option<&[u8]>,
) -> bool {
    if !crate::citus::is_worker() {
        return false;
    }
    // The copy must be the key its check value was made from: a damaged transfer
    // fails here, in the coordinator's transaction, and no node changes.
    let intact = MasterKey::from_bytes(material).is_some_and(|k| check_value.is_none_or(|c| c == k.check_value()));
    if !intact {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            "a medanon key sent by the coordinator is damaged",
            Some(format!("key {key_id} ({purpose}) does not match its check value")),
            Some("run SELECT medanon.citus_sync_keys() on the coordinator again".into()),
        );
    }
    let (keyring_oid, _) = keyring_and_owner();
    Spi::connect_mut(|client| {
        client.update("LOCK TABLE medanon.keyring IN SHARE ROW EXCLUSIVE MODE", None, &[])?;
        if active {
            client.update(
                "UPDATE medanon.keyring SET active = false, retired_at = coalesce(retired_at, pg_catalog.now())
                  WHERE active AND purpose OPERATOR(pg_catalog.=) $1 AND key_id OPERATOR(pg_catalog.<>) $2",
                None,
                &[purpose.into(), key_id.into()],
            )?;
        }
        client.update(
            "INSERT INTO medanon.keyring (key_id, purpose, material, active, origin, created_at, retired_at, check_value)
             VALUES ($1, $2, $3, $4, 'cluster', $5, $6, $7)
             ON CONFLICT (key_id) DO UPDATE
                SET purpose = EXCLUDED.purpose, material = EXCLUDED.material, active = EXCLUDED.active,
                    origin = 'cluster', created_at = EXCLUDED.created_at, retired_at = EXCLUDED.retired_at,
                    check_value = EXCLUDED.check_value",
            None,
            &[
                key_id.into(),
                purpose.into(),
                material.into(),
                active.into(),
                created_at.into(),
                retired_at.into(),
                check_value.into(),
            ],
        )?;
        Ok::<_, pgrx::spi::SpiError>(())
    })
    .unwrap_or_else(|e| crate::error::spi_failed("could not store a key sent by the coordinator", e));
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(keyring_oid) };
    true
}

/// The check values of this node's active keys, as (purpose, key id, hex), for
/// `key_check_values()`: equal on every node of a Citus cluster, and nothing about
/// the keys themselves. Loads the keys as a keyed function would, so a node whose
/// keys are refused says so here too.
pub fn check_values() -> Vec<(String, i32, String)> {
    with_domain_key(Purpose::Token, b"", |_| ());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    ACTIVE.with(|a| {
        a.borrow()
            .as_ref()
            .map(|k| {
                vec![
                    (KeyPurpose::Link.name().to_string(), k.link_id, hex(&k.link.check_value())),
                    (KeyPurpose::Pseudonym.name().to_string(), k.key_id, hex(&k.pseudonym.check_value())),
                ]
            })
            .unwrap_or_default()
    })
}
