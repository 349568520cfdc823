//! The `Authenticated` extractor: a verified token from
//! `Authorization: Bearer ...` (or `?token=` where a socket needs it).

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use crate::{
    core::auth::{bearer_token, Claims, Role},
    http::{error::ApiError, state::AppState},
};

/// The token of a request: the `Authorization: Bearer` header, else `?token=`.
pub fn request_token(req: &HttpRequest) -> Option<String> {
    if req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        return bearer_token(req.headers()).map(str::to_owned);
    }
    web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
}

#[derive(serde::Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

/// A request with a valid token.
pub struct Authenticated(pub Claims);

impl Authenticated {
    /// Refuses with 403 unless the token has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "role `{}` may not do this; it needs {}",
                self.0.role.as_str(),
                allowed.join(" or ")
            )))
        }
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered at startup");
        let result = match req.headers().get(actix_web::http::header::AUTHORIZATION) {
            None => Err(ApiError::unauthorized(
                "missing token: send `Authorization: Bearer <token>`",
            )),
            Some(_) => match request_token(req) {
                None => Err(ApiError::unauthorized(
                    "malformed Authorization header: expected `Bearer <token>`",
                )),
                Some(token) => state
                    .keys
                    .verify(&token)
                    .map(Authenticated)
                    .map_err(ApiError::from),
            },
        };
        ready(result)
    }
}
