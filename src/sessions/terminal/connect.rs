//! Who a terminal is: its `connect` (token, venue, resume point) and its
//! `refresh_token`, each checked as the upgrade would check it.

use actix::prelude::*;

use super::CashierSession;
use crate::{
    core::{
        auth::{Claims, Role},
        events::RoomKey,
        messages::{ConnInfo, ConnKind, SessionCtl},
        wire::{
            self,
            cashier::{self, codes},
            close,
        },
    },
    hub::room::JoinMode,
    sessions::registry::{Connect, Supersede},
    writers::crud::Barrier,
};

impl CashierSession {
    /// `refresh_token`: a later token for the same terminal and venue.
    pub(super) fn refresh(&mut self, token: &str, ctx: &mut Context<Self>) {
        let claims = match self.keys.verify(token) {
            Ok(claims) => claims,
            Err(err) => return self.error(codes::UNAUTHORIZED, &err.to_string(), ctx),
        };
        let why = match &self.claims {
            _ if !matches!(claims.role, Role::Cashier | Role::Admin) => Some(format!(
                "role `{}` may not use /ws; use a cashier token",
                claims.role.as_str()
            )),
            Some(old) if old.sub != claims.sub || old.role != claims.role => {
                Some("the new token is for another terminal; reconnect instead".into())
            }
            Some(old) if old.venue() != claims.venue() => Some(format!(
                "the new token is for venue `{}`, not `{}`; reconnect instead",
                claims.venue(),
                old.venue()
            )),
            Some(old) if claims.exp <= old.exp => {
                Some("the new token must expire later than the current one".into())
            }
            _ => None,
        };
        if let Some(message) = why {
            return self.error(codes::UNAUTHORIZED, &message, ctx);
        }
        let exp = claims.exp;
        self.claims = Some(claims);
        self.schedule_expiry(ctx);
        self.send(cashier::token_refreshed_frame(exp), ctx);
    }

    /// The venue this terminal may join, or why not.
    fn venue_for(&self, claims: Option<&Claims>) -> Result<String, String> {
        match claims {
            Some(c) if c.role == Role::Admin => Ok(self
                .asked_venue
                .clone()
                .unwrap_or_else(|| c.venue().to_owned())),
            Some(c) => match &self.asked_venue {
                Some(v) if v != c.venue() => Err(format!(
                    "this token is for venue `{}`, not `{v}`",
                    c.venue()
                )),
                _ => Ok(c.venue().to_owned()),
            },
            None => Ok(self.asked_venue.clone().unwrap_or_else(|| "main".into())),
        }
    }

    pub(super) fn on_connect(
        &mut self,
        client_id: String,
        last_seq: Option<u64>,
        token: Option<String>,
        epoch: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        if self.venue.is_some() {
            return self.error(codes::VALIDATION_FAILED, "already connected", ctx);
        }
        if self.claims.is_none() {
            if let Some(token) = token {
                match self.keys.verify(&token) {
                    Ok(c) if matches!(c.role, Role::Cashier | Role::Admin) => {
                        self.claims = Some(c);
                        self.schedule_expiry(ctx);
                    }
                    Ok(c) => {
                        self.error(
                            codes::UNAUTHORIZED,
                            &format!(
                                "role `{}` may not use /ws; use a cashier token",
                                c.role.as_str()
                            ),
                            ctx,
                        );
                        return self.close(close::POLICY, "unauthorized", ctx);
                    }
                    Err(e) => {
                        self.error(codes::UNAUTHORIZED, &e.to_string(), ctx);
                        return self.close(close::POLICY, "unauthorized", ctx);
                    }
                }
            } else if self.config.auth_required {
                self.error(
                    codes::UNAUTHORIZED,
                    "a token is required: add ?token= or a `token` field to connect",
                    ctx,
                );
                return self.close(close::POLICY, "unauthorized", ctx);
            }
        }
        let venue = match self.venue_for(self.claims.as_ref()) {
            Ok(v) => v,
            Err(message) => {
                self.error(codes::UNAUTHORIZED, &message, ctx);
                return self.close(close::POLICY, "unauthorized", ctx);
            }
        };
        self.venue = Some(venue.clone());
        self.client_id = Some(client_id.clone());
        if let Some((limit, max)) = &self.limit {
            limit.set(*max);
        }
        let room_key = RoomKey::Venue(venue);
        let info = ConnInfo {
            node: String::new(),
            id: self.id.clone(),
            kind: ConnKind::Cashier,
            user_id: self
                .claims
                .as_ref()
                .map(|c| c.sub.clone())
                .unwrap_or_else(|| client_id.clone()),
            role: self
                .claims
                .as_ref()
                .map(|c| c.role.as_str())
                .unwrap_or("cashier")
                .to_owned(),
            room: room_key.stream_id(),
            device_id: Some(client_id.clone()),
            remote_addr: self.remote.clone(),
            connected_at: wire::format_ms(wire::now_ms()),
            observer: self.observer,
            room_key,
        };
        let connect = Connect {
            info,
            queue: self.queue.clone(),
            ctl: ctx.address().recipient(),
            mode: JoinMode::Cashier {
                client_id,
                last_seq,
                epoch,
            },
        };
        // Nothing else is handled until `connected` is queued. This
        // terminal's older connections here stop reading first, and the
        // venue's writer applies what was queued before (its last changes
        // on a socket it just lost), so the state it gets has them, in the
        // order they were sent, and nothing of theirs lands after it.
        let (venues, registry) = (self.venues.clone(), self.registry.clone());
        let supersede = Supersede {
            room: connect.info.room_key.clone(),
            client_id: connect.info.device_id.clone().unwrap_or_default(),
            except: self.id.clone(),
        };
        let join = async move {
            for older in registry.send(supersede).await.unwrap_or_default() {
                let _ = older
                    .send(SessionCtl::Replaced)
                    .timeout(std::time::Duration::from_secs(5))
                    .await;
            }
            let _ = venues.send(Barrier).await;
            registry.send(connect).await
        };
        ctx.wait(join.into_actor(self).map(|res, act, ctx| match res {
            Ok(Ok(())) => {}
            Ok(Err(err)) => act.close(err.close_code(), &err.to_string(), ctx),
            Err(_) => act.close(close::INTERNAL, "server busy; reconnect", ctx),
        }));
    }
}
