//! The page of a voice channel: who is in it (live), and the controls to join, mute,
//! deafen and leave. Talking needs JavaScript (WebRTC); without it the page says so and
//! still shows who is in.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};

use crate::accounts::CurrentUser;
use crate::error::AppResult;
use crate::servers::context;
use crate::servers::nav::{ChannelNav, RailItem, shell};
use crate::state::AppState;
use crate::web::assets;
use crate::web::layout::Page;

use super::MemberView;
use super::routes::{Room, room};

#[derive(Template, WebTemplate)]
#[template(path = "voice/show.html")]
pub struct VoicePage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    voice: Room,
    /// The roster partial's names.
    room: i64,
    room_name: String,
    members: Vec<MemberView>,
    /// The server's other voice channels, where a moderator can move people.
    other_rooms: Vec<(i64, String)>,
    me: i64,
    controls: Controls,
    voice_js: &'static str,
}

/// What `voice/_controls.html` needs: where the room's endpoints are and what the
/// buttons say. A call's page fills it with its own.
pub struct Controls {
    /// `/v/{id}` or `/c/{id}/call`: `…/rtc`, `…/leave`, `…/mute`, `…/deafen`,
    /// `…/camera`, `…/screen` follow.
    pub base: String,
    /// `RTCPeerConnection`'s ICE servers (TURN, when configured), as JSON.
    pub ice: String,
    pub join: &'static str,
    pub leave: &'static str,
    /// Join as soon as the page loads (a call just started or accepted).
    pub autojoin: bool,
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<VoicePage> {
    let voice = room(&state, &user, id).await?;
    let access = context::require(&state.store, user.id, voice.server_id).await?;
    let shell = shell(&state, &access, Some(id)).await?;
    let other_rooms = shell.nav.groups.iter().flat_map(|g| &g.channels).filter(|c| c.voice && c.id != id).map(|c| (c.id, c.name.clone())).collect();
    let mut page = Page::new(format!("🔊 {} · {}", voice.name, access.shape.server.name), Some(&user));
    page.live_since = Some(crate::store::log::newest(&state.store).await?);
    page.ringing = crate::store::calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    Ok(VoicePage {
        page,
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        room: id,
        room_name: voice.name.clone(),
        members: state.voice.members(id),
        voice,
        other_rooms,
        me: user.id,
        controls: Controls { base: format!("/v/{id}"), ice: state.voice.ice_servers(user.id), join: "Join voice", leave: "Leave voice", autojoin: false },
        voice_js: assets::url("voice.js"),
    })
}
