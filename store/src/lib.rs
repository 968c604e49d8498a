//! omorg-store: not yet filled.
