//! Kubernetes controller for Switchboard.
