//! Bundles made and installed in memory, signed with key pairs made here
//! (the `minisign` crate, a dev-dependency only).

use std::io::{Cursor, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use minisign::KeyPair;

use crate::format::HEADER_LEN;
use crate::*;

struct Key {
    pair: KeyPair,
}

impl Key {
    fn new() -> Key {
        Key {
            pair: KeyPair::generate_unencrypted_keypair().expect("key pair"),
        }
    }

    fn base64(&self) -> String {
        self.pair.pk.to_base64()
    }

    fn trusted(&self) -> TrustedKeys {
        let text = format!("untrusted comment: test key\n{}\n", self.base64());
        TrustedKeys::new(vec![
            TrustedKey::from_pub_file("test.pub", &text).expect("key"),
        ])
    }

    fn sign(&self, manifest: &[u8]) -> String {
        minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            Cursor::new(manifest),
            Some("alpharen test bundle"),
            None,
        )
        .expect("sign")
        .into_string()
    }
}

/// Deterministic, not repeating within a block, so a misplaced block shows.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[i % 4] ^ seed)
        .collect()
}

struct Fixture {
    parts: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// rootfs of 2.5 MiB + 100 bytes (three groups, a short last block),
    /// a kernel and an initramfs.
    fn x86() -> Fixture {
        Fixture {
            parts: vec![
                ("rootfs".into(), data(GROUP_SIZE * 5 / 2 + 100, 1)),
                ("vmlinuz".into(), data(10_000, 2)),
                ("initrd.img".into(), data(BLOCK_SIZE, 3)),
            ],
        }
    }

    fn manifest(&self, version: &str) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            board: "qemu-x86_64".into(),
            version: version.into(),
            build_id: "test".into(),
            min_from: "0.1.0".into(),
            block_size: BLOCK_SIZE as u32,
            group_blocks: GROUP_BLOCKS as u32,
            add_keys: Vec::new(),
            parts: self
                .parts
                .iter()
                .map(|(n, d)| describe_part(n, Cursor::new(d)).expect("describe"))
                .collect(),
        }
    }

    fn pack(&self, manifest: &[u8], signature: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_bundle(&mut out, manifest, signature, |p| {
            let d = &self
                .parts
                .iter()
                .find(|(n, _)| *n == p.name)
                .expect("part")
                .1;
            Ok(Cursor::new(d.clone()))
        })
        .expect("pack");
        out
    }

    fn bundle(&self, key: &Key, m: &Manifest) -> Vec<u8> {
        let bytes = m.to_bytes();
        self.pack(&bytes, &key.sign(&bytes))
    }

    /// Where part `name`'s group `g` table starts in a bundle `b`.
    fn group_at(&self, b: &[u8], name: &str, g: usize) -> usize {
        let m_len = u32::from_be_bytes(b[12..16].try_into().unwrap()) as usize;
        let s_at = HEADER_LEN + m_len;
        let s_len = u32::from_be_bytes(b[s_at..s_at + 4].try_into().unwrap()) as usize;
        let mut at = s_at + 4 + s_len;
        for (n, d) in &self.parts {
            let blocks = |len: usize| len.div_ceil(BLOCK_SIZE);
            if n == name {
                return at + g * (GROUP_SIZE + GROUP_BLOCKS * 32);
            }
            at += d.len() + blocks(d.len()) * 32;
        }
        panic!("no part {name}")
    }
}

fn running(version: &str) -> Running {
    Running {
        board: "qemu-x86_64".into(),
        version: version.into(),
    }
}

type Slots = Vec<(String, Vec<u8>)>;

fn install_into(bundle: &[u8], keys: &TrustedKeys, now: &str) -> (Result<Installed, Error>, Slots) {
    let slots = Arc::new(Mutex::new(Slots::new()));
    let result = install(Cursor::new(bundle), keys, &running(now), |p| {
        slots.lock().unwrap().push((p.name.clone(), Vec::new()));
        Ok(SlotWriter(slots.clone(), None))
    });
    let slots = slots.lock().unwrap().clone();
    (result, slots)
}

/// Appends to the last slot; refuses a write larger than a group, which
/// would mean the reader buffered more than it promises. With a limit, a
/// write past that many bytes fails (a disk error).
struct SlotWriter(Arc<Mutex<Slots>>, Option<usize>);

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        assert!(buf.len() <= GROUP_SIZE, "a write of {} bytes", buf.len());
        let mut slots = self.0.lock().unwrap();
        let slot = &mut slots.last_mut().expect("slot").1;
        if self.1.is_some_and(|limit| slot.len() + buf.len() > limit) {
            return Err(std::io::Error::other("no space left"));
        }
        slot.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn good_bundle_installs_every_part() {
    let key = Key::new();
    let f = Fixture::x86();
    let b = f.bundle(&key, &f.manifest("0.2.0"));
    let (r, slots) = install_into(&b, &key.trusted(), "0.1.0");
    let done = r.expect("install");
    assert_eq!(done.accept, Accept::Upgrade);
    assert_eq!(done.signer, "test.pub");
    assert_eq!(slots, f.parts);
    // The same version again is a reinstall, not a downgrade.
    let (r, _) = install_into(&b, &key.trusted(), "0.2.0");
    assert_eq!(r.expect("reinstall").accept, Accept::Reinstall);
}

#[test]
fn part_root_is_the_sha256_of_its_block_hashes() {
    use ring::digest::{SHA256, digest};
    let f = Fixture::x86();
    let m = f.manifest("0.2.0");
    let hashes: Vec<u8> = f.parts[0]
        .1
        .chunks(BLOCK_SIZE)
        .flat_map(|b| digest(&SHA256, b).as_ref().to_vec())
        .collect();
    assert_eq!(m.parts[0].root, hex(digest(&SHA256, &hashes).as_ref()));
    assert_eq!(m.parts[0].groups.len(), 3);
}

#[test]
fn a_signed_root_that_does_not_match_is_refused() {
    let key = Key::new();
    let f = Fixture::x86();
    let mut m = f.manifest("0.2.0");
    m.parts[1].root = m.parts[2].root.clone();
    let (r, slots) = install_into(&f.bundle(&key, &m), &key.trusted(), "0.1.0");
    let e = r.expect_err("root");
    assert_eq!(
        e.to_string(),
        "part vmlinuz: the root of its block hashes does not match the manifest"
    );
    assert_eq!(slots.len(), 2, "stopped at vmlinuz");
}

#[test]
fn a_failing_writer_is_named_with_the_part_offset() {
    let key = Key::new();
    let f = Fixture::x86();
    let b = f.bundle(&key, &f.manifest("0.2.0"));
    let slots = Arc::new(Mutex::new(Slots::new()));
    let r = install(Cursor::new(&b), &key.trusted(), &running("0.1.0"), |p| {
        slots.lock().unwrap().push((p.name.clone(), Vec::new()));
        Ok(SlotWriter(slots.clone(), Some(GROUP_SIZE * 2)))
    });
    let e = r.expect_err("write error");
    assert_eq!(
        e.to_string(),
        format!(
            "writing part rootfs at byte {} of the part: no space left",
            GROUP_SIZE * 2
        )
    );
    assert_eq!(slots.lock().unwrap().len(), 1);
}

#[test]
fn bad_signature_is_refused_before_any_part() {
    let key = Key::new();
    let f = Fixture::x86();
    let signed = f.manifest("0.2.0").to_bytes();
    let mut other = f.manifest("0.2.0");
    other.build_id = "tampered".into();
    let b = f.pack(&other.to_bytes(), &key.sign(&signed));
    let (r, slots) = install_into(&b, &key.trusted(), "0.1.0");
    let e = r.expect_err("bad signature");
    assert!(matches!(e, Error::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("test.pub"), "{e}");
    assert!(slots.is_empty());
}

#[test]
fn untrusted_key_is_named() {
    let (key, other) = (Key::new(), Key::new());
    let f = Fixture::x86();
    let b = f.bundle(&other, &f.manifest("0.2.0"));
    let (r, slots) = install_into(&b, &key.trusted(), "0.1.0");
    match r {
        Err(Error::UntrustedKey { key_id }) => {
            let id = key_id_string(other.pair.pk.keynum().try_into().expect("8 bytes"));
            assert_eq!(key_id, id);
        }
        other => panic!("{other:?}"),
    }
    assert!(slots.is_empty());
}

#[test]
fn flipped_byte_names_its_block_and_nothing_of_its_group_is_written() {
    let key = Key::new();
    let f = Fixture::x86();
    let mut b = f.bundle(&key, &f.manifest("0.2.0"));
    // Group 1 of rootfs, block 44 of the group: block 300 of the part.
    let group = f.group_at(&b, "rootfs", 1);
    let at = group + GROUP_BLOCKS * 32 + 44 * BLOCK_SIZE + 10;
    b[at] ^= 0x01;
    let (r, slots) = install_into(&b, &key.trusted(), "0.1.0");
    match r {
        Err(e @ Error::BlockMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("part rootfs: block 300"), "{msg}");
            assert!(msg.contains("part bytes 1228800..1232896"), "{msg}");
            assert!(msg.contains(&format!("bundle byte {}", at - 10)), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(slots[0].1.len(), GROUP_SIZE, "only group 0 is written");
}

#[test]
fn altered_hash_table_is_caught_by_the_manifest() {
    let key = Key::new();
    let f = Fixture::x86();
    let mut b = f.bundle(&key, &f.manifest("0.2.0"));
    let at = f.group_at(&b, "vmlinuz", 0) + 5;
    b[at] ^= 0x80;
    let (r, _) = install_into(&b, &key.trusted(), "0.1.0");
    assert!(
        matches!(&r, Err(Error::GroupMismatch { part, group: 0, .. }) if part == "vmlinuz"),
        "{r:?}"
    );
}

#[test]
fn wrong_board_downgrade_and_too_old_are_refused() {
    let key = Key::new();
    let f = Fixture::x86();
    let mut m = f.manifest("0.2.0");
    m.board = "rpi4-64".into();
    let (r, slots) = install_into(&f.bundle(&key, &m), &key.trusted(), "0.1.0");
    let e = r.expect_err("board");
    assert_eq!(
        e.to_string(),
        "the bundle is for board rpi4-64, this node is a qemu-x86_64"
    );
    assert!(slots.is_empty());

    let b = f.bundle(&key, &f.manifest("0.2.0"));
    let (r, slots) = install_into(&b, &key.trusted(), "0.10.0");
    let e = r.expect_err("downgrade");
    assert!(matches!(e, Error::Downgrade { .. }), "{e}");
    assert!(slots.is_empty());

    let mut m = f.manifest("0.3.0");
    m.min_from = "0.2.0".into();
    let (r, _) = install_into(&f.bundle(&key, &m), &key.trusted(), "0.1.9");
    assert!(matches!(r, Err(Error::TooOld { .. })), "{r:?}");
}

#[test]
fn decide_compares_numbers_not_strings() {
    let m = Fixture {
        parts: vec![("rootfs".into(), vec![1])],
    }
    .manifest("0.10.0");
    assert_eq!(decide(&m, &running("0.9.5")).ok(), Some(Accept::Upgrade));
    assert_eq!(decide(&m, &running("0.10")).ok(), Some(Accept::Reinstall));
    assert!(matches!(
        decide(&m, &running("1.0")),
        Err(Error::Downgrade { .. })
    ));
    assert!(matches!(
        decide(&m, &running("0.1.0-rc1")),
        Err(Error::Version(_))
    ));
    assert!(Version::parse("1.2.3.4.5").is_err());
    assert!(Version::parse("").is_err());
    assert!(Version::parse("1..2").is_err());
}

#[test]
fn truncated_anywhere_is_refused_with_where() {
    let key = Key::new();
    let f = Fixture::x86();
    let b = f.bundle(&key, &f.manifest("0.2.0"));
    let m_len = u32::from_be_bytes(b[12..16].try_into().unwrap()) as usize;
    let rootfs = f.group_at(&b, "rootfs", 0);
    let cases = [
        (10, "the header"),
        (HEADER_LEN + m_len / 2, "the manifest"),
        (HEADER_LEN + m_len + 2, "the signature length"),
        (rootfs - 3, "the signature"),
        (
            rootfs + 100,
            "the block-hash table of group 0 of part rootfs",
        ),
        (
            rootfs + GROUP_BLOCKS * 32 + 5 * BLOCK_SIZE + 7,
            "block 5 of part rootfs",
        ),
        (b.len() - 1, "block 0 of part initrd.img"),
    ];
    for (cut, what) in cases {
        let (r, _) = install_into(&b[..cut], &key.trusted(), "0.1.0");
        match r {
            Err(Error::Truncated { what: w, at }) => {
                assert_eq!((w.as_str(), at), (what, cut as u64), "cut at {cut}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn garbage_unknown_format_and_trailing_bytes_are_refused() {
    let key = Key::new();
    let keys = key.trusted();
    let (r, _) = install_into(b"<html>404 not found</html>\n", &keys, "0.1.0");
    assert!(matches!(r, Err(Error::NotABundle)), "{r:?}");

    let f = Fixture::x86();
    let good = f.bundle(&key, &f.manifest("0.2.0"));
    let mut b = good.clone();
    b[11] = 3;
    let (r, _) = install_into(&b, &keys, "0.1.0");
    assert!(matches!(r, Err(Error::UnknownFormat(3))), "{r:?}");
    b[11] = 1;
    let (r, _) = install_into(&b, &keys, "0.1.0");
    let e = r.expect_err("format 1");
    assert_eq!(
        e.to_string(),
        "bundle format 1 is older than this firmware reads (format 2): make the bundle again with this release's tools (make bundle)"
    );

    let mut b = good.clone();
    b[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    let (r, _) = install_into(&b, &keys, "0.1.0");
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");

    let mut b = good.clone();
    b.extend_from_slice(b"extra");
    let (r, _) = install_into(&b, &keys, "0.1.0");
    assert!(
        matches!(r, Err(Error::TrailingData { at }) if at == good.len() as u64),
        "{r:?}"
    );
}

#[test]
fn signed_but_inconsistent_manifest_is_refused() {
    let key = Key::new();
    let f = Fixture::x86();
    let mut m = f.manifest("0.2.0");
    m.format = 3;
    let bytes = serde_json::to_vec(&m).unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    b.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    b.extend_from_slice(&bytes);
    let sig = key.sign(&bytes);
    b.extend_from_slice(&(sig.len() as u32).to_be_bytes());
    b.extend_from_slice(sig.as_bytes());
    let (r, _) = install_into(&b, &key.trusted(), "0.1.0");
    let e = r.expect_err("format");
    assert!(e.to_string().contains("format 3 differs"), "{e}");

    let mut m = f.manifest("0.2.0");
    m.parts[0].groups.pop();
    assert!(m.check(FORMAT_VERSION).is_err());
    let mut m = f.manifest("0.2.0");
    m.parts[1].name = "../etc/passwd".into();
    assert!(m.check(FORMAT_VERSION).is_err());
    let mut m = f.manifest("0.2.0");
    m.add_keys = vec!["not a key".into()];
    assert!(m.check(FORMAT_VERSION).is_err());
}

#[test]
fn pack_refuses_a_part_that_changed_after_the_manifest() {
    let key = Key::new();
    let mut f = Fixture::x86();
    let bytes = f.manifest("0.2.0").to_bytes();
    let sig = key.sign(&bytes);
    f.parts[1].1[9_000] ^= 1;
    let e = write_bundle(Vec::new(), &bytes, &sig, |p| {
        let d = &f.parts.iter().find(|(n, _)| *n == p.name).expect("part").1;
        Ok(Cursor::new(d.clone()))
    })
    .expect_err("changed part");
    assert!(
        e.to_string().contains("part vmlinuz: group 0 differs"),
        "{e}"
    );
}

/// Rotation: v2, signed by the old key, announces the new key; the node
/// keeps it, so v3 signed by the new key alone installs even if the node
/// is back on a system whose image knows only the old key.
#[test]
fn a_bundle_signed_by_the_old_key_adds_the_new_key() {
    let (old, new) = (Key::new(), Key::new());
    let f = Fixture::x86();
    let mut keys = old.trusted();
    let mut m2 = f.manifest("0.2.0");
    m2.add_keys = vec![new.base64()];
    let (r, _) = install_into(&f.bundle(&old, &m2), &keys, "0.1.0");
    let done = r.expect("v2");
    let v3 = f.bundle(&new, &f.manifest("0.3.0"));
    assert!(matches!(
        install_into(&v3, &keys, "0.2.0").0,
        Err(Error::UntrustedKey { .. })
    ));
    for k in &done.manifest.add_keys {
        keys.add(TrustedKey::from_base64(k).expect("added key"));
    }
    install_into(&v3, &keys, "0.2.0")
        .0
        .expect("v3 with the new key");
}

#[test]
fn reader_copies_parts_one_by_one() {
    let key = Key::new();
    let f = Fixture::x86();
    let b = f.bundle(&key, &f.manifest("0.2.0"));
    let mut r = BundleReader::open(Cursor::new(&b), &key.trusted()).expect("open");
    let mut out = Vec::new();
    assert_eq!(r.next_part().map(|p| p.name.as_str()), Some("rootfs"));
    assert_eq!(
        r.copy_part(&mut out).expect("rootfs"),
        f.parts[0].1.len() as u64
    );
    assert_eq!(out, f.parts[0].1);
    assert!(matches!(r.finish(), Err(Error::PartInput { .. })));
}

/// A manifest signed by Debian's `minisign -S` (0.11, what images/bundle.sh
/// runs) with a key made by `minisign -G` (testdata/): the formats agree,
/// and `to_bytes` still writes what the CLI signed.
#[test]
fn debian_minisign_signature_verifies() {
    let manifest = include_bytes!("../testdata/cli-manifest.json");
    let signature = include_str!("../testdata/cli-manifest.json.minisig");
    let key =
        TrustedKey::from_pub_file("cli.pub", include_str!("../testdata/cli.pub")).expect("key");
    assert_eq!(key.id, "8E5A6DCD57066C61", "the id minisign prints");
    let rootfs = vec![7u8; 5000];
    let mut m = Fixture {
        parts: vec![("rootfs".into(), rootfs.clone())],
    }
    .manifest("0.2.0");
    m.build_id = "cli".into();
    assert_eq!(m.to_bytes(), manifest.to_vec());
    let mut b = Vec::new();
    write_bundle(&mut b, manifest, signature, |_| {
        Ok(Cursor::new(rootfs.clone()))
    })
    .expect("pack");
    let (r, slots) = install_into(&b, &TrustedKeys::new(vec![key]), "0.1.0");
    assert_eq!(r.expect("install").signer, "cli.pub");
    assert_eq!(slots[0].1, rootfs);
}

/// A part produced on the fly, never held whole.
struct Generated {
    left: u64,
    n: u64,
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..len] {
            *b = (self.n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
            self.n += 1;
        }
        self.left -= len as u64;
        Ok(len)
    }
}

/// 40 MiB through an OS pipe from the packer's thread to the installer,
/// into a writer that only counts: neither side needs the whole bundle,
/// a file or `Seek`.
#[test]
fn a_large_bundle_streams_through_a_pipe() {
    const SIZE: u64 = 40 << 20;
    let key = Key::new();
    let part = describe_part("rootfs", Generated { left: SIZE, n: 0 }).expect("describe");
    let mut m = Fixture { parts: Vec::new() }.manifest("0.2.0");
    m.parts = vec![part];
    let bytes = m.to_bytes();
    let sig = key.sign(&bytes);
    let (rx, tx) = std::io::pipe().expect("pipe");
    let packer = std::thread::spawn(move || {
        write_bundle(tx, &bytes, &sig, |_| Ok(Generated { left: SIZE, n: 0 }))
    });
    let written = Arc::new(AtomicU64::new(0));
    install(rx, &key.trusted(), &running("0.1.0"), |_| {
        Ok(Counter(written.clone()))
    })
    .expect("install");
    packer.join().expect("packer").expect("pack");
    assert_eq!(written.load(Ordering::Relaxed), SIZE);
}

struct Counter(Arc<AtomicU64>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn key_id_is_printed_as_minisign_prints_it() {
    // minisign's `public key %PRIX64`: little-endian, upper case, no
    // leading zeros (a key id starting with a zero nibble has 15 digits).
    let id = [0xAF, 0xAD, 0xA9, 0x7F, 0x24, 0x56, 0xA4, 0x0C];
    assert_eq!(key_id_string(&id), "CA456247FA9ADAF");
    let id = [0x01, 0, 0, 0, 0, 0, 0, 0xF0];
    assert_eq!(key_id_string(&id), "F000000000000001");
}
