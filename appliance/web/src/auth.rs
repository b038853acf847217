//! Who is calling: console sessions (cookie + double-submit CSRF token) and
//! API tokens (bearer), both stored hashed in the web service's own
//! database (`<state>/web.db`), and the roles they carry: the user's
//! current role, as the supervisor lists it at the time of the request. The decisions are plain functions so they are
//! tested without HTTP. (Passwords are checked by the supervisor.)

use alpharen_store::{Role, StoreError, now_unix};
use base64::Engine;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "alpharen_session";
pub const CSRF_COOKIE: &str = "alpharen_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const TOKEN_PREFIX: &str = "art_";

/// The schema of `web.db` (`alpharen_store::open_service_db`).
pub const SCHEMA: &[&str] = &[r#"
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    );
    CREATE TABLE web_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used INTEGER
    );
"#];

/// How a caller proved who they are; CSRF applies only to cookies, since a
/// browser attaches those on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub role: Role,
    pub via: Via,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any logged-in user: reads.
    Read,
    /// Acts on the reaction engine (approve, deny, start, cancel, retry, skip) but
    /// changes no definition.
    Operate,
    /// Changes anything.
    Admin,
}

impl Need {
    /// The least role a route of this need takes.
    pub fn least_role(self) -> Role {
        match self {
            Need::Read => Role::Viewer,
            Need::Operate => Role::Operator,
            Need::Admin => Role::Admin,
        }
    }
}

pub fn role_allows(role: Role, need: Need) -> bool {
    role >= need.least_role()
}

/// Methods that change nothing need no CSRF token.
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// Double-submit check for cookie-authenticated, state-changing requests:
/// the header must equal both the CSRF cookie and the session's token
/// (so a cookie planted by a sibling host is not enough).
pub fn csrf_ok(
    method: &str,
    via: Via,
    cookie: Option<&str>,
    header: Option<&str>,
    session_csrf: &str,
) -> bool {
    if via == Via::Token || is_safe_method(method) {
        return true;
    }
    match (cookie, header) {
        (Some(c), Some(h)) => {
            !h.is_empty()
                && ct_eq(c.as_bytes(), h.as_bytes())
                && ct_eq(h.as_bytes(), session_csrf.as_bytes())
        }
        _ => false,
    }
}

/// Constant-time comparison, so tokens cannot be guessed byte by byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Value of one cookie in a `Cookie:` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A new console session: the cookie value (kept only by the browser)
/// and its CSRF token.
pub struct NewSession {
    pub id: String,
    pub csrf: String,
}

pub fn create_session(conn: &Connection, user: &str) -> Result<NewSession, StoreError> {
    let id = random_token(32);
    let csrf = random_token(24);
    let now = now_unix();
    conn.execute(
        "INSERT INTO web_sessions (id_hash, username, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![hash_secret(&id), user, csrf, now],
    )?;
    Ok(NewSession { id, csrf })
}

/// The session's user, role and CSRF token, if it exists, has not idled
/// out and its user still exists (`role_of` gives the user's current
/// role). Touches `last_seen` at most once a minute.
pub fn lookup_session(
    conn: &Connection,
    id: &str,
    idle_secs: i64,
    role_of: impl Fn(&str) -> Option<Role>,
) -> Result<Option<(Caller, String)>, StoreError> {
    let hash = hash_secret(id);
    let now = now_unix();
    let row: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT username, csrf, last_seen FROM web_sessions WHERE id_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((user, csrf, last_seen)) = row else {
        return Ok(None);
    };
    let Some(role) = role_of(&user) else {
        conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [&hash])?;
        return Ok(None);
    };
    if now - last_seen > idle_secs {
        conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [&hash])?;
        return Ok(None);
    }
    if now - last_seen >= 60 {
        conn.execute(
            "UPDATE web_sessions SET last_seen = ?2 WHERE id_hash = ?1",
            params![hash, now],
        )?;
    }
    Ok(Some((
        Caller {
            user,
            role,
            via: Via::Session,
        },
        csrf,
    )))
}

pub fn delete_session(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM web_sessions WHERE id_hash = ?1",
        [hash_secret(id)],
    )?;
    Ok(())
}

/// Drops sessions idle for longer than allowed.
pub fn expire_sessions(conn: &Connection, idle_secs: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM web_sessions WHERE last_seen < ?1",
        [now_unix() - idle_secs],
    )?)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
}

/// Creates an API token; the secret is returned once and stored hashed.
pub fn create_token(
    conn: &Connection,
    name: &str,
    user: &str,
    role: Role,
) -> Result<(TokenInfo, String), StoreError> {
    let secret = format!("{TOKEN_PREFIX}{}", random_token(32));
    let now = now_unix();
    conn.execute(
        "INSERT INTO web_tokens (name, hash, username, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, hash_secret(&secret), user, role.as_str(), now],
    )?;
    let id = conn.last_insert_rowid();
    Ok((
        TokenInfo {
            id,
            name: name.into(),
            username: user.into(),
            role: role.as_str().into(),
            created_at: now,
            last_used: None,
        },
        secret,
    ))
}

pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, username, role, created_at, last_used FROM web_tokens ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            username: r.get(2)?,
            role: r.get(3)?,
            created_at: r.get(4)?,
            last_used: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `true` if a token was revoked.
pub fn revoke_token(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM web_tokens WHERE id = ?1", [id])? > 0)
}

/// The token's caller, if its user still exists (`role_of` gives the
/// user's current role). Its role is the lower of the token's and the
/// user's, so demoting a user demotes their tokens.
pub fn lookup_token(
    conn: &Connection,
    secret: &str,
    role_of: impl Fn(&str) -> Option<Role>,
) -> Result<Option<Caller>, StoreError> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = hash_secret(secret);
    let row: Option<(i64, String, String, Option<i64>)> = conn
        .query_row(
            "SELECT id, username, role, last_used FROM web_tokens WHERE hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((id, user, token_role, last_used)) = row else {
        return Ok(None);
    };
    let Some(user_role) = role_of(&user) else {
        return Ok(None);
    };
    let now = now_unix();
    if last_used.is_none_or(|t| now - t >= 60) {
        conn.execute(
            "UPDATE web_tokens SET last_used = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    let role = Role::parse(&token_role)?.min(user_role);
    Ok(Some(Caller {
        user,
        role,
        via: Via::Token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_only_read() {
        assert!(role_allows(Role::Viewer, Need::Read));
        assert!(!role_allows(Role::Viewer, Need::Admin));
        assert!(role_allows(Role::Admin, Need::Admin));
        assert!(role_allows(Role::Operator, Need::Read));
        assert!(role_allows(Role::Operator, Need::Operate));
        assert!(!role_allows(Role::Operator, Need::Admin));
        assert!(!role_allows(Role::Viewer, Need::Operate));
        assert!(role_allows(Role::Admin, Need::Operate));
    }

    #[test]
    fn csrf_needed_only_for_cookie_writes() {
        let s = "tok123";
        assert!(csrf_ok("GET", Via::Session, None, None, s));
        assert!(csrf_ok("POST", Via::Token, None, None, s));
        assert!(!csrf_ok("POST", Via::Session, Some(s), None, s));
        assert!(!csrf_ok("POST", Via::Session, None, Some(s), s));
        assert!(!csrf_ok("DELETE", Via::Session, Some("x"), Some("x"), s));
        assert!(!csrf_ok("PUT", Via::Session, Some(s), Some("tok124"), s));
        assert!(!csrf_ok("POST", Via::Session, Some(""), Some(""), ""));
        assert!(csrf_ok("PATCH", Via::Session, Some(s), Some(s), s));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = "a=1; alpharen_session=xyz; alpharen_csrf=abc";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(h, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(h, "b"), None);
    }

    #[test]
    fn sessions_and_tokens_roundtrip_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let s = alpharen_store::open_service_db(dir.path(), "web", SCHEMA).unwrap();
        let admin = |u: &str| (u == "admin").then_some(Role::Admin);
        let nobody = |_: &str| None;
        let sess = create_session(&s, "admin").unwrap();
        let (caller, csrf) = lookup_session(&s, &sess.id, 3600, admin).unwrap().unwrap();
        assert_eq!((caller.user.as_str(), caller.role), ("admin", Role::Admin));
        assert_eq!(csrf, sess.csrf);
        assert!(lookup_session(&s, "nope", 3600, admin).unwrap().is_none());
        delete_session(&s, &sess.id).unwrap();
        assert!(lookup_session(&s, &sess.id, 3600, admin).unwrap().is_none());
        let gone = create_session(&s, "admin").unwrap();
        assert!(
            lookup_session(&s, &gone.id, 3600, nobody)
                .unwrap()
                .is_none(),
            "a deleted user's session ends"
        );

        let (info, secret) = create_token(&s, "ci", "admin", Role::Viewer).unwrap();
        let stored: String = s
            .query_row("SELECT hash FROM web_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, secret, "tokens are stored hashed");
        let c = lookup_token(&s, &secret, admin).unwrap().unwrap();
        assert_eq!(c.role, Role::Viewer);
        let viewer = |_: &str| Some(Role::Viewer);
        let (_, strong) = create_token(&s, "ops", "admin", Role::Admin).unwrap();
        assert_eq!(
            lookup_token(&s, &strong, viewer).unwrap().unwrap().role,
            Role::Viewer
        );
        let operator = |_: &str| Some(Role::Operator);
        assert_eq!(
            lookup_token(&s, &strong, operator).unwrap().unwrap().role,
            Role::Operator,
            "a token has the lower of its role and its user's"
        );
        assert!(lookup_token(&s, &secret, nobody).unwrap().is_none());
        assert!(revoke_token(&s, info.id).unwrap());
        assert!(lookup_token(&s, &secret, admin).unwrap().is_none());
    }
}
