//! herald: a realtime server for order-management dashboards and cashier
//! terminals. One process, one port: dashboards on `/ws/realtime`, cashier
//! terminals on `/ws`, back ends and admins over HTTP (`/api/...`).
//!
//! # Layout
//!
//! Layers, lowest first; each names only itself and the layers above it in
//! this list (`tests/structure.rs` holds the code to that, and to no import
//! circles between modules):
//!
//! | layer | what it holds |
//! |---|---|
//! | [`core`] | what everything shares: [events](core::events) (a [`Record`](core::events::Record) as stored, an [`Event`](core::events::Event) with its wire bytes), [wire shapes](core::wire), [messages](core::messages) sent through a `Recipient`, [tokens](core::auth), [settings](core::config), [metrics](core::metrics) |
//! | [`store`] | the database ([`Db`](store::db::Db)), the [event log](store::event_log), and each domain's reads and [commands](store::command): [drafts](store::drafts), [pending orders](store::pending_orders), [jobs](store::jobs), [venues](store::venue); [receipts](store::receipts) keep a keyed write's answer in its own transaction. No wire bytes are built here |
//! | [`socket`] | one WebSocket: its [connection](socket::connection) off the HTTP/1 dispatcher, its [reader](socket::reader) and its bounded [send queue](socket::queue) |
//! | [`hub`] | the [`Hub`](hub::Hub): every [room](hub::room) of this node (members, seq, ring, fan-out, replay), on the room threads |
//! | [`bus`] | the [`Bus`](bus::Bus): the one way an event reaches the hub, on one node or many; the [node](bus::node)'s row and heartbeat, the [tailer](bus::tailer), [what nodes tell each other](bus::told) |
//! | [`writers`] | the actors that own the writes: [publisher](writers::publisher), [CRUD](writers::crud) (drafts, pending orders, venues), [jobs](writers::jobs), [pruner](writers::pruner) |
//! | [`sessions`] | the [registry](sessions::registry) of open sockets and the two kinds of session: [realtime](sessions::realtime) (dashboards) and [terminal](sessions::terminal) (cashier) |
//! | [`http`] | [routes](http::routes), [`Idempotency-Key`s](http::receipts), middleware, the OpenAPI document, the [server](http::server), [`AppState`](http::state::AppState) |
//! | [`startup`], [`shutdown`], [`cli`] | wiring it all, stopping it, the command line |
//!
//! # One event, from `POST /api/publish` to every socket
//!
//! 1. [`http::routes::publish::publish`] parses the body (a
//!    [`UserId`](core::ids::UserId) per recipient) and sends a
//!    [`Publish`](writers::publisher::Publish) to its worker's
//!    [`Publisher`](writers::publisher::Publisher).
//! 2. The publisher groups the requests that arrived while its last
//!    transaction committed ([group commit](writers::publisher)): one
//!    transaction appends every event to the [event
//!    log](store::event_log::append_many), which gives each its stream's next
//!    seq under the stream's row lock, and one fsync commits them. The
//!    request is answered only after that commit.
//! 3. The committed [`Record`](core::events::Record)s go to
//!    [`Bus::publish`](bus::Bus::publish), the one way in for delivery. It
//!    builds each event's frame once ([`Event::from_record`](core::events::Event::from_record))
//!    and hands the events to this node's [`Hub`](hub::Hub).
//! 4. The hub sends each event straight to the [`Shard`](hub::Shard) of its
//!    room's thread, which hands it to the [`Room`](hub::room::Room). The
//!    room delivers in seq order (holding back an event that arrives early,
//!    [filling a gap](hub::room) from the log if it stays open), keeps it in
//!    its ring for replay, and puts the one shared frame into every
//!    member's [`SendQueue`](socket::queue::SendQueue). A queue that is full
//!    closes its socket with 4008: the device reconnects and replays.
//! 5. Each socket's [connection](socket::connection) writes its queue to the
//!    network.
//!
//! **Across nodes** (several processes on one PostgreSQL): steps 1-5 happen
//! on the node that took the request. Every other node's
//! [`Tailer`](bus::tailer::Tailer), woken by the log's `NOTIFY`, reads the
//! committed rows in commit order and hands them to its own hub the same
//! way (step 4); transient events, kicks and job cancels travel as
//! [`Told`](bus::told::Told) rows. Rooms drop an event they already have,
//! so which path comes first does not matter. A node serves only once its
//! tailer has read where it starts, so nothing committed after a room read
//! the log can fall between the two.
//!
//! A device that reconnects with `since` joins its room, which replays what
//! it missed from the ring, else from the log [a page at a
//! time](hub::room), else answers `recovered: false`.

pub mod bus;
pub mod cli;
pub mod core;
pub mod http;
pub mod hub;
pub mod sessions;
pub mod shutdown;
pub mod socket;
pub mod startup;
pub mod store;
pub mod writers;
