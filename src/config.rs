//! Layered configuration (DESIGN §13.1).
