// C++/OpenMP twin of render/cpu/kernels.py:forward_tiles, used only by
// bench/kernel_tech.py to decide between numba and a compiled extension.
// Same algorithm, same data layout, same rules; built with g++ -O3 -march=native.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// exp(-s) for s >= 0: libm's expf, or (with -DPOLY_EXP) the same Cephes-style
// polynomial as render/cpu/_fastmath.py, which gcc can vectorise.
static inline float exp_neg(float s) {
#ifdef POLY_EXP
  float x = std::min(0.f, std::max(-s, -87.f));
  const float n = std::floor(x * 1.44269504f + 0.5f);
  const float r = x - n * 0.693359375f - n * -2.12194440e-4f;
  const float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
                    1.6666665459e-1f) * r + 5.0000001201e-1f) * r * r + r + 1.f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
#else
  return expf(-s);
#endif
}

extern "C" void forward_tiles_cpp(
    const int64_t* tile_offsets, const int64_t* tile_entries, const float* xy, const float* conic,
    const float* opac, const float* color, int D, int tiles_x, int tiles_y, int ts, int width, int height,
    int num_tiles_total, const float* bg, float* out_color, float* out_T, int32_t* out_last,
    float* pair_weight, int32_t* pair_hits) {
  const int P = ts * ts;
  const int ntile = tiles_x * tiles_y;
#pragma omp parallel for schedule(dynamic, 4)
  for (int t = 0; t < num_tiles_total; ++t) {
    const int cam = t / ntile, rem = t - cam * ntile, ty = rem / tiles_x, tx = rem - ty * tiles_x;
    const int x0 = tx * ts, y0 = ty * ts;
    std::vector<float> px(P), py(P), T(P, 1.f), act(P), w(P), acc((size_t)D * P, 0.f);
    std::vector<int32_t> last(P);
    const int64_t start = tile_offsets[t], n = tile_offsets[t + 1] - start;
    int n_live = 0;
    for (int p = 0; p < P; ++p) {
      const int i = p / ts, j = p - i * ts;
      px[p] = float(x0 + j) + 0.5f;
      py[p] = float(y0 + i) + 0.5f;
      last[p] = int32_t(n);
      const bool in = (x0 + j < width) && (y0 + i < height);
      act[p] = in ? 1.f : 0.f;
      n_live += in;
    }
    for (int64_t g = 0; g < n && n_live > 0; ++g) {
      const int64_t k = tile_entries[start + g];
      const float mx = xy[2 * k], my = xy[2 * k + 1];
      const float ca = conic[3 * k], cb = conic[3 * k + 1], cc = conic[3 * k + 2], o = opac[k];
      float wsum = 0.f;
      int hits = 0, stopped = 0;
#pragma omp simd reduction(+ : wsum, hits, stopped)
      for (int p = 0; p < P; ++p) {
        const float dx = mx - px[p], dy = my - py[p];
        const float sig = 0.5f * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
        const float al = std::min(0.99f, o * exp_neg(sig));
        const float Tp = T[p], Tn = Tp * (1.f - al);
        const bool ok = (sig >= 0.f) && (al >= 1.f / 255.f) && (act[p] > 0.f);
        const bool stop = ok && (Tn <= 1e-4f);
        const bool use = ok && (Tn > 1e-4f);
        const float wp = use ? al * Tp : 0.f;
        w[p] = wp;
        T[p] = use ? Tn : Tp;
        act[p] = stop ? 0.f : act[p];
        last[p] = stop ? int32_t(g) : last[p];
        stopped += stop;
        hits += use;
        wsum += wp;
      }
      n_live -= stopped;
      pair_weight[start + g] = wsum;
      pair_hits[start + g] = hits;
      for (int d = 0; d < D; ++d) {
        const float cd = color[k * D + d];
        float* a = acc.data() + (size_t)d * P;
#pragma omp simd
        for (int p = 0; p < P; ++p) a[p] += w[p] * cd;
      }
    }
    for (int p = 0; p < P; ++p) {
      const int i = p / ts, j = p - i * ts, yy = y0 + i, xx = x0 + j;
      if (xx < width && yy < height) {
        const size_t pix = ((size_t)cam * height + yy) * width + xx;
        out_T[pix] = T[p];
        out_last[pix] = last[p];
        for (int d = 0; d < D; ++d) out_color[pix * D + d] = acc[(size_t)d * P + p] + T[p] * bg[cam * D + d];
      }
    }
  }
}
