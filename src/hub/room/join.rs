//! How a member joins: where it resumes from, and its replay (from the
//! ring, or page by page from the database), ending with `REPLAY_COMPLETE`
//! (dashboards) and the live events held meanwhile.

use actix::prelude::*;
use bytestring::ByteString;

use super::{Join, JoinMode, Member, ResumeFrom, Room};
use crate::{
    core::{
        events::{ConnId, RoomKey, SharedEvent},
        metrics::METRICS,
        wire::{self, cashier, realtime},
    },
    hub::room::replay,
    store::{event_log, venue},
};

impl Room {
    /// Ring events with `since < seq <= upto`, if the ring holds every one
    /// of them. `upto` is where the member's replay ends (the room's seq when
    /// it joined): later events are in its held live events already.
    fn ring_after(&self, since: u64, upto: u64) -> Option<Vec<SharedEvent>> {
        if since >= upto {
            return Some(Vec::new());
        }
        let first = self.ring.front()?.seq?;
        if first > since + 1 {
            return None;
        }
        Some(
            self.ring
                .iter()
                .filter(|e| e.seq.is_some_and(|s| s > since && s <= upto))
                .cloned()
                .collect(),
        )
    }

    /// The seq a `lastEventTs` names, if the ring can tell: its first event
    /// is at or before that time (timestamps strictly increase with seq).
    fn ring_seq_at(&self, after_ms: i64) -> Option<u64> {
        let first = self.ring.front()?;
        if first.created_at > after_ms {
            return None;
        }
        self.ring
            .iter()
            .take_while(|e| e.created_at <= after_ms)
            .last()
            .and_then(|e| e.seq)
    }

    fn add_member(&mut self, conn: ConnId, join: &Join, floor: u64, replaying: bool) {
        let client_id = match &join.mode {
            JoinMode::Cashier { client_id, .. } => Some(client_id.clone()),
            JoinMode::Realtime { .. } => None,
        };
        self.members.insert(
            conn,
            Member {
                queue: join.queue.clone(),
                ctl: join.ctl.clone(),
                floor,
                pending: replaying.then(Vec::new),
                client_id,
                skip_own: false,
            },
        );
    }

    /// A terminal resumes: from now on none of its own broadcasts reach it.
    fn resumes(&mut self, conn: &ConnId) {
        if let Some(member) = self.members.get_mut(conn) {
            member.skip_own = true;
        }
    }

    /// The frame that ends a member's replay: `REPLAY_COMPLETE` on a
    /// dashboard; terminals get none (their `connected` said it all).
    fn replay_complete(
        member: &Member,
        replayed: u64,
        recovered: bool,
        upto: u64,
    ) -> Option<ByteString> {
        if member.client_id.is_some() {
            return None;
        }
        Some(realtime::control_frame(
            realtime::REPLAY_COMPLETE,
            &realtime::ReplayComplete {
                replayed,
                recovered,
                last_seq: upto,
            },
        ))
    }

    /// Sends the replayed events (the ones not already sent page by page,
    /// counted in `sent_before`), the closing frame, then the held live
    /// events, as one batch: a long replay is paced by the socket, not
    /// limited by the queue.
    pub(super) fn finish_replay(
        &mut self,
        conn: &ConnId,
        replay: Vec<SharedEvent>,
        recovered: bool,
        upto: u64,
        sent_before: u64,
    ) {
        let Some(member) = self.members.get_mut(conn) else {
            return;
        };
        let mut sent = sent_before;
        let mut frames = Vec::with_capacity(replay.len() + 1);
        for event in replay {
            // A terminal never gets its own broadcasts back, not even replayed.
            if member.client_id.is_some() && event.origin == member.client_id {
                continue;
            }
            frames.push(event.frame.clone());
            sent += 1;
        }
        if !recovered {
            METRICS.replay_misses.inc();
        }
        METRICS.events_replayed.inc_by(sent - sent_before);
        frames.extend(Self::replay_complete(member, sent, recovered, upto));
        member.floor = member.floor.max(upto);
        let mut live = 0;
        for (event, _) in member.pending.take().unwrap_or_default() {
            if matches!(event.seq, Some(seq) if seq <= upto) || member.is_own(&event) {
                continue;
            }
            frames.push(event.frame.clone());
            live += 1;
        }
        if let Err(err) = member.queue.push_batch(frames) {
            self.drop_member(conn, err);
        } else {
            METRICS.events_delivered.inc_by(live);
        }
    }

    /// Replays `since < seq <= upto` to a member already added with its
    /// live events held: from the ring when it covers the gap, else from the
    /// database page by page; a gap over the maximum is not recovered (the
    /// client refetches over REST, cheaper than a huge replay).
    fn replay_after(&mut self, conn: ConnId, since: u64, upto: u64, ctx: &mut Context<Self>) {
        if upto.saturating_sub(since) > self.config.max_replay {
            return self.finish_replay(&conn, Vec::new(), false, upto, 0);
        }
        if let Some(events) = self.ring_after(since, upto) {
            return self.finish_replay(&conn, events, true, upto, 0);
        }
        let (db, key) = (self.config.db.clone(), self.key.clone());
        let floor = self.retention_floor_ms();
        let check =
            async move { event_log::gap_is_stored(&db.read, &key, since, upto, floor).await };
        ctx.spawn(check.into_actor(self).map(move |res, room, ctx| match res {
            Ok(true) => room.start_db_replay(conn, since, upto, ctx),
            Ok(false) => room.finish_replay(&conn, Vec::new(), false, upto, 0),
            Err(err) => room.replay_failed(&conn, &err),
        }));
    }

    fn start_db_replay(&mut self, conn: ConnId, since: u64, upto: u64, ctx: &mut Context<Self>) {
        let Some(member) = self.members.get(&conn) else {
            return;
        };
        replay::spawn(replay::ReplayTask {
            db: self.config.db.clone(),
            key: self.key.clone(),
            conn: conn.clone(),
            queue: member.queue.clone(),
            since,
            upto,
            skip_origin: member.client_id.clone(),
            room: ctx.address(),
        });
    }

    pub(super) fn replay_failed(&mut self, conn: &ConnId, err: &dyn std::fmt::Display) {
        log::error!("{}: replay failed: {err}", self.key);
        if let Some(member) = self.members.remove(conn) {
            member.queue.close(
                wire::close::INTERNAL,
                "replay failed; reconnect with the same since",
            );
        }
    }

    pub(super) fn join_realtime(
        &mut self,
        join: Join,
        user_id: String,
        device_id: Option<String>,
        from: ResumeFrom,
        ctx: &mut Context<Self>,
    ) {
        let conn = join.conn_id.clone();
        let last_seq = self.last_seq;
        let connected = realtime::control_frame(
            realtime::CONNECTED,
            &realtime::Connected {
                user_id: &user_id,
                connection_id: &conn,
                epoch: &self.config.epoch,
                last_seq,
                heartbeat_sec: self.config.heartbeat_secs,
                device_id: device_id.as_deref(),
            },
        );
        let replaying = from != ResumeFrom::Now;
        self.add_member(conn.clone(), &join, last_seq, replaying);
        self.send_to(&conn, connected);
        let _ = join.done.send(Ok(()));
        match from {
            ResumeFrom::Now => {}
            ResumeFrom::Seq { since, epoch } => {
                let same_stream = epoch.as_deref().is_none_or(|e| e == &*self.config.epoch);
                if !same_stream || since > last_seq {
                    self.finish_replay(&conn, Vec::new(), false, last_seq, 0);
                } else {
                    self.replay_after(conn, since, last_seq, ctx);
                }
            }
            ResumeFrom::Time(after_ms) if after_ms < self.retention_floor_ms() => {
                self.finish_replay(&conn, Vec::new(), false, last_seq, 0);
            }
            ResumeFrom::Time(after_ms) => {
                // `lastEventTs` names a seq; then it is a `since` like any other.
                if let Some(since) = self.ring_seq_at(after_ms) {
                    return self.replay_after(conn, since, last_seq, ctx);
                }
                let (db, key) = (self.config.db.clone(), self.key.clone());
                let resolve =
                    async move { event_log::seq_at_time(&db.read, &key, after_ms, last_seq).await };
                ctx.spawn(
                    resolve
                        .into_actor(self)
                        .map(move |res, room, ctx| match res {
                            Ok(since) => room.replay_after(conn, since, last_seq, ctx),
                            Err(err) => room.replay_failed(&conn, &err),
                        }),
                );
            }
        }
    }

    /// A terminal joins: `connected` with the missed broadcasts when its
    /// `lastSeq` can be filled, else with every device (the state at a seq
    /// read in the same transaction), then live broadcasts.
    pub(super) fn join_cashier(
        &mut self,
        join: Join,
        resume: Option<(u64, bool)>,
        ctx: &mut Context<Self>,
    ) {
        let conn = join.conn_id.clone();
        let last_seq = self.last_seq;
        let max_replay = self.config.max_replay;
        let resumable = resume
            .filter(|&(s, same)| same && s <= last_seq && last_seq - s <= max_replay)
            .map(|(s, _)| s);
        let room_epoch = self.config.epoch.clone();
        self.add_member(conn.clone(), &join, last_seq, true);
        let _ = join.done.send(Ok(()));
        if let Some(events) = resumable.and_then(|since| self.ring_after(since, last_seq)) {
            self.resumes(&conn);
            self.send_to(
                &conn,
                cashier::connected_frame(last_seq, &room_epoch, None, Some(true)),
            );
            return self.finish_replay(&conn, events, true, last_seq, 0);
        }
        let (db, key) = (self.config.db.clone(), self.key.clone());
        let retention_floor = self.retention_floor_ms();
        let read = async move {
            if let Some(since) = resumable {
                if event_log::gap_is_stored(&db.read, &key, since, last_seq, retention_floor)
                    .await?
                {
                    return Ok(venue::Welcome::Resume);
                }
            }
            let RoomKey::Venue(venue_id) = &key else {
                unreachable!("terminals join venue rooms");
            };
            Ok::<_, sea_orm::DbErr>(venue::Welcome::Snapshot(
                venue::snapshot(&db, venue_id).await?,
            ))
        };
        ctx.spawn(read.into_actor(self).map(move |res, room, ctx| match res {
            Ok(venue::Welcome::Resume) => {
                room.resumes(&conn);
                room.send_to(
                    &conn,
                    cashier::connected_frame(last_seq, &room_epoch, None, Some(true)),
                );
                let since = resumable.expect("a resume has a since");
                room.start_db_replay(conn, since, last_seq, ctx);
            }
            Ok(venue::Welcome::Snapshot(snapshot)) => {
                let asked = resume.is_some();
                let frame = cashier::connected_frame(
                    snapshot.seq,
                    &room_epoch,
                    Some(&snapshot.devices),
                    asked.then_some(false),
                );
                room.send_to(&conn, frame);
                room.finish_replay(&conn, Vec::new(), !asked, snapshot.seq, 0);
            }
            Err(err) => {
                log::error!("{}: reading the venue state failed: {err}", room.key);
                if let Some(member) = room.members.remove(&conn) {
                    member
                        .queue
                        .close(wire::close::INTERNAL, "state unavailable; reconnect");
                }
            }
        }));
    }
}
