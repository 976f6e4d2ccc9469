//! Counts a request against the limits its route names (see
//! [`Limit`]): the general limit first, and a request it refuses costs
//! nothing from the others.

use axum::response::{IntoResponse, Response};

use super::route::Limit;
use crate::error::ApiError;
use crate::limits::{ClientIp, Limits, RateInfo};

/// `Ok` carries the tightest limit's headers for the response; `Err` is the 429.
#[allow(clippy::result_large_err)]
pub async fn check(
    limits: &Limits,
    limit: Limit<'_>,
    ip: ClientIp,
) -> Result<Option<RateInfo>, Response> {
    let outcomes = match limit {
        Limit::None => return Ok(None),
        Limit::WebSocket => [Some(limits.ws(ip).await), None],
        Limit::General | Limit::Container(_) | Limit::Preview => {
            let general = limits.general(ip).await;
            let specific = match (&general, limit) {
                (Err(_), _) => None,
                (_, Limit::Container(session)) => Some(limits.container(ip, session).await),
                (_, Limit::Preview) => Some(limits.preview(ip).await),
                _ => None,
            };
            [Some(general), specific]
        }
    };
    let mut tightest = None;
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Ok(info) => tightest = RateInfo::tightest(tightest, info),
            Err(refused) => return Err(ApiError::Limited(refused).into_response()),
        }
    }
    Ok(tightest)
}
