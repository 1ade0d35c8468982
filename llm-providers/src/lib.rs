//! LLM API formats, translation and providers for Switchboard.
