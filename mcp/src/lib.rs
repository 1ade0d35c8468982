//! MCP federation for Switchboard.
