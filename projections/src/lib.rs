//! omorg-projections: not yet filled.
