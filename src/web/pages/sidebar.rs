//! The conversation list beside a chat: New chat, a title filter, the pinned conversations, then the most
//! recent ones by date group, with links to the whole history and the archive.

use crate::chat::groups;
use crate::db::conversations::{self, Conversation, Filter};
use crate::util::now_ms;
use crate::web::AppState;

/// How many recent conversations the sidebar lists (the history page has them all).
pub const RECENT: i64 = 60;

pub struct Link {
    pub id: String,
    pub title: String,
    /// The conversation open beside it.
    pub current: bool,
}

pub struct LinkGroup {
    pub label: String,
    pub links: Vec<Link>,
}

pub struct Sidebar {
    pub pinned: Vec<Link>,
    pub groups: Vec<LinkGroup>,
    /// More conversations than listed: the history has the rest.
    pub more: bool,
}

pub async fn load(state: &AppState, user_id: &str, current: Option<&str>) -> sqlx::Result<Sidebar> {
    let link = |c: Conversation| Link {
        current: current == Some(c.id.as_str()),
        id: c.id,
        title: c.title,
    };
    let pinned = conversations::pinned(state.db(), user_id)
        .await?
        .into_iter()
        .map(link)
        .collect();
    let mut recent =
        conversations::page(state.db(), user_id, Filter::default(), None, RECENT + 1).await?;
    let more = recent.len() as i64 > RECENT;
    recent.truncate(RECENT as usize);
    let groups = groups::by_date(recent, |c| c.updated_ms, now_ms())
        .into_iter()
        .map(|(label, run)| LinkGroup {
            label,
            links: run.into_iter().map(link).collect(),
        })
        .collect();
    Ok(Sidebar {
        pinned,
        groups,
        more,
    })
}
