//! The caller's [`Owner`], resolved once per request by the guard and read
//! by handlers as an extractor. A request that reached a handler without
//! one (a route the guard does not authenticate) is refused, never served
//! as "nobody".

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::session::Owner;

impl<S: Send + Sync> FromRequestParts<S> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Owner>()
            .cloned()
            .ok_or_else(|| ApiError::Authentication("Missing or invalid API token".into()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Owner {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Owner>().cloned())
    }
}
