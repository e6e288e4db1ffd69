//! ZAB consensus core (work in progress).
