//! Installs into a stand-in disk (files for the rootfs partitions, a
//! directory for the ESP), with bundles signed by a key made here.

use std::io::Cursor;

use alpharen_update::{
    FORMAT_VERSION, Manifest, Running, TrustedKey, TrustedKeys, describe_part, write_bundle,
};
use minisign::KeyPair;

use super::*;

const ENTRY_A: &str = "title ALPHA-REN slot a\nsort-key alpharen\nversion 2\nlinux /a/vmlinuz\ninitrd /a/initrd.img\noptions console=ttyS0 alpharen.slot=a\n";
const ENTRY_B: &str = "title ALPHA-REN slot b\nsort-key alpharen\nversion 1\nlinux /b/vmlinuz\ninitrd /b/initrd.img\noptions console=ttyS0 alpharen.slot=b\n";

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[i % 4] ^ seed)
        .collect()
}

struct Disk {
    dir: tempfile::TempDir,
    target: Target,
}

/// Slot a booted and good, slot b as flashed (`+3`), both holding "old".
fn disk() -> Disk {
    let dir = tempfile::tempdir().expect("tempdir");
    let esp = dir.path().join("esp");
    std::fs::create_dir_all(esp.join("loader/entries")).expect("esp");
    for s in ["a", "b"] {
        std::fs::create_dir_all(esp.join(s)).expect("slot dir");
        std::fs::write(esp.join(s).join("vmlinuz"), b"old kernel").expect("kernel");
        std::fs::write(dir.path().join(format!("rootfs-{s}")), vec![0u8; 4 << 20]).expect("part");
    }
    std::fs::write(esp.join("loader/entries/alpharen-a.conf"), ENTRY_A).expect("entry");
    std::fs::write(esp.join("loader/entries/alpharen-b+3.conf"), ENTRY_B).expect("entry");
    let target = Target {
        booted: 'a',
        rootfs: [dir.path().join("rootfs-a"), dir.path().join("rootfs-b")],
        esp,
    };
    Disk { dir, target }
}

impl Disk {
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.target.esp.join("loader/entries"))
            .expect("entries")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(rel)).unwrap_or_default()
    }
}

struct Bundle {
    pair: KeyPair,
    parts: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    fn new() -> Bundle {
        Bundle {
            pair: KeyPair::generate_unencrypted_keypair().expect("key pair"),
            parts: vec![
                ("rootfs".into(), data((5 << 20) / 2 + 100, 1)),
                ("vmlinuz".into(), data(10_000, 2)),
                ("initrd.img".into(), data(4096, 3)),
            ],
        }
    }

    fn keys(&self) -> TrustedKeys {
        let text = format!("untrusted comment: k\n{}\n", self.pair.pk.to_base64());
        TrustedKeys::new(vec![
            TrustedKey::from_pub_file("k.pub", &text).expect("key"),
        ])
    }

    fn bytes(&self, board: &str, version: &str) -> Vec<u8> {
        self.adding(board, version, Vec::new())
    }

    /// A bundle whose manifest adds `add_keys`.
    fn adding(&self, board: &str, version: &str, add_keys: Vec<String>) -> Vec<u8> {
        let m = Manifest {
            format: FORMAT_VERSION,
            board: board.into(),
            version: version.into(),
            build_id: "test-build".into(),
            min_from: "0".into(),
            block_size: alpharen_update::BLOCK_SIZE as u32,
            group_blocks: alpharen_update::GROUP_BLOCKS as u32,
            add_keys,
            parts: self
                .parts
                .iter()
                .map(|(n, d)| describe_part(n, Cursor::new(d)).expect("describe"))
                .collect(),
        }
        .to_bytes();
        let sig = minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            Cursor::new(&m),
            Some("test"),
            None,
        )
        .expect("sign")
        .into_string();
        let mut out = Vec::new();
        write_bundle(&mut out, &m, &sig, |p| {
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
}

fn running() -> Running {
    Running {
        board: "qemu-x86_64".into(),
        version: "0.1.0".into(),
    }
}

fn run(disk: &Disk, keys: &TrustedKeys, bundle: &[u8]) -> Result<Done, InstallError> {
    let kept = disk.dir.path().join("kept");
    install(
        Cursor::new(bundle),
        keys,
        &kept,
        &running(),
        &disk.target,
        &|_| {},
    )
}

#[test]
fn a_good_bundle_fills_the_inactive_slot_and_arms_its_trial() {
    let d = disk();
    let b = Bundle::new();
    let done = run(&d, &b.keys(), &b.bytes("qemu-x86_64", "0.2.0")).expect("install");
    assert_eq!((done.slot, done.record.version.as_str()), ('b', "0.2.0"));
    let rootfs = &b.parts[0].1;
    assert_eq!(&d.read("rootfs-b")[..rootfs.len()], &rootfs[..]);
    assert_eq!(d.read("rootfs-a"), vec![0u8; 4 << 20]);
    assert_eq!(d.read("esp/b/vmlinuz"), b.parts[1].1);
    assert_eq!(d.read("esp/b/initrd.img"), b.parts[2].1);
    assert_eq!(d.read("esp/a/vmlinuz"), b"old kernel");
    assert_eq!(d.entries(), ["alpharen-a.conf", "alpharen-b+3.conf"]);
    assert_eq!(
        d.read("esp/loader/entries/alpharen-a.conf"),
        ENTRY_A.as_bytes()
    );
    let entry = String::from_utf8(d.read("esp/loader/entries/alpharen-b+3.conf")).expect("utf8");
    assert!(entry.contains("version 3\n") && entry.contains("alpharen.slot=b"));
    let s = slots(&d.target).expect("slots");
    assert_eq!((s[1].state.as_str(), s[1].tries_left), ("trial", Some(3)));
    assert_eq!(s[1].version.as_deref(), Some("0.2.0"));
    assert_eq!(s[1].build_id.as_deref(), Some("test-build"));
    assert!(s[0].booted && !s[1].booted && s[0].state == "good");
}

#[test]
fn a_corrupt_block_leaves_the_slot_invalid_and_the_booted_one_alone() {
    let d = disk();
    let b = Bundle::new();
    let mut bytes = b.bytes("qemu-x86_64", "0.2.0");
    let last = bytes.len() - 20_000;
    bytes[last] ^= 0x40;
    let e = run(&d, &b.keys(), &bytes).expect_err("corrupt");
    assert!(e.to_string().contains("is corrupt"), "{e}");
    assert_eq!(e.code(), "update_refused", "the bundle's fault");
    assert_eq!(d.entries(), ["alpharen-a.conf"]);
    assert_eq!(
        d.read("esp/loader/entries/alpharen-a.conf"),
        ENTRY_A.as_bytes()
    );
    assert_eq!(slots(&d.target).expect("slots")[1].state, "invalid");
    // A truncated upload does the same; a good bundle then repairs it.
    let good = b.bytes("qemu-x86_64", "0.2.0");
    let e = run(&d, &b.keys(), &good[..good.len() / 2]).expect_err("truncated");
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_eq!(e.code(), "update_refused");
    assert_eq!(d.entries(), ["alpharen-a.conf"]);
    run(&d, &b.keys(), &good).expect("reinstall");
    assert_eq!(d.entries(), ["alpharen-a.conf", "alpharen-b+3.conf"]);
}

#[test]
fn refused_bundles_touch_nothing() {
    let d = disk();
    let b = Bundle::new();
    let other = Bundle::new();
    let e = run(&d, &other.keys(), &b.bytes("qemu-x86_64", "0.2.0")).expect_err("key");
    assert!(e.to_string().contains("does not trust"), "{e}");
    assert_eq!(e.code(), "update_refused");
    let e = run(&d, &b.keys(), &b.bytes("rpi4-64", "0.2.0")).expect_err("board");
    assert!(e.to_string().contains("board rpi4-64"), "{e}");
    let e = run(&d, &b.keys(), &b.bytes("qemu-x86_64", "0.0.9")).expect_err("downgrade");
    assert!(e.to_string().contains("downgrade"), "{e}");
    assert_eq!(d.entries(), ["alpharen-a.conf", "alpharen-b+3.conf"]);
    // Without the initramfs the entry would not boot: refused up front.
    let mut thin = Bundle::new();
    thin.parts.pop();
    let e = run(&d, &thin.keys(), &thin.bytes("qemu-x86_64", "0.2.0")).expect_err("part");
    assert!(e.to_string().contains("initrd.img"), "{e}");
    assert_eq!(d.entries(), ["alpharen-a.conf", "alpharen-b+3.conf"]);
}

#[test]
fn no_install_from_a_slot_on_trial() {
    let mut d = disk();
    d.target.booted = 'b';
    let b = Bundle::new();
    let e = run(&d, &b.keys(), &b.bytes("qemu-x86_64", "0.2.0")).expect_err("trial");
    assert!(matches!(e, InstallError::Plan(_)), "{e}");
    assert_eq!(
        e.code(),
        "update_unavailable",
        "the node's state, not the bundle"
    );
    assert_eq!(d.read("esp/a/vmlinuz"), b"old kernel");
}

#[test]
fn os_release_fields_are_read_unquoted() {
    let t = "NAME=\"ALPHA-REN\"\nVERSION_ID=0.2.0\nALPHAREN_BOARD=\"qemu-x86_64\"\n";
    assert_eq!(os_release_field(t, "VERSION_ID").as_deref(), Some("0.2.0"));
    assert_eq!(
        os_release_field(t, "ALPHAREN_BOARD").as_deref(),
        Some("qemu-x86_64")
    );
    assert_eq!(os_release_field(t, "BUILD_ID"), None);
}

/// The image's key directory (holding `keys`' key) and the kept one, as
/// the supervisor reads them before each install.
fn image_keys(d: &Disk, b: &Bundle) -> (std::path::PathBuf, std::path::PathBuf) {
    let image = d.dir.path().join("image-keys");
    std::fs::create_dir_all(&image).expect("image keys");
    let text = format!("untrusted comment: k\n{}\n", b.pair.pk.to_base64());
    std::fs::write(image.join("old.pub"), text).expect("old.pub");
    (image, d.dir.path().join("kept"))
}

#[test]
fn a_key_an_installed_bundle_adds_is_kept_and_trusted_afterwards() {
    let d = disk();
    let (old, new) = (Bundle::new(), Bundle::new());
    let (image, kept) = image_keys(&d, &old);
    let keys = crate::keyring::trusted_keys_in(&image, &kept).expect("keys");
    let v3 = new.bytes("qemu-x86_64", "0.3.0");
    let e = run(&d, &keys, &v3).expect_err("new key not trusted yet");
    assert!(e.to_string().contains("does not trust"), "{e}");
    let add = vec![new.pair.pk.to_base64()];
    run(&d, &keys, &old.adding("qemu-x86_64", "0.2.0", add)).expect("v2");
    let id = new.keys().keys()[0].id.clone();
    let file = std::fs::read_to_string(kept.join(format!("{id}.pub"))).expect("kept key");
    assert!(
        file.contains("added by bundle 0.2.0 (test-build)"),
        "{file}"
    );
    // Read again as before the next install: the new key is trusted beside
    // the image's, so a bundle signed with it now installs.
    let keys = crate::keyring::trusted_keys_in(&image, &kept).expect("keys");
    assert_eq!(keys.keys().len(), 2);
    let done = run(&d, &keys, &v3).expect("v3 signed with the new key");
    assert!(done.record.signer.ends_with(&format!("{id}.pub")));
}

#[test]
fn a_bundle_that_fails_adds_no_key() {
    let d = disk();
    let (old, new) = (Bundle::new(), Bundle::new());
    let (image, kept) = image_keys(&d, &old);
    let keys = crate::keyring::trusted_keys_in(&image, &kept).expect("keys");
    let add = vec![new.pair.pk.to_base64()];
    // Signed by a key the node does not trust.
    let stranger = Bundle::new();
    let e = run(
        &d,
        &keys,
        &stranger.adding("qemu-x86_64", "0.2.0", add.clone()),
    )
    .expect_err("untrusted");
    assert!(e.to_string().contains("does not trust"), "{e}");
    // Signed by the trusted key, but the manifest altered after signing.
    let mut forged = old.adding("qemu-x86_64", "0.2.0", add.clone());
    let at = 16
        + forged[16..]
            .windows(5)
            .position(|w| w == b"0.2.0")
            .expect("version");
    forged[at + 4] = b'9';
    let e = run(&d, &keys, &forged).expect_err("bad signature");
    assert!(e.to_string().contains("bad signature"), "{e}");
    // Signed and authentic, but a corrupt block: refused before the end.
    let mut corrupt = old.adding("qemu-x86_64", "0.2.0", add);
    let last = corrupt.len() - 20_000;
    corrupt[last] ^= 1;
    run(&d, &keys, &corrupt).expect_err("corrupt");
    assert!(!kept.exists(), "a refused bundle kept a key");
    let keys = crate::keyring::trusted_keys_in(&image, &kept).expect("keys");
    assert_eq!(keys.keys().len(), 1);
}
