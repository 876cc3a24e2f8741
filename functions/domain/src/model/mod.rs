//! Typed models of what Meta sends (placeholder; filled by the models work).
