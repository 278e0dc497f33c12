"""Volumetric video: ``.gsv`` Gaussian sequences with a DualGS-style motion codec.

Public API: :class:`VideoInfo`, :class:`VideoReader`, :class:`FrameStream`,
:class:`DecodedFrame`, :func:`encode_video`, :class:`VideoSettings`, :class:`EncodeResult`,
:func:`read_frames`, :func:`write_video`, :func:`is_tracked`.
"""
from .codec import (MAGIC, MODES, QUALITY, EncodeResult, VideoInfo, VideoReader, VideoSettings, detect_mode, encode_video, is_tracked,
                    read_frames, read_video_info, write_video)
from .stream import DecodedFrame, FrameStream

__all__ = [
    "MAGIC", "MODES", "QUALITY", "detect_mode", "EncodeResult", "VideoInfo", "VideoReader", "VideoSettings", "encode_video", "is_tracked",
    "read_frames", "read_video_info", "write_video", "DecodedFrame", "FrameStream",
]
