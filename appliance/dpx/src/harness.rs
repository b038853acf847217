//! A whole dpx DNS server without sockets, for the malformed-input tests
//! and the cargo-fuzz target (`fuzz/`): bytes in, response bytes out,
//! through the UDP listener's answer cache and hickory as on the wire.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use alpharen_store::{Config, View};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

#[cfg(test)]
use hickory_proto::rr::LowerName;
#[cfg(test)]
use hickory_server::net::runtime::TokioRuntimeProvider;
#[cfg(test)]
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::Catalog;
#[cfg(test)]
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};

use crate::server::Core;
use crate::{Error, Settings, udp};

/// The zone, key and secret the harness serves.
pub const ZONE: &str = "fuzz.test.";
pub const KEY_NAME: &str = "fuzz-key";
pub const KEY_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

const CONFIG: &str = r#"
[node]
hostname = "ns1"
[dpx]
zone = "fuzz.test."
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.1"
[[dpx.tsig_keys]]
name = "fuzz-key"
algorithm = "hmac-sha256"
names = ["*.dyn"]
types = ["A"]
"#;

pub struct Harness {
    pub(crate) core: Arc<Core>,
}

impl Harness {
    /// A server for [`ZONE`] with its database in `state_dir` (empty or
    /// made by an earlier harness).
    pub fn new(state_dir: &Path) -> Result<Harness, Error> {
        Harness::with_config(state_dir, CONFIG)
    }

    /// A server for the zone of `config` (TOML), which also has the
    /// harness's key when it names one.
    pub fn with_config(state_dir: &Path, config: &str) -> Result<Harness, Error> {
        use base64::Engine;
        let config = Config::from_toml(config).map_err(|p| crate::zone::ZoneError {
            what: "harness config".into(),
            message: format!("{p:?}"),
        })?;
        let mut view = View {
            config,
            ..Default::default()
        };
        view.secrets.insert(
            format!("dpx.tsig.{KEY_NAME}"),
            base64::engine::general_purpose::STANDARD.encode(KEY_SECRET),
        );
        let settings = Settings::load(&view, true)?;
        let core = Core::new(alpharen_store::open_service_db(
            state_dir,
            "dpx",
            crate::db::SCHEMA,
        )?);
        core.reload(settings.zone)?;
        Ok(Harness { core })
    }

    /// Handles one UDP packet as the listener does (answer cache, then
    /// hickory); the response bytes, or `None` when the packet gets no
    /// answer (shorter than a header, or a response).
    pub async fn handle(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let src: SocketAddr = ([127, 0, 0, 1], 5353).into();
        udp::handle(&self.core, packet, src).await
    }

    /// hickory's answer to the packet without the cache, for comparing
    /// with [`Harness::handle`].
    pub async fn uncached(&self, packet: &[u8]) -> Option<Vec<u8>> {
        Self::by_hickory(self.core.current().catalog(), packet).await
    }

    /// Plain hickory serving the zone as it is now: its in-memory handler
    /// in a catalog, as dpx had it before it answered misses itself.
    #[cfg(test)]
    pub fn hickory(&self) -> Catalog {
        let mut catalog = Catalog::new();
        if let Some(z) = &self.core.current().zone
            && let Ok(records) = z.records()
        {
            let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
                z.origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
                None,
            );
            for r in records {
                handler.upsert_mut(r, z.serial);
            }
            catalog.upsert(LowerName::new(&z.origin), vec![Arc::new(handler)]);
        }
        catalog
    }

    /// A catalog's answer to one UDP packet, with no cache in front
    /// (ours, or [`Harness::hickory`]'s).
    pub async fn by_hickory(catalog: &Catalog, packet: &[u8]) -> Option<Vec<u8>> {
        let src: SocketAddr = ([127, 0, 0, 1], 5353).into();
        udp::resolve(catalog, packet, src).await
    }

    /// Whether the listener would look `packet` up in its cache.
    pub fn cacheable(packet: &[u8]) -> bool {
        crate::cache::question(packet).is_some()
    }

    /// What an observer can see of the zone: serial and dynamic records.
    pub fn state(&self) -> (u32, Vec<String>) {
        match &self.core.current().zone {
            Some(z) => (z.serial, z.dynamic.iter().map(|r| r.to_string()).collect()),
            None => (0, Vec::new()),
        }
    }
}

/// Well-formed starting points for mutation: a query, an unsigned update,
/// one signed with the wrong secret and one signed correctly for a name
/// outside the key's policy. None of them, mutated or not, may change
/// the zone.
pub fn seeds(now: u64) -> Vec<Vec<u8>> {
    let zone = Name::from_ascii(ZONE).unwrap_or_else(|_| Name::root());
    let name = |s: &str| Name::from_ascii(format!("{s}.{ZONE}")).unwrap_or_else(|_| Name::root());
    let mut query = Message::new(1, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name("www"), RecordType::A));
    let update = |host: &str| {
        let mut m = Message::new(2, MessageType::Query, OpCode::Update);
        m.add_query(Query::query(zone.clone(), RecordType::SOA));
        m.add_authority(Record::from_rdata(
            name(host),
            60,
            RData::A(A([192, 0, 2, 9].into())),
        ));
        m
    };
    let signed = |mut m: Message, secret: &[u8]| {
        let key = Name::from_ascii(format!("{KEY_NAME}.")).unwrap_or_else(|_| Name::root());
        if let Ok(signer) = TSigner::new(secret.to_vec(), TsigAlgorithm::HmacSha256, key, 300) {
            let _ = m.finalize(&signer, now);
        }
        m
    };
    [
        query,
        update("a.dyn"),
        signed(update("a.dyn"), b"wrong secret, wrong secret!!!!!!"),
        signed(update("other"), KEY_SECRET),
    ]
    .iter()
    .filter_map(|m| m.to_vec().ok())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;

    /// xorshift64: deterministic, so a failure reproduces.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn mutate(seed: &[u8], rng: &mut u64) -> Vec<u8> {
        let mut p = seed.to_vec();
        let len = p.len().max(1);
        let at = (next(rng) as usize) % len;
        match next(rng) % 6 {
            0 => {
                for _ in 0..1 + next(rng) % 4 {
                    let i = (next(rng) as usize) % len;
                    if let Some(b) = p.get_mut(i) {
                        *b ^= 1 << (next(rng) % 8);
                    }
                }
            }
            1 => p.truncate(at),
            2 => p.insert(at.min(p.len()), next(rng) as u8),
            3 => {
                if let Some(b) = p.get_mut(at) {
                    *b = next(rng) as u8;
                }
            }
            4 => {
                let extra = p[at.min(p.len())..].to_vec();
                p.extend_from_slice(&extra);
            }
            _ => p = (0..next(rng) % 600).map(|_| next(rng) as u8).collect(),
        }
        p
    }

    fn rcode(resp: &[u8]) -> ResponseCode {
        Message::from_vec(resp)
            .map(|m| m.response_code)
            .unwrap_or(ResponseCode::Unknown(0xfff))
    }

    #[test]
    fn malformed_packets_neither_crash_nor_change_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = Harness::new(dir.path()).unwrap();
            let before = h.state();
            let now = alpharen_store::now_unix() as u64;
            let seeds = seeds(now);
            assert_eq!(seeds.len(), 4);
            let codes: Vec<ResponseCode> = {
                let mut v = Vec::new();
                for s in &seeds {
                    v.push(rcode(&h.handle(s).await.unwrap()));
                }
                v
            };
            assert_eq!(
                codes,
                [
                    ResponseCode::NoError,
                    ResponseCode::Refused,
                    ResponseCode::NotAuth,
                    ResponseCode::Refused
                ]
            );
            let mut rng = 0x9E37_79B9_7F4A_7C15;
            let mut cached = 0;
            for i in 0..20_000 {
                let packet = mutate(&seeds[i % seeds.len()], &mut rng);
                let _ = h.handle(&packet).await;
                if Harness::cacheable(&packet) {
                    // Served from the cache if reusable: still hickory's answer.
                    let again = h.handle(&packet).await;
                    assert_eq!(again, h.uncached(&packet).await, "{packet:02x?}");
                    cached += 1;
                }
            }
            assert!(cached > 100, "only {cached} mutated queries were cacheable");
            assert_eq!(h.state(), before, "a malformed packet changed the zone");
            let answer = Message::from_vec(&h.handle(&seeds[0]).await.unwrap()).unwrap();
            assert_eq!(answer.answers.len(), 1, "the server stopped answering");

            // The harness can change the zone at all: a good update does.
            let mut good = Message::new(3, MessageType::Query, OpCode::Update);
            good.add_query(Query::query(
                Name::from_ascii(ZONE).unwrap(),
                RecordType::SOA,
            ));
            good.add_authority(Record::from_rdata(
                Name::from_ascii(format!("b.dyn.{ZONE}")).unwrap(),
                60,
                RData::A(A([192, 0, 2, 7].into())),
            ));
            let key = Name::from_ascii(format!("{KEY_NAME}.")).unwrap();
            good.finalize(
                &TSigner::new(KEY_SECRET.to_vec(), TsigAlgorithm::HmacSha256, key, 300).unwrap(),
                now,
            )
            .unwrap();
            let resp = h.handle(&good.to_vec().unwrap()).await.unwrap();
            assert_eq!(rcode(&resp), ResponseCode::NoError);
            assert_eq!(h.state().0, before.0 + 1);
        });
    }
}
