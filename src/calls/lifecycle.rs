//! A call's life, from the first "Start call" to its line in the conversation: it rings
//! for the other members (a banner on every live page of theirs, and a push), each answers by
//! joining or declining, and it ends when nobody answered in time, everyone declined,
//! the caller hung up first, or — once answered — the talking is over (in a DM when
//! either hangs up, in a group when the last person leaves).
//!
//! A watcher task per call on the instance that started it looks at the room every
//! `WATCH`; hanging up and declining settle at once. Ending is one conditional UPDATE,
//! so whoever gets there first writes the line and the others do nothing.

use std::time::Duration;

use crate::conversations::model::Access;
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::calls::{self, Answer, Call, Outcome};
use crate::store::now_ms;

use super::views::{self, line, state_text};

const WATCH: Duration = Duration::from_millis(500);
/// While a call rings, its banners go out again every this many `WATCH`es: live frames
/// are not replayed, so a page whose stream was (re)connecting when the call started
/// would miss its banner. Placing one again changes nothing where it already is.
const RING_AGAIN: u32 = 4;

/// Starts a call in the conversation, or joins the one going on there: the call.
pub async fn start(state: &AppState, access: &Access, caller: (i64, &str), video: bool) -> AppResult<Call> {
    let conversation_id = access.conversation.id;
    let (mut call, mut created) = calls::start(&state.store, conversation_id, caller.0, video).await?;
    // A call nobody is in and that stopped ringing long ago outlived its watcher (a
    // restart): end it, and start afresh.
    if !created && !call.ringing(now_ms(), state.config.call_ring_ms()) && state.voice.members(conversation_id).is_empty() {
        let outcome = if call.answered_at.is_some() { Outcome::Answered } else { Outcome::Missed };
        end(state, &call, outcome).await?;
        (call, created) = calls::start(&state.store, conversation_id, caller.0, video).await?;
    }
    if created {
        let mut frame = views::ring_frame(&calls::ringing_of(&state.store, call.id).await?)?;
        frame.push_str(&views::state_frame(conversation_id, Some(&call), &state_text(&call, caller.1), false)?);
        state.realtime.send_ephemeral(conversation_id, &frame);
        state.push.call_started(crate::push::Ring { conversation_id, caller_id: caller.0, video });
        tokio::spawn(watch(state.clone(), call.id));
    }
    Ok(call)
}

/// `user_id` is in the call now: it stops ringing on their devices, and if they are
/// not the caller, the call is answered.
pub async fn joined(state: &AppState, call: &Call, user_id: i64) -> AppResult<()> {
    if user_id == call.started_by {
        return Ok(());
    }
    calls::answer(&state.store, call.id, user_id, Answer::Joined).await?;
    let mut frame = views::unring_frame(call.id, &[user_id])?;
    if call.answered_at.is_none() {
        calls::answered(&state.store, call.id).await?;
        if let Some(now) = calls::by_id(&state.store, call.id).await? {
            let caller = calls::caller(&state.store, &now).await?;
            frame.push_str(&views::state_frame(call.conversation_id, Some(&now), &state_text(&now, &caller), false)?);
        }
    }
    state.realtime.send_ephemeral(call.conversation_id, &frame);
    Ok(())
}

/// `user_id` declined: it stops ringing on their devices; when nobody is left to
/// answer and nobody did (the other person in a DM), the call ends.
pub async fn decline(state: &AppState, call: &Call, user_id: i64) -> AppResult<()> {
    calls::answer(&state.store, call.id, user_id, Answer::Declined).await?;
    state.realtime.send_ephemeral(call.conversation_id, &views::unring_frame(call.id, &[user_id])?);
    let now = calls::by_id(&state.store, call.id).await?;
    if let Some(now) = now.filter(|c| c.answered_at.is_none() && c.ended_at.is_none())
        && calls::unanswered(&state.store, &now).await?.is_empty()
    {
        end(state, &now, Outcome::Declined).await?;
    }
    Ok(())
}

/// Someone hung up: the call may be over.
pub async fn left(state: &AppState, call_id: i64, user_id: i64) -> AppResult<()> {
    let Some(call) = calls::by_id(&state.store, call_id).await? else { return Ok(()) };
    settle(state, &call, user_id == call.started_by).await?;
    Ok(())
}

/// Ends the call if it is over, given who is in its room now; `caller_was_in`: the
/// caller joined at some point (until then an empty room is the caller still coming).
/// True once the call ended.
async fn settle(state: &AppState, call: &Call, caller_was_in: bool) -> AppResult<bool> {
    if call.ended_at.is_some() {
        return Ok(true);
    }
    let inside: Vec<i64> = state.voice.members(call.conversation_id).iter().map(|m| m.user_id).collect();
    let dm = calls::in_dm(&state.store, call).await?;
    let outcome = match call.answered_at {
        None if inside.iter().any(|&u| u != call.started_by) => None,
        None if !call.ringing(now_ms(), state.config.call_ring_ms()) => Some(Outcome::Missed),
        None if caller_was_in && inside.is_empty() => Some(Outcome::Cancelled),
        None => None,
        // A DM call is over when either hangs up; a group's when the last one leaves.
        Some(_) if inside.is_empty() || (dm && inside.len() < 2) => Some(Outcome::Answered),
        Some(_) => None,
    };
    match outcome {
        Some(outcome) => end(state, call, outcome).await.map(|_| true),
        None => Ok(false),
    }
}

/// Ends the call (once): its line in the conversation, the banners and the "in
/// progress" gone from every page, and whoever is still in the room out of it.
pub async fn end(state: &AppState, call: &Call, outcome: Outcome) -> AppResult<()> {
    let Some(ended) = calls::end(&state.store, call.id, outcome).await? else { return Ok(()) };
    let caller = calls::caller(&state.store, &ended).await?;
    crate::conversations::post_system(state, ended.conversation_id, ended.started_by, &line(&ended, &caller)).await?;
    let members: Vec<i64> = crate::conversations::store::members(&state.store, ended.conversation_id).await?.iter().map(|m| m.user_id).collect();
    let mut frame = views::unring_frame(ended.id, &members)?;
    frame.push_str(&views::state_frame(ended.conversation_id, None, &state_text(&ended, &caller), true)?);
    state.realtime.send_ephemeral(ended.conversation_id, &frame);
    for member in state.voice.members(ended.conversation_id) {
        crate::voice::cluster::leave(&state.voice, member.user_id, Some(ended.conversation_id)).await;
    }
    Ok(())
}

/// Watches a call until it ends: stops its ringing after `--call-ring-seconds`, ends it when it is over.
async fn watch(state: AppState, call_id: i64) {
    let mut tick = tokio::time::interval(WATCH);
    let (mut caller_was_in, mut rang_out, mut ticks) = (false, false, 0u32);
    loop {
        tick.tick().await;
        ticks += 1;
        let call = match calls::by_id(&state.store, call_id).await {
            Ok(Some(call)) => call,
            Ok(None) => return,
            // The database is busy or away: look again next time.
            Err(_) => continue,
        };
        caller_was_in |= state.voice.members(call.conversation_id).iter().any(|m| m.user_id == call.started_by);
        match settle(&state, &call, caller_was_in).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, call_id, "calls: could not settle a call"),
        }
        let ringing = call.ringing(now_ms(), state.config.call_ring_ms());
        if ringing && ticks % RING_AGAIN == 0
            && let Ok(banners) = calls::ringing_of(&state.store, call.id).await
            && let Ok(frame) = views::ring_frame(&banners)
            && !frame.is_empty()
        {
            state.realtime.send_ephemeral(call.conversation_id, &frame);
        }
        if !rang_out && !ringing {
            rang_out = true;
            if let Ok(users) = calls::unanswered(&state.store, &call).await
                && let Ok(frame) = views::unring_frame(call.id, &users)
            {
                state.realtime.send_ephemeral(call.conversation_id, &frame);
            }
        }
    }
}
