//! The actors that carry herald's data.
//!
//! A committed event travels: a writer (the [`publisher`], a CRUD or job
//! actor) commits it with its change, then hands it to [`rooms`], which
//! sends it straight to the thread of the user's or venue's [`room`] (the
//! [`registry`] only tracks connections and joins them); the room puts the
//! one serialized frame into every member's send queue, which the socket's
//! connection writes ([`writer`], called by `wsio`). A [`session`] per
//! socket handles what the client sends, read by its [`reader`].

pub mod cashier;
pub mod crud;
pub mod jobs;
pub mod pruner;
pub mod publisher;
pub mod reader;
pub mod registry;
pub mod replay;
pub mod room;
pub mod rooms;
pub mod sampler;
pub mod session;
pub mod writer;
