"""Splat file formats: one module per format, dispatched by magic bytes and extension."""
