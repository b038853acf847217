//! The dpx tables in `<state>/dpx.db`: dynamic records (wire format, so
//! any type round-trips exactly) and the SOA serial with the fingerprint
//! of the configured content it was last bumped for.

use alpharen_store::StoreError;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema of `dpx.db` (`alpharen_store::open_service_db`).
pub const SCHEMA: &[&str] = &[r#"
    CREATE TABLE dpx_records (
        id INTEGER PRIMARY KEY,
        wire BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE dpx_zone (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        serial INTEGER NOT NULL,
        fingerprint TEXT NOT NULL
    );
"#];

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::from(e)
}

/// Dynamic records; rows that no longer decode are skipped with a warning.
pub fn load_dynamic(conn: &Connection) -> Result<Vec<Record>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, wire FROM dpx_records ORDER BY id")
        .map_err(db)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, wire)| match Record::from_bytes(&wire) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(id, error = %e, "skipping a stored record that does not decode");
                None
            }
        })
        .collect())
}

/// Replaces the dynamic records and sets the serial in one transaction.
pub fn save_dynamic(
    conn: &mut Connection,
    records: &[Record],
    serial: u32,
    by: &str,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute("DELETE FROM dpx_records", []).map_err(db)?;
    let now = alpharen_store::now_unix();
    for r in records {
        let wire = r
            .to_bytes()
            .map_err(|e| StoreError::Corrupt(format!("cannot encode {r}: {e}")))?;
        tx.execute(
            "INSERT INTO dpx_records (wire, updated_at, updated_by) VALUES (?1, ?2, ?3)",
            params![wire, now, by],
        )
        .map_err(db)?;
    }
    tx.execute(
        "UPDATE dpx_zone SET serial = ?1 WHERE id = 1",
        params![serial],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(())
}

/// The serial to serve: the stored one, bumped when the configured content
/// (its `fingerprint`) differs from the last time.
pub fn serial_for(conn: &mut Connection, fingerprint: &str) -> Result<u32, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    let row: Option<(u32, String)> = tx
        .query_row(
            "SELECT serial, fingerprint FROM dpx_zone WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    let serial = match row {
        Some((serial, fp)) if fp == fingerprint => serial,
        Some((serial, _)) => next_serial(serial),
        None => 1,
    };
    tx.execute(
        "INSERT INTO dpx_zone (id, serial, fingerprint) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET serial = excluded.serial, fingerprint = excluded.fingerprint",
        params![serial, fingerprint],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(serial)
}

/// RFC 1982 serial arithmetic: wraps, and never lands on 0 (which some
/// secondaries treat as "unset").
pub fn next_serial(serial: u32) -> u32 {
    match serial.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData};

    #[test]
    fn records_and_serial_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Record::from_rdata(
            Name::from_ascii("h.z.example.").unwrap(),
            60,
            RData::A(A([192, 0, 2, 1].into())),
        );
        {
            let mut s = alpharen_store::open_service_db(dir.path(), "dpx", SCHEMA).unwrap();
            assert_eq!(serial_for(&mut s, "a").unwrap(), 1);
            save_dynamic(&mut s, std::slice::from_ref(&rec), 2, "test").unwrap();
        }
        let mut s = alpharen_store::open_service_db(dir.path(), "dpx", SCHEMA).unwrap();
        assert_eq!(load_dynamic(&s).unwrap(), vec![rec]);
        assert_eq!(
            serial_for(&mut s, "a").unwrap(),
            2,
            "same content keeps the serial"
        );
        assert_eq!(serial_for(&mut s, "b").unwrap(), 3, "new content bumps it");
        assert_eq!(next_serial(u32::MAX), 1);
    }
}
