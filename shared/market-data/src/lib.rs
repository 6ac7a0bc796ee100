//! Market data: placeholder, being written.
