"""Decode speed of a .gsv clip on one thread: the 50k-Gaussian mocap performer, 60 frames, gop 30.

Sequential decoding with segment (keyframe + skin binding) loads included, as a player does.
Writes bench/results/video_decode_idle.json. Run it on an idle machine:

    .venv/bin/python bench/video_decode.py
"""
import time, json, torch, numpy as np
torch.set_num_threads(1)
from compress.video import encode_video, VideoSettings, VideoReader
from compress.video.synth import performer_frames
frames, fps = performer_frames(50000, 60)
t=time.time(); res = encode_video(frames, VideoSettings(gop=30)); enc=time.time()-t
bits = len(res.data)*8/(50000*60)
r = VideoReader(res.data); r.frame(0)  # warm numba caches
r = VideoReader(res.data)
ts=[]
for i in range(60):
    t=time.perf_counter(); r.frame(i); ts.append(time.perf_counter()-t)
ts=np.array(ts)
out=dict(gaussians=50000, frames=60, gop=30, bits_per_gaussian_frame=bits, encode_s_per_frame=enc/60,
  decode_fps_incl_segment_loads=60/ts.sum(), keyframe_ms=float(ts[[0,30]].mean()*1000), pframe_ms_median=float(np.median(ts)*1000))
import os; out["load_average"]=os.getloadavg()[0]
print(json.dumps(out, indent=1))
json.dump(out, open("bench/results/video_decode_idle.json","w"), indent=1)
