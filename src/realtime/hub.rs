//! The hub: this instance's open streams, who they belong to, which conversations
//! each user is in, and the fan-out of rendered events to them. Events arrive here
//! in commit order from the dispatcher; membership events change the routing at the
//! point in that order where they happened, so a removed member receives nothing
//! after their removal and an added one everything after it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::delivery::Delivery;
use crate::store::log::{Event, Kind};

/// Deliveries a stream may have queued before it counts as stuck and is dropped (the
/// browser then reconnects and catches up from the log).
const STREAM_QUEUE: usize = 1_024;

pub type StreamRx = mpsc::Receiver<Arc<Delivery>>;

struct Slot {
    id: u64,
    device_id: i64,
    tx: mpsc::Sender<Arc<Delivery>>,
}

#[derive(Default)]
struct UserEntry {
    streams: Vec<Slot>,
    conversations: HashSet<i64>,
}

#[derive(Default)]
struct HubState {
    /// The newest event id handed to streams.
    dispatched: i64,
    users: HashMap<i64, UserEntry>,
    conversations: HashMap<i64, HashSet<i64>>,
    next_stream: u64,
}

#[derive(Default)]
pub struct Hub {
    state: Mutex<HubState>,
}

/// Why `register` did not add a stream.
pub enum Refused {
    /// The hub delivered events newer than the membership snapshot: read it again.
    Stale,
    /// The user already holds the most streams allowed here.
    Full,
}

/// What `register` reports about the user's other streams.
pub struct Registered {
    pub stream_id: u64,
    pub rx: StreamRx,
    /// True when this is the user's first stream on this instance.
    pub first: bool,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves only routing tables behind, which are
        // still consistent enough to keep serving; don't take the process down.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cursor the dispatcher starts from.
    pub fn start_at(&self, newest: i64) {
        let mut state = self.lock();
        state.dispatched = state.dispatched.max(newest);
    }

    pub fn dispatched(&self) -> i64 {
        self.lock().dispatched
    }

    /// Adds a stream for `user_id`, whose conversations were read at event `snapshot`.
    /// Refused as `Stale` when the hub already delivered events newer than the
    /// snapshot (a membership change among them would be missing from it, so read
    /// again), and as `Full` when the user already has `max_streams` here: counted
    /// under the same lock, so simultaneous connects cannot slip past the cap.
    pub fn register(
        &self,
        user_id: i64,
        device_id: i64,
        snapshot: i64,
        conversations: &[i64],
        max_streams: usize,
    ) -> Result<Registered, Refused> {
        let mut state = self.lock();
        if state.users.get(&user_id).is_some_and(|e| e.streams.len() >= max_streams) {
            return Err(Refused::Full);
        }
        if state.dispatched > snapshot {
            return Err(Refused::Stale);
        }
        state.next_stream += 1;
        let stream_id = state.next_stream;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let first = state.users.get(&user_id).is_none_or(|e| e.streams.is_empty());
        if first {
            // A fresh snapshot replaces whatever routing a revoked stream left behind.
            forget_user(&mut state, user_id);
        }
        for &conversation in conversations {
            state.conversations.entry(conversation).or_default().insert(user_id);
        }
        let entry = state.users.entry(user_id).or_default();
        entry.conversations.extend(conversations.iter().copied());
        entry.streams.push(Slot { id: stream_id, device_id, tx });
        Ok(Registered { stream_id, rx, first })
    }

    /// Forgets a stream; true when it was the user's last one here.
    pub fn unregister(&self, user_id: i64, stream_id: u64) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.users.get_mut(&user_id) else { return false };
        entry.streams.retain(|s| s.id != stream_id);
        if !entry.streams.is_empty() {
            return false;
        }
        forget_user(&mut state, user_id);
        true
    }

    /// Ends the streams of signed-out devices: dropping their senders ends them.
    pub fn revoke_devices(&self, device_ids: &[i64]) {
        let mut state = self.lock();
        let farewell = Arc::new(Delivery { revoke: true, ..Delivery::ephemeral(0, bytes::Bytes::new()) });
        for entry in state.users.values_mut() {
            entry.streams.retain(|s| {
                let revoked = device_ids.contains(&s.device_id);
                if revoked {
                    // The page reloads (to the login form) instead of retrying forever.
                    let _ = s.tx.try_send(farewell.clone());
                }
                !revoked
            });
        }
    }

    /// Ends every stream here: the server is stopping. Each browser reconnects after
    /// its `retry:` pause, to another instance or to this one restarted, and resumes
    /// from its cursor; without this, open streams would hold a graceful shutdown forever.
    pub fn close_all(&self) {
        let mut state = self.lock();
        for entry in state.users.values_mut() {
            entry.streams.clear();
        }
    }

    /// The devices behind this instance's streams, each once.
    pub fn device_ids(&self) -> Vec<i64> {
        let state = self.lock();
        let devices: HashSet<i64> = state.users.values().flat_map(|e| e.streams.iter().map(|s| s.device_id)).collect();
        devices.into_iter().collect()
    }

    /// Whether the user has a stream here.
    pub fn is_connected(&self, user_id: i64) -> bool {
        self.lock().users.get(&user_id).is_some_and(|e| !e.streams.is_empty())
    }

    /// Everyone with a stream here who is a member of one of `conversations`.
    pub fn connected_in(&self, conversations: &[i64]) -> Vec<i64> {
        let state = self.lock();
        let mut found = HashSet::new();
        for conversation in conversations {
            // Once everyone connected is found (the usual case in a big server, whose
            // channels share their members), the other channels cannot add anyone.
            if found.len() == state.users.len() {
                break;
            }
            if let Some(users) = state.conversations.get(conversation) {
                found.extend(users.iter().copied());
            }
        }
        found.into_iter().collect()
    }

    /// Which of `user_ids` have a stream here.
    pub fn connected_among(&self, user_ids: &[i64]) -> Vec<i64> {
        let state = self.lock();
        user_ids.iter().copied().filter(|u| state.users.get(u).is_some_and(|e| !e.streams.is_empty())).collect()
    }

    /// Local users in a conversation (those with streams here).
    pub fn local_members(&self, conversation_id: i64) -> Vec<i64> {
        self.lock().conversations.get(&conversation_id).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// Which of `events` someone here could receive (a member of its conversation has a
    /// stream here, or it is about a user who has one), and the registrations counted
    /// so far, for `deliver` to tell whether anyone arrived since. Events nobody here
    /// can receive need not be rendered: in scale mode each instance renders for its
    /// own viewers only, and a conversation nobody has open costs its sends nothing.
    pub fn audience(&self, events: &[Event]) -> (Vec<bool>, u64) {
        let state = self.lock();
        let wanted = events
            .iter()
            .map(|e| {
                state.conversations.get(&e.conversation_id).is_some_and(|users| !users.is_empty())
                    || (matches!(e.kind, Kind::Joined | Kind::Left) && e.user_id.is_some_and(|u| state.users.contains_key(&u)))
            })
            .collect();
        (wanted, state.next_stream)
    }

    /// Hands committed events (in id order) to the streams that may see them, applying
    /// membership changes where they fall in that order (a `Joined` or `Left` event
    /// names its user, so new conversations need no lookup). With `chosen_at`, the
    /// deliveries are those `audience` chose at that count: if a stream registered since
    /// (it may want an event left out), nothing is delivered and false is returned.
    pub fn deliver(&self, deliveries: Vec<Arc<Delivery>>, upto: i64, chosen_at: Option<u64>) -> bool {
        let mut state = self.lock();
        if chosen_at.is_some_and(|count| count != state.next_stream) {
            return false;
        }
        let mut stuck: Vec<(i64, u64)> = Vec::new();
        for delivery in deliveries {
            let conversation = delivery.conversation_id;
            if let Some(user) = delivery.joined() {
                if let Some(entry) = state.users.get_mut(&user) {
                    entry.conversations.insert(conversation);
                    state.conversations.entry(conversation).or_default().insert(user);
                }
            }
            if let Some(users) = state.conversations.get(&conversation) {
                for user in users {
                    send_all(&state.users, *user, &delivery, &mut stuck);
                }
            }
            if let Some(user) = delivery.left() {
                // The removed member hears of their removal, then nothing more.
                if !state.conversations.get(&conversation).is_some_and(|u| u.contains(&user)) {
                    send_all(&state.users, user, &delivery, &mut stuck);
                }
                if let Some(entry) = state.users.get_mut(&user) {
                    entry.conversations.remove(&conversation);
                }
                if let Some(users) = state.conversations.get_mut(&conversation) {
                    users.remove(&user);
                }
            }
        }
        state.dispatched = state.dispatched.max(upto);
        drop_stuck(&mut state, &stuck);
        true
    }

    /// Sends an ephemeral delivery (typing, presence) to the given local users.
    pub fn send_to(&self, users: &[i64], delivery: Arc<Delivery>) {
        let mut state = self.lock();
        let mut stuck = Vec::new();
        for user in users {
            send_all(&state.users, *user, &delivery, &mut stuck);
        }
        drop_stuck(&mut state, &stuck);
    }

    /// Sends an ephemeral delivery to the local members of a conversation.
    pub fn send_to_conversation(&self, conversation_id: i64, delivery: Arc<Delivery>) {
        let users = self.local_members(conversation_id);
        self.send_to(&users, delivery);
    }
}

fn forget_user(state: &mut HubState, user_id: i64) {
    let Some(entry) = state.users.remove(&user_id) else { return };
    for conversation in entry.conversations {
        if let Some(users) = state.conversations.get_mut(&conversation) {
            users.remove(&user_id);
            if users.is_empty() {
                state.conversations.remove(&conversation);
            }
        }
    }
}

fn send_all(users: &HashMap<i64, UserEntry>, user: i64, delivery: &Arc<Delivery>, stuck: &mut Vec<(i64, u64)>) {
    let Some(entry) = users.get(&user) else { return };
    for slot in &entry.streams {
        if slot.tx.try_send(delivery.clone()).is_err() {
            stuck.push((user, slot.id));
        }
    }
}

/// Drops streams whose queue is full or whose reader is gone.
fn drop_stuck(state: &mut HubState, stuck: &[(i64, u64)]) {
    for &(user, stream) in stuck {
        if let Some(entry) = state.users.get_mut(&user) {
            entry.streams.retain(|s| s.id != stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_reaches_connected_members_of_shared_conversations_only() {
        let hub = Hub::default();
        let keep: Vec<Registered> = [(1, vec![10, 11]), (2, vec![11]), (3, vec![12]), (4, vec![10, 12])]
            .into_iter()
            .map(|(user, conversations)| hub.register(user, user, 0, &conversations, 4).ok().expect("registered"))
            .collect();
        let mut heard = hub.connected_in(&[11]);
        heard.sort();
        assert_eq!(heard, vec![1, 2]);
        let mut heard = hub.connected_in(&[10, 11]);
        heard.sort();
        assert_eq!(heard, vec![1, 2, 4]);
        assert_eq!(hub.connected_in(&[99]), Vec::<i64>::new());
        hub.unregister(4, keep[3].stream_id);
        let mut heard = hub.connected_in(&[10, 12]);
        heard.sort();
        assert_eq!(heard, vec![1, 3]);
    }

    fn event(id: i64, conversation_id: i64, kind: Kind, user_id: Option<i64>) -> Event {
        Event { id, conversation_id, user_id, kind, subject_id: None }
    }

    /// Only events someone here can receive are chosen; a stream that registers after
    /// the choice makes the chosen deliveries be refused, so nothing is lost to it.
    #[test]
    fn events_nobody_here_can_receive_are_left_out_until_someone_arrives() {
        let hub = Hub::default();
        let mut alice = hub.register(1, 1, 0, &[10], 4).ok().expect("registered");
        let events = [
            event(1, 10, Kind::Message, Some(2)),
            event(2, 20, Kind::Message, Some(2)),
            event(3, 20, Kind::Joined, Some(1)),
            event(4, 30, Kind::Joined, Some(3)),
        ];
        let (wanted, chosen_at) = hub.audience(&events);
        assert_eq!(wanted, vec![true, false, true, false]);

        let delivery = |e: Event| Arc::new(Delivery { event: Some(e), ..Delivery::ephemeral(e.conversation_id, bytes::Bytes::from_static(b"x")) });
        // Bob (user 3) connects while the chosen events render: event 4 is his.
        let mut bob = hub.register(3, 3, 0, &[], 4).ok().expect("registered");
        let chosen: Vec<_> = [events[0], events[2]].into_iter().map(delivery).collect();
        assert!(!hub.deliver(chosen, 4, Some(chosen_at)), "refused: someone arrived after the choice");
        assert!(alice.rx.try_recv().is_err(), "nothing delivered from a refused batch");
        assert_eq!(hub.dispatched(), 0, "the refused batch is still to do");

        assert!(hub.deliver(events.iter().copied().map(delivery).collect(), 4, None));
        let heard = |rx: &mut StreamRx| std::iter::from_fn(|| rx.try_recv().ok()).filter_map(|d| d.id()).collect::<Vec<_>>();
        assert_eq!(heard(&mut alice.rx), vec![1, 3]);
        assert_eq!(heard(&mut bob.rx), vec![4]);
        assert_eq!(hub.dispatched(), 4);
    }
}
