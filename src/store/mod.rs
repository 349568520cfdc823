//! The database and everything read from or written to it.

pub mod check;
pub mod command;
pub mod db;
pub mod drafts;
pub mod event_log;
pub mod jobs;
pub mod pending_orders;
pub mod receipts;
pub mod secret;
pub mod venue;
