use super::*;

/// What board/post-image.sh writes on a new card.
const FLASHED: &str = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";

fn ab(default: u32, tryboot: u32) -> Autoboot {
    Autoboot { default, tryboot }
}

#[test]
fn autoboot_txt_is_read_as_the_firmware_reads_it_and_written_back() {
    assert_eq!(parse(FLASHED), Some(ab(2, 3)));
    assert_eq!(render(&ab(2, 3)), FLASHED);
    // No section header, spaces, comments, other keys, the last value wins.
    let loose = "# A/B\ntryboot_a_b = 1\nboot_partition=2\nboot_partition=3\n[TRYBOOT]\nboot_partition=2\n[none]\nboot_partition=9\n";
    assert_eq!(parse(loose), Some(ab(3, 2)));
    // Without tryboot_a_b=1 the firmware does not switch partitions.
    assert_eq!(
        parse("[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n"),
        None
    );
    assert_eq!(parse("[all]\ntryboot_a_b=1\nboot_partition=2\n"), None);
    assert_eq!(parse("garbage"), None);
    assert_eq!(
        parse("[all]\ntryboot_a_b=1\nboot_partition=x\n[tryboot]\nboot_partition=3\n"),
        None
    );
    assert_eq!((partition('a'), partition('b')), (2, 3));
    assert_eq!(
        (slot_of(2), slot_of(3), slot_of(1)),
        (Some('a'), Some('b'), None)
    );
    assert_eq!(ab(2, 3).armed(), Some('b'));
    assert_eq!(ab(2, 2).armed(), None);
}

#[test]
fn an_install_disarms_first_and_arms_the_other_slot_last() {
    let p = plan(&ab(2, 3), (2, false)).expect("plan");
    assert_eq!(p.target, 'b');
    assert_eq!(p.disarmed, render(&ab(2, 2)));
    assert_eq!(p.armed, render(&ab(2, 3)));
    // From b, after b was committed.
    let p = plan(&ab(3, 3), (3, false)).expect("plan");
    assert_eq!((p.target, p.armed), ('a', render(&ab(3, 2))));
    // Not while on trial, nor from a partition that is not the default.
    assert_eq!(
        plan(&ab(2, 3), (3, true)),
        Err(PlanError::BootedOnTrial('b'))
    );
    assert_eq!(
        plan(&ab(2, 3), (3, false)),
        Err(PlanError::BootedOnTrial('b'))
    );
}

#[test]
fn slot_states_follow_the_trial_through_install_reboot_and_verdict() {
    let fresh = Some(Trial { tried: false });
    let tried = Some(Trial { tried: true });
    // Being written: disarmed, no record.
    assert_eq!(
        slot_state(&ab(2, 2), 'b', (2, false), None),
        SlotState::Invalid
    );
    assert_eq!(
        slot_state(&ab(2, 2), 'a', (2, false), None),
        SlotState::Good
    );
    // Installed and armed: the next reboot tries it.
    let armed = ab(2, 3);
    assert_eq!(
        slot_state(&armed, 'b', (2, false), fresh),
        SlotState::Trial { tries_left: 1 }
    );
    assert_eq!(reboot_arg(&armed, fresh), Some("0 tryboot"));
    assert_eq!(reboot_arg(&ab(2, 2), fresh), None);
    // The trial boot: b runs with the tryboot flag, its one try in use.
    assert_eq!(
        slot_state(&armed, 'b', (3, true), tried),
        SlotState::Trial { tries_left: 0 }
    );
    assert_eq!(slot_state(&armed, 'a', (3, true), None), SlotState::Good);
    // Tried once: a later reboot must not try it again.
    assert_eq!(reboot_arg(&armed, tried), None);
    // It passes: b becomes the default, nothing armed; a stays intact.
    let committed = commit(&armed, (3, true)).expect("commit");
    assert_eq!(committed, render(&ab(3, 3)));
    let after = parse(&committed).expect("parse");
    assert_eq!(slot_state(&after, 'b', (3, false), fresh), SlotState::Good);
    assert_eq!(slot_state(&after, 'a', (3, false), fresh), SlotState::Good);
    assert_eq!(commit(&armed, (2, false)), None, "not a trial");
    assert_eq!(commit(&after, (3, false)), None);
    // It fails instead: the firmware boots a again (flag cleared); a's
    // gate disarms b and reports it.
    assert_eq!(
        slot_state(&armed, 'b', (2, false), tried),
        SlotState::Failed
    );
    assert_eq!(
        after_boot(&armed, (2, false), tried),
        Some((render(&ab(2, 2)), 'b'))
    );
    assert_eq!(
        slot_state(&ab(2, 2), 'b', (2, false), tried),
        SlotState::Failed
    );
    // Armed but not tried yet, or nothing armed: nothing to report.
    assert_eq!(after_boot(&armed, (2, false), fresh), None);
    assert_eq!(after_boot(&ab(2, 2), (2, false), tried), None);
}

#[test]
fn the_new_slots_cmdline_and_boot_files_are_its_own() {
    let a = "console=serial0,115200 console=tty1 panic=10 loglevel=4 root=PARTUUID=41524e34-05 rootfstype=squashfs ro rootwait alpharen.slot=a\n";
    assert_eq!(
        cmdline_for(a, 'a', 'b'),
        "console=serial0,115200 console=tty1 panic=10 loglevel=4 root=PARTUUID=41524e34-06 rootfstype=squashfs ro rootwait alpharen.slot=b\n"
    );
    assert_eq!(cmdline_for(&cmdline_for(a, 'a', 'b'), 'b', 'a'), a);
    assert_eq!(boot_path("kernel8.img").as_deref(), Some("kernel8.img"));
    assert_eq!(
        boot_path("overlays..disable-bt.dtbo").as_deref(),
        Some("overlays/disable-bt.dtbo")
    );
    assert_eq!(boot_path("overlays....x.dtbo"), None);
    assert_eq!(boot_path("x.."), None);
}
