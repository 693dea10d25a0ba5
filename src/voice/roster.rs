//! Who is in each voice room on this instance, with their mute, deafen and speaking
//! state: what the channel list and the voice page show, live.

use std::collections::HashMap;

use askama::Template;

#[derive(Clone, Debug)]
pub struct Member {
    pub peer: u64,
    pub room: i64,
    /// The voice channel's name, for the roster's label.
    pub room_name: String,
    pub user_id: i64,
    pub name: String,
    pub self_muted: bool,
    pub deafened: bool,
    /// Silenced by the server: no SPEAK, or a timeout.
    pub server_muted: bool,
    /// Silenced by a moderator (MUTE_MEMBERS) until they unmute.
    pub mod_muted: bool,
    pub speaking: bool,
    /// Their camera, their screen: on or off, as they set it.
    pub camera: bool,
    pub screen: bool,
}

impl Member {
    pub fn new(peer: u64, room: (i64, &str), user_id: i64, name: &str, server_muted: bool) -> Member {
        Member { peer, room: room.0, room_name: room.1.to_string(), user_id, name: name.to_string(), self_muted: false, deafened: false, server_muted, mod_muted: false, speaking: false, camera: false, screen: false }
    }

    /// Whether what they say reaches no one.
    pub fn silenced(&self) -> bool {
        self.self_muted || self.server_muted || self.mod_muted
    }

    /// Whether their camera and screen reach no one: silenced by the server or a
    /// moderator (muting yourself leaves your camera on, as in Discord).
    pub fn hidden(&self) -> bool {
        self.server_muted || self.mod_muted
    }
}

/// One person in a room, as shown (and as the room's instance tells the others).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct MemberView {
    pub user_id: i64,
    pub name: String,
    pub muted: bool,
    pub server_muted: bool,
    /// Of which by a moderator (what "Unmute" lifts).
    pub mod_muted: bool,
    pub deafened: bool,
    pub speaking: bool,
    /// Shown only while it reaches the others (not when silenced by the server).
    pub camera: bool,
    pub screen: bool,
}

#[derive(Template)]
#[template(path = "voice/_roster.html")]
pub struct RosterFragment<'a> {
    pub room: i64,
    pub room_name: &'a str,
    pub members: &'a [MemberView],
}

/// Rooms by id, in joining order.
#[derive(Default)]
pub struct Roster {
    rooms: HashMap<i64, Vec<Member>>,
}

impl Roster {
    pub fn members(&self, room: i64) -> Vec<MemberView> {
        self.rooms.get(&room).map_or_else(Vec::new, |members| {
            members
                .iter()
                .map(|m| MemberView {
                    user_id: m.user_id,
                    name: m.name.clone(),
                    muted: m.self_muted,
                    server_muted: m.server_muted || m.mod_muted,
                    mod_muted: m.mod_muted,
                    deafened: m.deafened,
                    speaking: m.speaking && !m.silenced(),
                    camera: m.camera && !m.hidden(),
                    screen: m.screen && !m.hidden(),
                })
                .collect()
        })
    }

    /// The rooms with someone in them here: id and name.
    pub fn rooms(&self) -> Vec<(i64, String)> {
        self.rooms.iter().filter_map(|(&id, members)| members.first().map(|m| (id, m.room_name.clone()))).collect()
    }

    /// (user, room) of everyone in a room here.
    pub fn everyone(&self) -> Vec<(i64, i64)> {
        self.rooms.values().flatten().map(|m| (m.user_id, m.room)).collect()
    }

    /// Adds `member`; the user's earlier membership anywhere, which it replaces.
    pub fn put(&mut self, member: Member) -> Option<Member> {
        let old = self.remove_user(member.user_id, None);
        self.rooms.entry(member.room).or_default().push(member);
        old
    }

    /// Removes the user from `room` (or from wherever they are).
    pub fn remove_user(&mut self, user_id: i64, room: Option<i64>) -> Option<Member> {
        self.remove_where(|m| m.user_id == user_id && room.is_none_or(|r| r == m.room))
    }

    pub fn remove_peer(&mut self, peer: u64) -> Option<Member> {
        self.remove_where(|m| m.peer == peer)
    }

    fn remove_where(&mut self, matches: impl Fn(&Member) -> bool) -> Option<Member> {
        let (&room, members) = self.rooms.iter_mut().find(|(_, members)| members.iter().any(&matches))?;
        let at = members.iter().position(&matches)?;
        let member = members.remove(at);
        if members.is_empty() {
            self.rooms.remove(&room);
        }
        Some(member)
    }

    /// Changes the user's entry in `room`; the entry after the change.
    pub fn update(&mut self, user_id: i64, room: i64, change: impl FnOnce(&mut Member)) -> Option<Member> {
        let member = self.rooms.get_mut(&room)?.iter_mut().find(|m| m.user_id == user_id)?;
        change(member);
        Some(member.clone())
    }

    /// Moves the user from `room` to `to`: the name of the room they left, and their entry
    /// in the new one.
    pub fn relocate(&mut self, user_id: i64, room: i64, to: (i64, &str)) -> Option<(String, Member)> {
        let mut member = self.remove_user(user_id, Some(room))?;
        let left = std::mem::take(&mut member.room_name);
        member.room = to.0;
        member.room_name = to.1.to_string();
        member.speaking = false;
        self.rooms.entry(to.0).or_default().push(member.clone());
        Some((left, member))
    }

    /// The room whose roster changed (id and name), if it did.
    pub fn set_speaking(&mut self, peer: u64, on: bool) -> Option<(i64, String)> {
        let member = self.rooms.values_mut().flat_map(|m| m.iter_mut()).find(|m| m.peer == peer)?;
        (member.speaking != on).then(|| {
            member.speaking = on;
            (member.room, member.room_name.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_in_one_room_at_a_time() {
        let mut roster = Roster::default();
        assert!(roster.put(Member::new(1, (10, "v"), 7, "alice", false)).is_none());
        roster.put(Member::new(2, (10, "v"), 8, "bob", false));
        let old = roster.put(Member::new(3, (20, "v"), 7, "alice", false)).expect("alice was in room 10");
        assert_eq!((old.peer, old.room), (1, 10));
        assert_eq!(roster.members(10).iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["bob"]);
        assert_eq!(roster.members(20).iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["alice"]);
        assert!(roster.remove_peer(2).is_some());
        assert!(roster.members(10).is_empty());
    }

    #[test]
    fn a_silenced_person_is_never_shown_speaking() {
        let mut roster = Roster::default();
        roster.put(Member::new(1, (10, "v"), 7, "alice", true));
        assert_eq!(roster.set_speaking(1, true), Some((10, "v".to_string())));
        assert!(!roster.members(10)[0].speaking);
        assert_eq!(roster.set_speaking(1, true), None, "no change, no broadcast");
    }
}
