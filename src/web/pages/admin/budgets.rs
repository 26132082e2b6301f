//! `/admin/budgets`: budgets for people and API keys — money or tokens, per day or month — with what each
//! has used this period; set, replaced and removed here (or with `llmeta budget`).

use super::super::{Chrome, render};
use crate::calls::budgets::{self, BudgetView, Kind, Period, Subject};
use crate::db::explorer;
use crate::domain::Email;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{AdminUser, IdPath};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

pub struct Row {
    pub id: String,
    pub whose: String,
    pub view: BudgetView,
}

#[derive(Template)]
#[template(path = "admin/budgets.html")]
struct BudgetsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    keys: Vec<(String, String)>,
    zone: String,
    notice: Option<String>,
    error: Option<String>,
    currency: &'static str,
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    notice: Option<String>,
    error: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let b = state.calls().budgets();
    let keys = explorer::key_choices(state.db()).await?;
    let mut rows = Vec::new();
    for view in budgets::views(state.db(), b, None).await? {
        let whose = match (&view.row.user_id, &view.row.api_key_id) {
            (Some(u), _) => crate::db::users::by_id(state.db(), u)
                .await?
                .map_or_else(|| u.clone(), |u| u.email),
            (None, Some(k)) => keys.iter().find(|c| &c.id == k).map_or_else(
                || k.clone(),
                |c| {
                    format!(
                        "key {} of {}",
                        super::calls::key_label(&c.name, &c.last4),
                        c.owner_email
                    )
                },
            ),
            _ => String::new(),
        };
        rows.push(Row {
            id: view.row.id.clone(),
            whose,
            view,
        });
    }
    render(
        StatusCode::OK,
        &BudgetsPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            currency: crate::money::label(),
            rows,
            keys: keys
                .into_iter()
                .map(|k| {
                    let label = format!(
                        "{} · {}",
                        k.owner_email,
                        super::calls::key_label(&k.name, &k.last4)
                    );
                    (k.id, label)
                })
                .collect(),
            zone: state.config().budget_time_zone.clone(),
            notice: q.notice,
            error: q.error,
        },
    )
}

fn back(said: Result<String, String>) -> Response {
    super::back_to("/admin/budgets", said)
}

#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    api_key: String,
    kind: String,
    amount: String,
    per: String,
}

/// `POST /admin/budgets`: sets a person's or a key's budget of a kind (replacing the one it had).
pub async fn save(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Form(f): Form<BudgetForm>,
) -> Result<Response, AppError> {
    let (Some(kind), Some(period)) = (Kind::parse(&f.kind), Period::parse(&f.per)) else {
        return Ok(back(Err(
            "Choose money or tokens, per day or per month.".into()
        )));
    };
    let amount = match budgets::parse_amount(kind, &f.amount) {
        Ok(a) => a,
        Err(e) => return Ok(back(Err(e))),
    };
    let (email, key) = (f.email.trim(), f.api_key.trim());
    let subject_id;
    let (subject, whose) = match (email.is_empty(), key.is_empty()) {
        (false, true) => {
            let user = match Email::parse(email) {
                Ok(e) => crate::db::users::by_email(state.db(), &e).await?,
                Err(_) => None,
            };
            let Some(user) = user else {
                return Ok(back(Err(format!("No account has the address {email}."))));
            };
            subject_id = user.id;
            (Subject::User(&subject_id), user.email)
        }
        (true, false) => {
            if crate::db::explorer::key_label(state.db(), key)
                .await?
                .is_none()
            {
                return Ok(back(Err("Choose an API key from the list.".into())));
            }
            (Subject::Key(key), "the API key".to_string())
        }
        _ => {
            return Ok(back(Err(
                "Give either a person's address or an API key, not both.".into(),
            )));
        }
    };
    budgets::set(
        state.db(),
        state.calls().budgets(),
        subject,
        kind,
        amount,
        period,
    )
    .await?;
    Ok(back(Ok(format!(
        "The budget of {whose} is {} a {}.",
        budgets::amount_text(kind, amount),
        period.as_str()
    ))))
}

/// `POST /admin/budgets/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    if !crate::db::budgets::delete(state.db(), &id).await? {
        return Err(AppError::NotFound);
    }
    state.calls().budgets().reload(state.db()).await?;
    Ok(back(Ok("The budget was removed.".into())))
}
