//! Table tests: one named case per rule of the resolution order, the implicit rules, the
//! server-wide resolution and the hierarchy.

use super::*;

type P = Permissions;

const MODS: i64 = 10;
const HELPERS: i64 = 11;
const MUTED: i64 = 12;

fn role(id: i64, position: i64, permissions: Permissions) -> HeldRole {
    HeldRole { id, position, permissions }
}

fn allow(p: Permissions) -> Override {
    Override { allow: p, deny: P::empty() }
}

fn deny(p: Permissions) -> Override {
    Override { allow: P::empty(), deny: p }
}

fn member(roles: &[HeldRole]) -> Standing<'_> {
    Standing { is_owner: false, timed_out: false, roles }
}

/// One case: who, what @everyone holds, the channel's overrides, and what they end with.
struct Case {
    rule: &'static str,
    is_owner: bool,
    timed_out: bool,
    roles: Vec<HeldRole>,
    everyone: Permissions,
    overrides: OverrideSet,
    expect: Permissions,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            rule: "",
            is_owner: false,
            timed_out: false,
            roles: vec![],
            everyone: DEFAULT_EVERYONE,
            overrides: OverrideSet::default(),
            expect: P::empty(),
        }
    }
}

/// The implicit send rule applied to the defaults, for cases that only take SEND away.
const READ_ONLY_DEFAULTS: Permissions = DEFAULT_EVERYONE
    .difference(P::SEND_MESSAGES)
    .difference(P::ATTACH_FILES)
    .difference(P::EMBED_LINKS);

fn cases() -> Vec<Case> {
    let private = OverrideSet {
        everyone: Some(deny(P::VIEW_CHANNEL)),
        roles: vec![(MODS, allow(P::VIEW_CHANNEL))],
        member: None,
    };
    vec![
        Case { rule: "no overrides: @everyone's permissions", expect: DEFAULT_EVERYONE, ..Case::default() },
        Case {
            rule: "base is @everyone's permissions with every held role's",
            roles: vec![role(MODS, 2, P::MANAGE_MESSAGES), role(HELPERS, 1, P::KICK_MEMBERS)],
            expect: DEFAULT_EVERYONE | P::MANAGE_MESSAGES | P::KICK_MEMBERS,
            ..Case::default()
        },
        Case {
            rule: "owner bypass: everything, whatever the overrides deny",
            is_owner: true,
            everyone: P::empty(),
            overrides: OverrideSet { everyone: Some(deny(P::all())), roles: vec![], member: Some(deny(P::all())) },
            expect: P::all(),
            ..Case::default()
        },
        Case {
            rule: "admin bypasses overrides",
            roles: vec![role(MODS, 1, P::ADMINISTRATOR)],
            overrides: OverrideSet {
                everyone: Some(deny(P::all())),
                roles: vec![(MODS, deny(P::all()))],
                member: Some(deny(P::VIEW_CHANNEL)),
            },
            expect: P::all(),
            ..Case::default()
        },
        Case {
            rule: "admin through @everyone bypasses overrides too",
            everyone: P::ADMINISTRATOR,
            overrides: OverrideSet { everyone: Some(deny(P::VIEW_CHANNEL)), ..OverrideSet::default() },
            expect: P::all(),
            ..Case::default()
        },
        Case {
            rule: "everyone deny takes a base permission away",
            overrides: OverrideSet { everyone: Some(deny(P::ADD_REACTIONS)), ..OverrideSet::default() },
            expect: DEFAULT_EVERYONE - P::ADD_REACTIONS,
            ..Case::default()
        },
        Case {
            rule: "everyone allow adds a permission the base lacks",
            overrides: OverrideSet { everyone: Some(allow(P::MANAGE_MESSAGES)), ..OverrideSet::default() },
            expect: DEFAULT_EVERYONE | P::MANAGE_MESSAGES,
            ..Case::default()
        },
        Case {
            rule: "everyone deny then allow: a bit in both is allowed",
            everyone: DEFAULT_EVERYONE - P::ADD_REACTIONS,
            overrides: OverrideSet {
                everyone: Some(Override { allow: P::ADD_REACTIONS, deny: P::ADD_REACTIONS }),
                ..OverrideSet::default()
            },
            expect: DEFAULT_EVERYONE,
            ..Case::default()
        },
        Case {
            rule: "role allow beats everyone deny (the private channel)",
            roles: vec![role(MODS, 1, P::empty())],
            overrides: private.clone(),
            expect: DEFAULT_EVERYONE,
            ..Case::default()
        },
        Case {
            rule: "role deny beats everyone allow",
            roles: vec![role(MODS, 1, P::empty())],
            overrides: OverrideSet {
                everyone: Some(allow(P::MENTION_EVERYONE)),
                roles: vec![(MODS, deny(P::MENTION_EVERYONE))],
                member: None,
            },
            expect: DEFAULT_EVERYONE,
            ..Case::default()
        },
        Case {
            rule: "role deny beaten by role allow (of another role, whatever the order)",
            roles: vec![role(MODS, 2, P::empty()), role(MUTED, 1, P::empty())],
            overrides: OverrideSet {
                roles: vec![(MODS, allow(P::SEND_MESSAGES)), (MUTED, deny(P::SEND_MESSAGES))],
                ..OverrideSet::default()
            },
            expect: DEFAULT_EVERYONE,
            ..Case::default()
        },
        Case {
            rule: "role deny takes away what a role grants in the base",
            roles: vec![role(MUTED, 1, P::MANAGE_MESSAGES)],
            overrides: OverrideSet {
                roles: vec![(MUTED, deny(P::SEND_MESSAGES | P::MANAGE_MESSAGES))],
                ..OverrideSet::default()
            },
            expect: READ_ONLY_DEFAULTS,
            ..Case::default()
        },
        Case {
            rule: "overrides of roles the member does not hold do not count",
            roles: vec![role(HELPERS, 1, P::empty())],
            overrides: private.clone(),
            expect: P::empty(),
            ..Case::default()
        },
        Case {
            rule: "member deny beats role allow",
            roles: vec![role(MODS, 1, P::empty())],
            overrides: OverrideSet {
                everyone: Some(deny(P::SEND_MESSAGES)),
                roles: vec![(MODS, allow(P::SEND_MESSAGES))],
                member: Some(deny(P::SEND_MESSAGES)),
            },
            expect: READ_ONLY_DEFAULTS,
            ..Case::default()
        },
        Case {
            rule: "member allow beats role deny",
            roles: vec![role(MUTED, 1, P::empty())],
            overrides: OverrideSet {
                roles: vec![(MUTED, deny(P::SEND_MESSAGES))],
                member: Some(allow(P::SEND_MESSAGES)),
                ..OverrideSet::default()
            },
            expect: DEFAULT_EVERYONE,
            ..Case::default()
        },
        Case {
            rule: "member allow beats everyone deny",
            overrides: OverrideSet { member: Some(allow(P::VIEW_CHANNEL)), ..private.clone() },
            expect: DEFAULT_EVERYONE,
            ..Case::default()
        },
        Case {
            rule: "an override cannot make anyone an administrator",
            overrides: OverrideSet {
                member: Some(allow(P::ADMINISTRATOR | P::KICK_MEMBERS)),
                ..OverrideSet::default()
            },
            expect: DEFAULT_EVERYONE | P::KICK_MEMBERS,
            ..Case::default()
        },
        Case {
            rule: "implicit: without VIEW_CHANNEL nothing counts, not even CONNECT or SEND",
            roles: vec![role(MODS, 1, P::MANAGE_MESSAGES | P::KICK_MEMBERS)],
            overrides: OverrideSet { member: Some(deny(P::VIEW_CHANNEL)), ..OverrideSet::default() },
            expect: P::empty(),
            ..Case::default()
        },
        Case {
            rule: "implicit: without SEND_MESSAGES, mentions, files and embeds do not count",
            everyone: DEFAULT_EVERYONE | P::MENTION_EVERYONE,
            overrides: OverrideSet { everyone: Some(deny(P::SEND_MESSAGES)), ..OverrideSet::default() },
            expect: READ_ONLY_DEFAULTS,
            ..Case::default()
        },
        Case {
            rule: "timeout: only VIEW_CHANNEL and READ_MESSAGE_HISTORY are left",
            timed_out: true,
            roles: vec![role(MODS, 1, P::MANAGE_MESSAGES | P::KICK_MEMBERS)],
            expect: P::VIEW_CHANNEL | P::READ_MESSAGE_HISTORY,
            ..Case::default()
        },
        Case {
            rule: "timeout: only what they had of those two",
            timed_out: true,
            overrides: OverrideSet { everyone: Some(deny(P::READ_MESSAGE_HISTORY)), ..OverrideSet::default() },
            expect: P::VIEW_CHANNEL,
            ..Case::default()
        },
        Case {
            rule: "timeout: a channel they cannot see stays unseen",
            timed_out: true,
            overrides: private.clone(),
            expect: P::empty(),
            ..Case::default()
        },
        Case {
            rule: "timeout: the owner is exempt",
            is_owner: true,
            timed_out: true,
            expect: P::all(),
            ..Case::default()
        },
        Case {
            rule: "timeout: administrators are exempt",
            timed_out: true,
            roles: vec![role(MODS, 1, P::ADMINISTRATOR)],
            expect: P::all(),
            ..Case::default()
        },
    ]
}

#[test]
fn every_rule_of_the_channel_resolution_holds() {
    let mut failures = vec![];
    for case in cases() {
        let who = Standing { is_owner: case.is_owner, timed_out: case.timed_out, roles: &case.roles };
        let got = channel_permissions(&who, case.everyone, &case.overrides);
        if got != case.expect {
            let (got, want): (Vec<_>, Vec<_>) = (got.keys().collect(), case.expect.keys().collect());
            failures.push(format!("{}:\n   got {got:?}\n  want {want:?}", case.rule));
        }
    }
    assert!(failures.is_empty(), "{} rule(s) broken:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_synced_channel_resolves_exactly_as_its_category() {
    // The caller passes the category's overrides for a synced channel; the channel's own
    // (stale) overrides must then make no difference.
    let category = OverrideSet {
        everyone: Some(deny(P::VIEW_CHANNEL)),
        roles: vec![(MODS, allow(P::VIEW_CHANNEL | P::MANAGE_MESSAGES))],
        member: None,
    };
    let stale_own = OverrideSet::default();
    let mods = [role(MODS, 1, P::empty())];
    let synced = true;
    let effective = if synced { &category } else { &stale_own };
    for roles in [&mods[..], &[]] {
        assert_eq!(
            channel_permissions(&member(roles), DEFAULT_EVERYONE, effective),
            channel_permissions(&member(roles), DEFAULT_EVERYONE, &category),
        );
    }
    assert!(channel_permissions(&member(&mods), DEFAULT_EVERYONE, effective).contains(P::MANAGE_MESSAGES));
    assert!(channel_permissions(&member(&[]), DEFAULT_EVERYONE, effective).is_empty());
}

#[test]
fn server_permissions_follow_owner_admin_roles_and_timeout() {
    let mods = [role(MODS, 2, P::KICK_MEMBERS | P::MANAGE_MESSAGES)];
    let admin = [role(HELPERS, 1, P::ADMINISTRATOR)];
    let owner = Standing { is_owner: true, timed_out: true, roles: &[] };
    assert_eq!(server_permissions(&owner, P::empty()), P::all(), "owner: all, even timed out");
    assert_eq!(server_permissions(&member(&admin), P::empty()), P::all(), "admin: all");
    assert_eq!(server_permissions(&member(&mods), DEFAULT_EVERYONE), DEFAULT_EVERYONE | mods[0].permissions);
    assert_eq!(server_permissions(&member(&[]), DEFAULT_EVERYONE), DEFAULT_EVERYONE);
    let timed_out = Standing { timed_out: true, ..member(&mods) };
    let left = server_permissions(&timed_out, DEFAULT_EVERYONE);
    assert_eq!(left, P::VIEW_CHANNEL | P::READ_MESSAGE_HISTORY, "timed out: no moderation powers");
}

#[test]
fn the_highest_role_is_the_one_with_the_greatest_position() {
    assert_eq!(highest_position(&[]), 0, "no roles: @everyone's place");
    assert_eq!(highest_position(&[role(1, 3, P::empty()), role(2, 7, P::empty()), role(3, 5, P::empty())]), 7);
}

#[test]
fn only_the_owner_or_a_role_manager_above_the_role_manages_it() {
    let mods = [role(MODS, 5, P::empty())];
    let owner = Standing { is_owner: true, timed_out: false, roles: &[] };
    assert!(can_manage_role(&owner, P::empty(), 99), "owner: any role");
    assert!(can_manage_role(&member(&mods), P::MANAGE_ROLES, 4), "below: yes");
    assert!(!can_manage_role(&member(&mods), P::MANAGE_ROLES, 5), "their own level: no");
    assert!(!can_manage_role(&member(&mods), P::MANAGE_ROLES, 6), "above: no");
    assert!(!can_manage_role(&member(&mods), DEFAULT_EVERYONE, 4), "without MANAGE_ROLES: no");
    assert!(can_manage_role(&member(&mods), P::MANAGE_ROLES, 0), "@everyone sits below every role");
}

#[test]
fn members_act_only_on_members_ranked_below_them() {
    let admin = [role(1, 9, P::ADMINISTRATOR)];
    let moderator = [role(2, 5, P::KICK_MEMBERS)];
    let other_moderator = [role(3, 5, P::KICK_MEMBERS), role(4, 1, P::empty())];
    let owner = Standing { is_owner: true, timed_out: false, roles: &[] };
    assert!(can_act_on_member(&owner, &member(&admin)), "the owner acts on anyone else");
    assert!(!can_act_on_member(&owner, &owner), "not even the owner on themselves");
    assert!(!can_act_on_member(&member(&admin), &owner), "nobody acts on the owner");
    assert!(can_act_on_member(&member(&admin), &member(&moderator)));
    assert!(!can_act_on_member(&member(&moderator), &member(&admin)), "a moderator cannot kick the admin");
    assert!(!can_act_on_member(&member(&moderator), &member(&other_moderator)), "equal rank: no");
    assert!(!can_act_on_member(&member(&moderator), &member(&moderator)), "nobody acts on themselves");
    assert!(can_act_on_member(&member(&moderator), &member(&[])), "above a member with no roles");
    let low_admin = [role(5, 1, P::ADMINISTRATOR)];
    assert!(!can_act_on_member(&member(&low_admin), &member(&moderator)), "ADMINISTRATOR does not lift the hierarchy");
}

#[test]
fn only_held_permissions_can_be_granted() {
    let moderator = P::MANAGE_ROLES | P::KICK_MEMBERS | P::VIEW_CHANNEL;
    assert!(can_grant(moderator, P::KICK_MEMBERS | P::VIEW_CHANNEL));
    assert!(can_grant(moderator, P::empty()));
    assert!(!can_grant(moderator, P::KICK_MEMBERS | P::BAN_MEMBERS), "a moderator cannot grant what they lack");
    assert!(!can_grant(moderator, P::ADMINISTRATOR));
    assert!(can_grant(P::ADMINISTRATOR, P::all()), "administrators grant anything");
    let owner = server_permissions(&Standing { is_owner: true, timed_out: false, roles: &[] }, P::empty());
    assert!(can_grant(owner, P::all()), "so does the owner");
}

#[test]
fn bit_positions_never_change() {
    // Stored in the database: renumbering a permission would silently regrant it.
    let pinned = [
        "view_channel", "send_messages", "read_message_history", "add_reactions", "attach_files",
        "embed_links", "mention_everyone", "manage_messages", "manage_channels", "manage_roles",
        "manage_server", "create_invite", "kick_members", "ban_members", "moderate_members",
        "view_audit_log", "connect", "speak", "mute_members", "administrator",
    ];
    assert_eq!(ALL.len(), pinned.len());
    for (bit, key) in pinned.iter().enumerate() {
        assert_eq!(parse_keys([*key]).bits(), 1 << bit, "{key}");
    }
    assert_eq!(P::all().bits(), (1 << pinned.len()) - 1);
}

#[test]
fn the_table_has_a_distinct_key_label_and_help_for_every_permission() {
    for (i, (p, key, label, help)) in ALL.iter().enumerate() {
        assert_eq!(p.bits().count_ones(), 1, "{key} is one bit");
        assert!(!label.is_empty() && !help.is_empty(), "{key} has a label and help");
        assert!(ALL[i + 1..].iter().all(|(q, k, ..)| q != p && k != key), "{key} is unique");
    }
}

#[test]
fn form_keys_round_trip_and_unknown_keys_grant_nothing() {
    let set = P::VIEW_CHANNEL | P::KICK_MEMBERS | P::ADMINISTRATOR;
    assert_eq!(set.keys().collect::<Vec<_>>(), ["view_channel", "kick_members", "administrator"]);
    assert_eq!(parse_keys(set.keys()), set);
    assert_eq!(parse_keys(["speak", "fly", "", "SPEAK"]), P::SPEAK);
    assert_eq!(parse_keys(P::all().keys()), P::all());
}

#[test]
fn stored_bits_this_build_does_not_know_are_dropped() {
    assert_eq!(P::from_bits(u64::MAX), P::all());
    assert_eq!(P::from_bits(DEFAULT_EVERYONE.bits()), DEFAULT_EVERYONE);
}

#[test]
fn set_operations_and_defaults() {
    let a = P::VIEW_CHANNEL | P::SEND_MESSAGES;
    assert!(a.contains(P::VIEW_CHANNEL) && !a.contains(P::VIEW_CHANNEL | P::SPEAK));
    assert!(a.intersects(P::SEND_MESSAGES | P::SPEAK) && !a.intersects(P::SPEAK));
    assert_eq!(a & (P::SEND_MESSAGES | P::SPEAK), P::SEND_MESSAGES);
    assert_eq!(a - P::SEND_MESSAGES, P::VIEW_CHANNEL);
    assert!(P::empty().is_empty() && P::default().is_empty());
    let defaults: Vec<_> = DEFAULT_EVERYONE.keys().collect();
    assert_eq!(defaults, [
        "view_channel", "send_messages", "read_message_history", "add_reactions", "attach_files",
        "embed_links", "create_invite", "connect", "speak",
    ]);
}
