//! Ventana's test kit.
