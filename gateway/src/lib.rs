//! The Switchboard gateway.
