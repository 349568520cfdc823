//! Events in seq order: they reach a room only after their transaction
//! committed, possibly out of order (several writers, several nodes commit in
//! parallel); the room delivers them strictly in seq order, holding back
//! any that arrive early until the gap is filled (from the database if the
//! missing one is slow to come). Transient events wait behind held ones,
//! so nothing overtakes an event sent before it.

use std::time::Duration;

use actix::prelude::*;

use super::Room;
use crate::{
    core::{
        events::{ConnId, Event, SharedEvent},
        metrics::METRICS,
    },
    store::event_log,
};

/// How long an early event waits for the ones before it before the room
/// reads the gap from the database.
pub(super) const GAP_WAIT: Duration = Duration::from_millis(500);

impl Room {
    pub(super) fn deliver(
        &mut self,
        events: Vec<SharedEvent>,
        exclude: Option<ConnId>,
        ctx: &mut Context<Self>,
    ) {
        for event in events {
            match event.seq {
                None if !self.early.is_empty() => {
                    self.held_transients.push((event, exclude.clone()));
                }
                None => self.fan_out(event, exclude.clone()),
                Some(seq) if seq <= self.last_seq => {} // already delivered
                Some(seq) if seq == self.last_seq + 1 => {
                    self.accept(event, exclude.clone());
                    self.drain_early();
                }
                Some(seq) => {
                    self.early.insert(seq, (event, exclude.clone()));
                }
            }
        }
        self.settle(ctx);
    }

    /// After events went in: with nothing held early, no gap check is due
    /// and the transient events held behind them go out; else the gap is
    /// read from the database if it stays open.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        if self.early.is_empty() {
            if let Some(handle) = self.gap_check.take() {
                ctx.cancel_future(handle);
            }
            self.release_transients();
        } else {
            self.schedule_gap_check(ctx);
        }
    }

    fn release_transients(&mut self) {
        for (event, exclude) in std::mem::take(&mut self.held_transients) {
            self.fan_out(event, exclude);
        }
    }

    /// Reads a gap from the database if it is still open after `GAP_WAIT`.
    fn schedule_gap_check(&mut self, ctx: &mut Context<Self>) {
        if self.gap_check.is_none() {
            self.gap_check = Some(ctx.run_later(GAP_WAIT, |room, ctx| {
                room.gap_check = None;
                room.fill_gap(ctx);
            }));
        }
    }

    fn drain_early(&mut self) {
        while let Some(entry) = self.early.first_entry() {
            if *entry.key() > self.last_seq + 1 {
                break;
            }
            let (seq, (event, exclude)) = entry.remove_entry();
            if seq == self.last_seq + 1 {
                self.accept(event, exclude);
            }
        }
    }

    /// Reads events the room should have had by now from the database.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        let Some((&first_early, _)) = self.early.first_key_value() else {
            return;
        };
        let (db, key, from) = (self.config.db.clone(), self.key.clone(), self.last_seq);
        log::warn!(
            "{}: events {}..{} arrived late; reading them from the database",
            self.key,
            from + 1,
            first_early - 1
        );
        let read = async move {
            let records = event_log::fetch_range(&db.read, &key, from, first_early - 1).await?;
            Ok::<_, sea_orm::DbErr>(records.iter().map(Event::from_record).collect::<Vec<_>>())
        };
        ctx.spawn(read.into_actor(self).map(move |res, room, ctx| {
            match res {
                Ok(events) if events.len() as u64 == first_early - 1 - from => {
                    room.deliver(events, None, ctx)
                }
                Ok(events) => {
                    // A hole in the log: never skip it silently. The ring no
                    // longer describes the stream, so it goes, and every
                    // member reconnects to resync (its replay then says
                    // `recovered: false` and it refetches).
                    log::error!(
                        "{}: seqs {}..{} are missing from the log ({} found); resetting the \
                         room and closing its {} member(s) so they resync",
                        room.key,
                        from + 1,
                        first_early - 1,
                        events.len(),
                        room.members.len()
                    );
                    room.reset_ring();
                    room.close_members("the stream was reset; reconnect and replay");
                    room.last_seq = room.last_seq.max(first_early - 1);
                    room.drain_early();
                    room.settle(ctx);
                }
                Err(err) => {
                    log::error!("{}: reading the gap failed: {err}", room.key);
                    room.settle(ctx);
                }
            }
        }));
    }

    pub(super) fn reset_ring(&mut self) {
        METRICS.buffered_events.sub(self.ring.len() as i64);
        self.ring.clear();
    }
}
