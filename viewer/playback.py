"""Playback of a decoded frame stream at the clip's frame rate: play, pause, seek, speed, loop.

:class:`PlaybackController` owns one thread that pulls frames from a prefetching frame
stream (``compress.video.FrameStream``: ``next(timeout)``, ``seek(frame)``,
``buffered()``, ``close()``) and hands each frame to a ``show`` callback when it is due:
frame k after the last (re)start is due at ``t0 + k / (fps * speed)``. A frame pulled when
the one after it is already due is dropped if a later frame is decoded and waiting (the
clip keeps wall-clock time; at most ``max_drops`` in a row); with nothing newer waiting
(the decoder is behind) the late frame is shown at once and the clock restarts from it,
so a slow decoder slows the clip down instead of skipping the frames it paid for. Commands from
any thread (GUI callbacks) only change the requested state and wake the thread, so a
dragged seek slider collapses into the latest position.

Nothing here knows about viser; the stream and the clock are injected, so the logic is
tested on a real ``.gsv`` without a browser. Memory: the stream's ring buffer plus one
frame held here.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

MIN_SPEED = 0.25
MAX_SPEED = 4.0


class FrameSource(Protocol):
    """What the controller needs of a frame stream (``compress.video.FrameStream``)."""

    def next(self, timeout: float | None = None) -> Any: ...

    def seek(self, frame: int) -> None: ...

    def buffered(self) -> int: ...

    def close(self) -> None: ...


@dataclass
class PlaybackStats:
    """Counters (frames) and rolling figures over the last ``window`` frames/seconds."""

    shown: int = 0
    dropped: int = 0
    stalls: int = 0  # waits for the decoder that timed out (buffer empty)
    errors: int = 0
    last_error: str = ""
    decode_ms: float = 0.0  # mean decode time per frame over the last frames pulled
    show_ms: float = 0.0  # mean cost of the show callback (prepare + hand-off)
    shown_fps: float = 0.0  # frames shown per second over the last second


class Rate:
    """Events per second over the last ``span`` seconds."""

    def __init__(self, span: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.span, self.clock = span, clock
        self._t: collections.deque[float] = collections.deque()

    def tick(self) -> None:
        self._t.append(self.clock())
        self._trim()

    def _trim(self) -> None:
        cut = self.clock() - self.span
        while self._t and self._t[0] < cut:
            self._t.popleft()

    def rate(self) -> float:
        self._trim()
        if len(self._t) < 2:
            return 0.0
        # n events spread over the window; (n - 1) intervals between first and last
        dt = max(self._t[-1] - self._t[0], 1e-9)
        return (len(self._t) - 1) / dt

    def reset(self) -> None:
        self._t.clear()


class PlaybackController:
    """Play a frame stream of ``n_frames`` at ``fps`` × speed into ``show(frame)``.

    ``frame`` objects are what the stream yields (``.index``, ``.decode_ms`` are read).
    ``on_state()`` is called (from the playback thread) after play/pause/end changes,
    ``on_error(exc)`` when the stream fails; then playback skips to the next segment
    start if ``segment_start(i)`` (first frame of the segment after frame ``i``) is given,
    else pauses. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        stream: FrameSource,
        *,
        fps: float,
        n_frames: int,
        show: Callable[[Any], None],
        speed: float = 1.0,
        loop: bool = True,
        playing: bool = False,
        start: int = 0,
        max_drops: int = 8,
        pull_timeout: float = 0.25,
        on_state: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        next_segment_start: Callable[[int], int | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fps <= 0 or n_frames <= 0:
            raise ValueError(f"need fps > 0 and n_frames > 0, got fps={fps}, n_frames={n_frames}")
        self.stream = stream
        self.fps, self.n_frames = float(fps), int(n_frames)
        self._show_cb, self._on_state, self._on_error = show, on_state, on_error
        self._next_segment_start = next_segment_start
        self.max_drops, self.pull_timeout = int(max_drops), float(pull_timeout)
        self.clock = clock
        self.stats = PlaybackStats()
        self._decode = collections.deque(maxlen=30)
        self._show_cost = collections.deque(maxlen=30)
        self._rate = Rate(1.0, clock)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._playing = bool(playing)
        self._speed = clamp_speed(speed)
        self._loop = bool(loop)
        self._at_end = False
        self._frame = -1  # index shown last
        self._seek_to: int | None = None
        self._restart_clock = True
        self._gen = 0  # bumped by every command
        self._closed = False
        self._expected = int(start) % self.n_frames  # the index the stream delivers next
        self._thread = threading.Thread(target=self._run, name="playback", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ state (any thread)
    @property
    def frame(self) -> int:
        """Index of the frame shown last (-1 before the first)."""
        return self._frame

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def loop(self) -> bool:
        return self._loop

    @property
    def at_end(self) -> bool:
        """Stopped on the last frame (loop off)."""
        return self._at_end

    def buffered(self) -> int:
        try:
            return int(self.stream.buffered())
        except Exception:
            return 0

    # ------------------------------------------------------------------ commands (any thread)
    def play(self) -> None:
        """Start or resume; at the end of a clip (loop off) this starts again from frame 0."""
        with self._cond:
            if self._playing:
                return
            if self._at_end:
                self._seek_to, self._at_end = 0, False
            self._playing, self._restart_clock = True, True
            self._bump()

    def pause(self) -> None:
        with self._cond:
            if not self._playing:
                return
            self._playing = False
            self._bump()
        self._notify_state()

    def toggle(self) -> None:
        if self._playing:
            self.pause()
        else:
            self.play()

    def seek(self, frame: int) -> None:
        """Show ``frame`` (clamped to the clip) next; playing continues from there."""
        with self._cond:
            self._seek_to = min(max(int(frame), 0), self.n_frames - 1)
            self._at_end = False
            self._bump()

    def set_speed(self, speed: float) -> None:
        """Playback rate multiplier, clamped to [0.25, 4]."""
        with self._cond:
            self._speed, self._restart_clock = clamp_speed(speed), True
            self._bump()

    def set_loop(self, loop: bool) -> None:
        with self._cond:
            self._loop = bool(loop)
            self._bump()

    def wait(self, predicate: Callable[["PlaybackController"], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked after every change) or ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return bool(predicate(self))
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Stop the thread and close the stream (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._bump()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        try:
            self.stream.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ thread
    def _bump(self) -> None:
        self._gen += 1
        self._cond.notify_all()

    def _run(self) -> None:
        held = None  # pulled, not yet shown
        t0, ticks, drops = 0.0, 0, 0
        while True:
            with self._cond:
                while not self._closed and self._seek_to is None and not self._playing:
                    self._cond.wait()
                if self._closed:
                    return
                seek, self._seek_to = self._seek_to, None
                period = 1.0 / (self.fps * self._speed)
                restart, self._restart_clock = self._restart_clock, False
                loop, gen = self._loop, self._gen
            if seek is not None:
                held = self._seek_and_show(seek)
                with self._cond:
                    self._restart_clock = True
                continue
            if held is None and not loop and self._frame == self.n_frames - 1:
                self._stop_at_end()
                continue
            if held is None:
                held = self._pull()
                if held is None:
                    continue
            now = self.clock()
            if restart:
                t0, ticks, drops = now, 0, 0
            due = t0 + ticks * period
            if now >= due + period:  # late by a whole frame
                last_of_clip = not loop and held.index == self.n_frames - 1
                if drops < self.max_drops and not last_of_clip and self.buffered() > 0:
                    # a later frame is decoded already: skip this one to catch up
                    self.stats.dropped += 1
                    held, ticks, drops = None, ticks + 1, drops + 1
                    continue
                # nothing newer to show (the decoder is behind) or too many skipped:
                # show this one now and let the clock restart from it
                t0, ticks = now, 0
            elif due > now:
                with self._cond:
                    if self._gen == gen and not self._closed:
                        self._cond.wait(due - now)
                continue  # re-check state (a command may have arrived) and the time
            self._present(held)
            held, ticks, drops = None, ticks + 1, 0

    def _pull(self, want: int | None = None):
        """The next frame from the stream (None on a timeout or an error)."""
        try:
            for _ in range(64):  # a seek may leave stale frames ahead of the wanted one
                f = self.stream.next(timeout=self.pull_timeout)
                if f is None:
                    self.stats.stalls += 1
                    return None
                if want is None or int(f.index) == want:
                    break
            self._decode.append(float(getattr(f, "decode_ms", 0.0)))
            self.stats.decode_ms = sum(self._decode) / len(self._decode)
            self._expected = (int(f.index) + 1) % self.n_frames
            return f
        except TimeoutError:
            self.stats.stalls += 1
            return None
        except Exception as e:  # noqa: BLE001 - a corrupt segment: report, then skip or pause
            self._fail(e, self._expected if want is None else want)
            return None

    def _fail(self, exc: BaseException, at: int) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:
                pass
        nxt = self._next_segment_start(at) if self._next_segment_start is not None else None
        with self._cond:
            if self._seek_to is None:  # no newer command: skip the bad segment, or stop
                if nxt is None:
                    self._playing = False
                else:
                    self._seek_to = nxt
            self._bump()
        self._notify_state()

    def _seek_and_show(self, frame: int):
        try:
            self.stream.seek(frame)
        except Exception as e:  # noqa: BLE001
            self._fail(e, frame)
            return None
        self._expected = frame
        f = self._pull(want=frame)
        if f is not None:
            self._present(f)
        return None

    def _present(self, f) -> None:
        t = time.perf_counter()
        try:
            self._show_cb(f)
        except Exception as e:  # noqa: BLE001 - a broken client must not stop the clock
            self.stats.errors += 1
            self.stats.last_error = f"{type(e).__name__}: {e}"
        self._show_cost.append(1000 * (time.perf_counter() - t))
        self.stats.show_ms = sum(self._show_cost) / len(self._show_cost)
        self._rate.tick()
        self.stats.shown += 1
        self.stats.shown_fps = self._rate.rate()
        with self._cond:
            self._frame = int(f.index)
            self._cond.notify_all()

    def _stop_at_end(self) -> None:
        with self._cond:
            self._playing, self._at_end = False, True
            self._bump()
        self._rate.reset()
        self._notify_state()

    def _notify_state(self) -> None:
        if self._on_state is not None:
            try:
                self._on_state()
            except Exception:
                pass


def clamp_speed(speed: float) -> float:
    """Speed multiplier clamped to [MIN_SPEED, MAX_SPEED] (NaN -> 1)."""
    s = float(speed)
    if s != s:
        return 1.0
    return min(max(s, MIN_SPEED), MAX_SPEED)
