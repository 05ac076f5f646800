//! Credentials: turning what a caller presents into a [`Principal`](mark1_actors::domain::Principal).
//!
//! | module | what it holds |
//! |---|---|
//! | [`keys`] | API keys: making them, parsing them, checking them against the store |

pub mod keys;
