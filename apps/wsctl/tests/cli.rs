//! `wsctl` run as a user runs it, one module per command; each is a file beside this one.

mod inbox;
mod publish;
mod sessions;
