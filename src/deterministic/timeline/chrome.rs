//! Chrome trace-event JSON.
