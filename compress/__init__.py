"""Codecs built on the renderer: scene (.lgs), image (.gsi), video (.gsv), feature memory (.m3)."""
