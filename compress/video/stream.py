"""Background frame decoding: a prefetch thread filling a bounded ring buffer."""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

from splat.scene import GaussianScene

from .codec import VideoReader


@dataclass
class DecodedFrame:
    """index: frame number; scene: decoded frame; decode_ms: decode time (ms); bytes: the
    frame's share of its segment's bytes (segment bytes / segment frames)."""

    index: int
    scene: GaussianScene | None
    decode_ms: float
    bytes: int
    error: Exception | None = None


class FrameStream:
    """Decode frames ahead of playback on a background thread.

    At most ``capacity`` decoded frames are held (memory stays bounded for any clip
    length). ``next()`` pops the next frame in order (wrapping to 0 when ``loop``);
    ``seek(frame)`` drops the buffer and restarts decoding there. A decode error is
    delivered as a frame with ``error`` set and raised by ``next()``; the stream then
    continues with the following segment.
    """

    def __init__(self, reader: VideoReader, start: int = 0, capacity: int = 8, loop: bool = True):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        src = reader.path if reader.path is not None else bytes(reader._data)
        self._reader = VideoReader(src)  # own reader: decoding state is not shared across threads
        self.info = self._reader.info
        self.capacity = capacity
        self.loop = loop
        self._buf: collections.deque[DecodedFrame] = collections.deque()
        self._cv = threading.Condition()
        self._next_decode = start % max(self.info.n_frames, 1)
        self._gen = 0
        self._closed = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name="gsv-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (len(self._buf) >= self.capacity or self._done):
                    self._cv.wait()
                if self._closed:
                    return
                i, gen = self._next_decode, self._gen
            t0 = time.perf_counter()
            err, scene = None, None
            try:
                scene = self._reader.frame(i)
            except Exception as e:  # delivered to the consumer
                err = e
            ms = (time.perf_counter() - t0) * 1000.0
            s = self.info.segment_of(i)
            seg_frames = self.info.segment_frames[s]
            nbytes = self._reader.segment_bytes(s) // max(seg_frames, 1)
            with self._cv:
                if gen != self._gen:
                    continue
                self._buf.append(DecodedFrame(i, scene, ms, nbytes, err))
                nxt = i + 1
                if err is not None:  # skip the rest of a broken segment
                    nxt = self.info.segment_first[s] + seg_frames
                if nxt >= self.info.n_frames:
                    if self.loop:
                        nxt = 0
                    else:
                        self._done = True
                self._next_decode = nxt
                self._cv.notify_all()

    def next(self, timeout: float | None = None) -> DecodedFrame:
        """The next frame; blocks up to ``timeout`` s (TimeoutError), StopIteration at the
        end of a non-looping clip. Re-raises a decode error (FormatError)."""
        with self._cv:
            ok = self._cv.wait_for(lambda: self._buf or self._closed or (self._done and not self._buf), timeout)
            if not ok:
                raise TimeoutError("no decoded frame within the timeout")
            if self._buf:
                fr = self._buf.popleft()
                self._cv.notify_all()
            elif self._closed:
                raise RuntimeError("stream is closed")
            else:
                raise StopIteration
        if fr.error is not None:
            raise fr.error
        return fr

    def seek(self, frame: int) -> None:
        """Drop buffered frames and continue decoding from ``frame``."""
        if not 0 <= frame < self.info.n_frames:
            raise IndexError(f"frame {frame} outside 0..{self.info.n_frames - 1}")
        with self._cv:
            self._gen += 1
            self._buf.clear()
            self._next_decode = frame
            self._done = False
            self._cv.notify_all()

    def buffered(self) -> int:
        """Frames decoded and waiting."""
        with self._cv:
            return len(self._buf)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._buf.clear()
            self._cv.notify_all()
        self._thread.join(timeout=5.0)
        self._reader.close()

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
