//! omorg-api: not yet filled.
