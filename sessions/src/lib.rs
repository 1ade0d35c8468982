//! Session tokens, stores, resumption, expiry and drain for Switchboard.
