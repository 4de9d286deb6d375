//! The activity families against real servers on loopback, in one test binary (one link instead
//! of one per family): `db` on PostgreSQL and SQLite, `email` on an SMTP server and the Resend
//! API's wire format, `http` on loopback HTTP servers, `webhook` on a loopback receiver.
//! `cargo test -p edgeflow-activities --test it FAMILY::` runs one family.

mod db;
mod email;
mod http;
mod webhook;
