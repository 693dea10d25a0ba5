//! The resolution checked against a naive reference on random members and overrides.
//! The reference is written the other way round on purpose: bit by bit on raw `u64`s,
//! looking each rule up as it goes, with bit numbers found through the form keys.

use proptest::prelude::*;

use super::*;

fn bit(key: &str) -> u32 {
    let (p, ..) = ALL.iter().find(|(_, k, ..)| *k == key).expect("a key of ALL");
    p.bits().trailing_zeros()
}

fn has(bits: u64, i: u32) -> bool {
    (bits >> i) & 1 == 1
}

/// One bit's fate through the overrides, in Discord's order.
fn through_overrides(mut on: bool, i: u32, held: &[HeldRole], overrides: &OverrideSet) -> bool {
    if let Some(o) = overrides.everyone {
        if has(o.deny.bits(), i) {
            on = false;
        }
        if has(o.allow.bits(), i) {
            on = true;
        }
    }
    let mine = || overrides.roles.iter().filter(|(id, _)| held.iter().any(|r| r.id == *id)).map(|(_, o)| o);
    if mine().any(|o| has(o.deny.bits(), i)) {
        on = false;
    }
    if mine().any(|o| has(o.allow.bits(), i)) {
        on = true;
    }
    if let Some(o) = overrides.member {
        if has(o.deny.bits(), i) {
            on = false;
        }
        if has(o.allow.bits(), i) {
            on = true;
        }
    }
    on
}

fn reference_channel(member: &Standing, everyone: Permissions, overrides: &OverrideSet) -> u64 {
    let count = ALL.len() as u32;
    let admin = bit("administrator");
    let in_base = |i| has(everyone.bits(), i) || member.roles.iter().any(|r| has(r.permissions.bits(), i));
    if member.is_owner || in_base(admin) {
        return (0..count).map(|i| 1u64 << i).sum();
    }
    let mut after = 0u64;
    for i in 0..count {
        let on = if i == admin { in_base(i) } else { through_overrides(in_base(i), i, member.roles, overrides) };
        if on {
            after |= 1 << i;
        }
    }
    let needs_send = [bit("mention_everyone"), bit("attach_files"), bit("embed_links")];
    let keeps_in_timeout = [bit("view_channel"), bit("read_message_history")];
    let mut result = 0u64;
    for i in 0..count {
        let kept = has(after, i)
            && has(after, bit("view_channel"))
            && (!needs_send.contains(&i) || has(after, bit("send_messages")))
            && (!member.timed_out || keeps_in_timeout.contains(&i));
        if kept {
            result |= 1 << i;
        }
    }
    result
}

fn reference_server(member: &Standing, everyone: Permissions) -> u64 {
    let base = member.roles.iter().fold(everyone.bits(), |b, r| b | r.permissions.bits());
    if member.is_owner || has(base, bit("administrator")) {
        return (1 << ALL.len()) - 1;
    }
    if member.timed_out { base & (1 << bit("view_channel") | 1 << bit("read_message_history")) } else { base }
}

/// Dense and sparse sets, with ADMINISTRATOR rare so the override rules get exercised.
fn perms() -> impl Strategy<Value = Permissions> {
    let admin = Permissions::ADMINISTRATOR.bits();
    (prop_oneof![any::<u64>(), (any::<u64>(), any::<u64>()).prop_map(|(a, b)| a & b)], prop::bool::weighted(0.05))
        .prop_map(move |(bits, is_admin)| Permissions::from_bits(if is_admin { bits | admin } else { bits & !admin }))
}

/// Overrides may carry any bit, ADMINISTRATOR included, which must have no effect.
fn an_override() -> impl Strategy<Value = Override> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, d, sparse)| Override {
        allow: Permissions::from_bits(a & sparse),
        deny: Permissions::from_bits(d & sparse),
    })
}

/// Role ids come from a small range so that overrides often name a held role.
fn held_roles() -> impl Strategy<Value = Vec<HeldRole>> {
    prop::collection::vec((1i64..6, 1i64..8, perms()), 0..4)
        .prop_map(|roles| {
            roles.into_iter().map(|(id, position, permissions)| HeldRole { id, position, permissions }).collect()
        })
}

fn override_set() -> impl Strategy<Value = OverrideSet> {
    (
        prop::option::of(an_override()),
        prop::collection::vec((1i64..6, an_override()), 0..5),
        prop::option::of(an_override()),
    )
        .prop_map(|(everyone, roles, member)| OverrideSet { everyone, roles, member })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn channel_permissions_agree_with_the_reference(
        is_owner in prop::bool::weighted(0.05),
        timed_out in prop::bool::weighted(0.2),
        roles in held_roles(),
        everyone in perms(),
        overrides in override_set(),
    ) {
        let member = Standing { is_owner, timed_out, roles: &roles };
        let got = channel_permissions(&member, everyone, &overrides);
        prop_assert_eq!(got.bits(), reference_channel(&member, everyone, &overrides));
    }

    #[test]
    fn server_permissions_agree_with_the_reference(
        is_owner in prop::bool::weighted(0.05),
        timed_out in prop::bool::weighted(0.2),
        roles in held_roles(),
        everyone in perms(),
    ) {
        let member = Standing { is_owner, timed_out, roles: &roles };
        prop_assert_eq!(server_permissions(&member, everyone).bits(), reference_server(&member, everyone));
    }

    #[test]
    fn two_members_never_both_act_on_each_other(
        a_owner in prop::bool::weighted(0.1),
        b_owner in prop::bool::weighted(0.1),
        a in held_roles(),
        b in held_roles(),
    ) {
        let a = Standing { is_owner: a_owner, timed_out: false, roles: &a };
        let b = Standing { is_owner: b_owner, timed_out: false, roles: &b };
        prop_assert!(!(can_act_on_member(&a, &b) && can_act_on_member(&b, &a)));
    }
}
