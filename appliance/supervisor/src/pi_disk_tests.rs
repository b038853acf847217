//! Installs into a stand-in Raspberry Pi disk: directories for the
//! autoboot and boot partitions, files for the root partitions, laid out
//! as buildroot/board/post-image.sh makes them.

use std::io::Cursor;

use alpharen_update::{
    FORMAT_VERSION, Manifest, Running, TrustedKey, TrustedKeys, describe_part, write_bundle,
};
use minisign::KeyPair;

use super::*;

const FLASHED: &str = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
const CMDLINE_A: &str = "console=serial0,115200 console=tty1 panic=10 loglevel=4 root=PARTUUID=41524e34-05 rootfstype=squashfs ro rootwait alpharen.slot=a\n";
const CONFIG: &str = "arm_64bit=1\nkernel=kernel8.img\n";

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

struct Disk {
    dir: tempfile::TempDir,
    t: PiTarget,
}

/// A freshly flashed card booted from slot a: both boot partitions hold
/// "old" files (and b a stale overlay), no records.
fn disk() -> Disk {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::create_dir_all(p.join("autoboot")).expect("autoboot");
    std::fs::write(p.join("autoboot/autoboot.txt"), FLASHED).expect("autoboot.txt");
    for s in ['a', 'b'] {
        let boot = p.join(format!("boot-{s}"));
        std::fs::create_dir_all(boot.join("overlays")).expect("boot");
        std::fs::write(boot.join("config.txt"), CONFIG).expect("config");
        std::fs::write(boot.join("kernel8.img"), b"old kernel").expect("kernel");
        std::fs::write(boot.join("overlays/old.dtbo"), b"old").expect("overlay");
        std::fs::write(boot.join("cmdline.txt"), pi::cmdline_for(CMDLINE_A, 'a', s))
            .expect("cmdline");
        std::fs::write(p.join(format!("rootfs-{s}")), vec![0u8; 3 << 20]).expect("rootfs");
    }
    let t = PiTarget {
        booted: (2, false),
        autoboot: p.join("autoboot"),
        boot: [p.join("boot-a"), p.join("boot-b")],
        rootfs: [p.join("rootfs-a"), p.join("rootfs-b")],
    };
    Disk { dir, t }
}

impl Disk {
    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(rel)).unwrap_or_default()
    }

    fn text(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).unwrap_or_default()
    }

    fn states(&self) -> Vec<(String, String)> {
        slots(&self.t)
            .expect("slots")
            .into_iter()
            // The version a record names (the booted slot without one
            // shows this host's os-release).
            .map(|s| {
                let v = s.installed_at.and(s.version).unwrap_or_default();
                (s.state, v)
            })
            .collect()
    }

    /// The firmware's part of a reboot: the `tryboot` flag set by the
    /// argument, cleared at any later reset.
    fn reboot(&mut self, arg: Option<&str>) {
        let a = pi::parse(&self.text("autoboot/autoboot.txt")).expect("autoboot");
        self.t.booted = match arg {
            Some("0 tryboot") => (a.tryboot, true),
            _ => (a.default, false),
        };
    }
}

fn bundle_parts() -> Vec<(String, Vec<u8>)> {
    vec![
        ("rootfs".into(), data((3 << 20) / 2 + 7, 1)),
        ("bcm2711-rpi-4-b.dtb".into(), data(3000, 2)),
        ("config.txt".into(), CONFIG.as_bytes().to_vec()),
        ("fixup4.dat".into(), data(500, 3)),
        ("kernel8.img".into(), data(9000, 4)),
        ("overlays..disable-bt.dtbo".into(), data(700, 5)),
        ("start4.elf".into(), data(6000, 6)),
    ]
}

fn bundle(pair: &KeyPair, parts: &[(String, Vec<u8>)], version: &str) -> Vec<u8> {
    let m = Manifest {
        format: FORMAT_VERSION,
        board: "rpi4-64".into(),
        version: version.into(),
        build_id: "pi-build".into(),
        min_from: "0".into(),
        block_size: alpharen_update::BLOCK_SIZE as u32,
        group_blocks: alpharen_update::GROUP_BLOCKS as u32,
        add_keys: Vec::new(),
        parts: parts
            .iter()
            .map(|(n, d)| describe_part(n, Cursor::new(d)).expect("describe"))
            .collect(),
    }
    .to_bytes();
    let sig = minisign::sign(Some(&pair.pk), &pair.sk, Cursor::new(&m), None, None)
        .expect("sign")
        .into_string();
    let mut out = Vec::new();
    write_bundle(&mut out, &m, &sig, |p| {
        let d = &parts.iter().find(|(n, _)| *n == p.name).expect("part").1;
        Ok(Cursor::new(d.clone()))
    })
    .expect("pack");
    out
}

fn keys(pair: &KeyPair) -> TrustedKeys {
    let text = format!("untrusted comment: k\n{}\n", pair.pk.to_base64());
    TrustedKeys::new(vec![
        TrustedKey::from_pub_file("k.pub", &text).expect("key"),
    ])
}

fn run(d: &Disk, pair: &KeyPair, bytes: &[u8]) -> Result<Done, InstallError> {
    let running = Running {
        board: "rpi4-64".into(),
        version: "0.1.0".into(),
    };
    install(
        Cursor::new(bytes),
        &keys(pair),
        &d.dir.path().join("kept"),
        &running,
        &d.t,
        &|_| {},
    )
}

fn pair() -> KeyPair {
    KeyPair::generate_unencrypted_keypair().expect("key pair")
}

fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn an_install_fills_slot_b_arms_it_and_a_passing_trial_commits_it() {
    let mut d = disk();
    let k = pair();
    let parts = bundle_parts();
    let done = run(&d, &k, &bundle(&k, &parts, "0.2.0")).expect("install");
    assert_eq!((done.slot, done.record.version.as_str()), ('b', "0.2.0"));
    // The parts on b's partitions, `..` as `/`; b's old files gone; a untouched.
    assert_eq!(&d.read("rootfs-b")[..parts[0].1.len()], &parts[0].1[..]);
    assert_eq!(d.read("rootfs-a"), vec![0u8; 3 << 20]);
    assert_eq!(d.read("boot-b/kernel8.img"), parts[4].1);
    assert_eq!(d.read("boot-b/overlays/disable-bt.dtbo"), parts[5].1);
    assert_eq!(d.read("boot-b/start4.elf"), parts[6].1);
    assert!(!d.dir.path().join("boot-b/overlays/old.dtbo").exists());
    assert_eq!(d.read("boot-a/kernel8.img"), b"old kernel");
    assert_eq!(d.text("boot-a/cmdline.txt"), CMDLINE_A);
    assert_eq!(
        d.text("boot-b/cmdline.txt"),
        pi::cmdline_for(CMDLINE_A, 'a', 'b')
    );
    assert!(
        d.text("boot-b/cmdline.txt").contains("-06 ")
            && d.text("boot-b/cmdline.txt").contains("alpharen.slot=b")
    );
    // Armed: [tryboot] names b's partition; its record is not tried yet.
    assert_eq!(d.text("autoboot/autoboot.txt"), FLASHED);
    let rec = d.t.record('b').expect("record");
    assert_eq!(
        (rec.slot.version.as_str(), rec.trial.tried),
        ("0.2.0", false)
    );
    assert_eq!(d.states(), s(&[("good", ""), ("trial", "0.2.0")]));
    // a, as flashed, got a record of what it runs (no install time).
    let a = d.t.record('a').expect("a's record");
    assert_eq!((a.slot.version.as_str(), a.slot.installed_at), ("0.1.0", 0));
    let listed = slots(&d.t).expect("slots");
    assert_eq!((listed[1].tries_left, listed[0].booted), (Some(1), true));
    // The reboot: b marked tried, the argument is "0 tryboot".
    let arg = prepare_reboot(&d.t).expect("prepare");
    assert_eq!(arg, Some("0 tryboot"));
    assert!(d.t.record('b').expect("record").trial.tried);
    d.reboot(arg);
    assert_eq!(d.t.booted, (3, true));
    assert_eq!(d.states(), s(&[("good", ""), ("trial", "0.2.0")]));
    // b on trial reboots (say the gate is slow): no second try.
    assert_eq!(prepare_reboot(&d.t).expect("prepare"), None);
    // b passes the gate: its partition is the default, its record clean.
    assert!(mark_good(&d.t).expect("commit").is_empty());
    assert_eq!(
        d.text("autoboot/autoboot.txt"),
        pi::render(&Autoboot {
            default: 3,
            tryboot: 3
        })
    );
    assert!(!d.t.record('b').expect("record").trial.tried);
    d.reboot(None);
    assert_eq!(d.t.booted, (3, false));
    assert_eq!(d.states(), s(&[("good", ""), ("good", "0.2.0")]));
    // The next install goes into a, from b's cmdline.txt.
    let done = run(&d, &k, &bundle(&k, &parts, "0.3.0")).expect("install into a");
    assert_eq!(done.slot, 'a');
    assert_eq!(d.text("boot-a/cmdline.txt"), CMDLINE_A);
    assert_eq!(d.states(), s(&[("trial", "0.3.0"), ("good", "0.2.0")]));
}

#[test]
fn a_failed_trial_falls_back_and_is_reported_once() {
    let mut d = disk();
    let k = pair();
    run(&d, &k, &bundle(&k, &bundle_parts(), "0.2.0")).expect("install");
    let arg = prepare_reboot(&d.t).expect("prepare");
    d.reboot(arg);
    // b never passes its gate; the next reset boots a (flag one-shot).
    d.reboot(None);
    assert_eq!(d.t.booted, (2, false));
    assert_eq!(d.states(), s(&[("good", ""), ("failed", "0.2.0")]));
    assert_eq!(prepare_reboot(&d.t).expect("prepare"), None, "not again");
    // a passes its gate: b disarmed and reported, then never again.
    let failed = mark_good(&d.t).expect("gate");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].slot, 'b');
    assert_eq!(
        failed[0].record.as_ref().map(|r| r.version.as_str()),
        Some("0.2.0")
    );
    assert_eq!(
        d.text("autoboot/autoboot.txt"),
        pi::render(&Autoboot {
            default: 2,
            tryboot: 2
        })
    );
    assert_eq!(d.states(), s(&[("good", ""), ("failed", "0.2.0")]));
    assert!(mark_good(&d.t).expect("gate").is_empty());
    // A new install into b replaces the failed one.
    run(&d, &k, &bundle(&k, &bundle_parts(), "0.2.1")).expect("reinstall");
    assert_eq!(d.states(), s(&[("good", ""), ("trial", "0.2.1")]));
}

#[test]
fn a_corrupt_or_cut_bundle_leaves_b_invalid_and_disarmed() {
    let d = disk();
    let k = pair();
    let parts = bundle_parts();
    run(&d, &k, &bundle(&k, &parts, "0.2.0")).expect("install");
    let good = bundle(&k, &parts, "0.2.1");
    let mut bad = good.clone();
    let at = bad.len() - 3000;
    bad[at] ^= 1;
    let e = run(&d, &k, &bad).expect_err("corrupt");
    assert!(e.to_string().contains("is corrupt"), "{e}");
    assert_eq!(e.code(), "update_refused");
    // Disarmed, no record: invalid, never booted; a untouched.
    assert_eq!(
        d.text("autoboot/autoboot.txt"),
        pi::render(&Autoboot {
            default: 2,
            tryboot: 2
        })
    );
    assert_eq!(d.t.record('b'), None);
    assert_eq!(d.states(), s(&[("good", ""), ("invalid", "")]));
    assert_eq!(prepare_reboot(&d.t).expect("prepare"), None);
    assert_eq!(d.read("boot-a/kernel8.img"), b"old kernel");
    assert_eq!(d.text("boot-a/cmdline.txt"), CMDLINE_A);
    let e = run(&d, &k, &good[..good.len() / 2]).expect_err("truncated");
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_eq!(d.states(), s(&[("good", ""), ("invalid", "")]));
    run(&d, &k, &good).expect("then a good one");
    assert_eq!(d.states(), s(&[("good", ""), ("trial", "0.2.1")]));
}

#[test]
fn refusals_before_writing_touch_nothing() {
    let mut d = disk();
    let k = pair();
    let before = |d: &Disk| {
        (
            d.text("autoboot/autoboot.txt"),
            d.read("boot-b/kernel8.img"),
            d.read("rootfs-b"),
        )
    };
    let start = before(&d);
    // No kernel part.
    let mut parts = bundle_parts();
    parts.retain(|(n, _)| n != "kernel8.img");
    let e = run(&d, &k, &bundle(&k, &parts, "0.2.0")).expect_err("no kernel");
    assert!(e.to_string().contains("\"kernel8.img\""), "{e}");
    // A part with no place on a boot partition.
    let mut parts = bundle_parts();
    parts.push(("x..".into(), data(10, 9)));
    let e = run(&d, &k, &bundle(&k, &parts, "0.2.0")).expect_err("bad name");
    assert!(matches!(e, InstallError::BadPart { .. }), "{e}");
    // A rootfs larger than the partition.
    let mut parts = bundle_parts();
    parts[0].1 = data((3 << 20) + 1, 1);
    let e = run(&d, &k, &bundle(&k, &parts, "0.2.0")).expect_err("too big");
    assert!(matches!(e, InstallError::TooBig { .. }), "{e}");
    // Signed by another key.
    let e = run(&d, &k, &bundle(&pair(), &bundle_parts(), "0.2.0")).expect_err("key");
    assert!(e.to_string().contains("does not trust"), "{e}");
    assert_eq!(before(&d), start);
    // Booted from b on trial, or from b while a is the default: refused.
    d.t.booted = (3, true);
    let e = run(&d, &k, &bundle(&k, &bundle_parts(), "0.2.0")).expect_err("trial");
    assert!(
        matches!(e, InstallError::Plan(PlanError::BootedOnTrial('b'))),
        "{e}"
    );
    assert_eq!(before(&d), start);
}
