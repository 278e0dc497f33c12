"""Volumetric video: ``.gsv`` Gaussian sequences with a DualGS-style motion codec.

Tracked input is coded as is; re-sorted input after correspondence recovery
(``correspondence.py``, births and deaths per frame); independently made frames by
render-supervised tracking (``tracking.py``). ``eval.py``: per-frame fidelity.

Public API: :class:`VideoInfo`, :class:`VideoReader`, :class:`FrameStream`,
:class:`DecodedFrame`, :func:`encode_video`, :class:`VideoSettings`, :class:`EncodeResult`,
:func:`read_frames`, :func:`write_video`, :func:`is_tracked`, :func:`detect_mode`,
:func:`decode_video`, :func:`read_video`. Codec API: ``encode_video``/``decode_video`` (bytes)
and ``write_video``/``read_video`` (paths).
"""
from .codec import (MAGIC, MODES, QUALITY, EncodeResult, VideoInfo, VideoReader, VideoSettings, decode_video,
                    detect_mode, encode_video, is_tracked, read_frames, read_video, read_video_info, write_video)
from .stream import DecodedFrame, FrameStream

__all__ = [
    "MAGIC", "MODES", "QUALITY", "detect_mode", "EncodeResult", "VideoInfo", "VideoReader", "VideoSettings",
    "encode_video", "is_tracked", "read_frames", "read_video_info", "write_video", "DecodedFrame", "FrameStream",
    "decode_video", "read_video",
]
