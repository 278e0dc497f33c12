/**
 * GLSL ES 3.00 shaders of the `.gsi` renderer.
 *
 * renderFs(mode) evaluates the Gaussians at each output pixel exactly as render/image2d does:
 * the pixel centre maps to the image point q = (pixel + origin + 0.5) / scale, each Gaussian of
 * q's tile (in file order, up to the level of detail) has sigma = 0.5 (A dx^2 + C dy^2) + B dx dy
 * with d = q - mu, and weight exp(-sigma) where 0 <= sigma <= ln 255. "sum" adds w c;
 * "topk" keeps the k smallest sigmas (ties: the earlier Gaussian) and outputs
 * sum(w c) / (sum(w) + 1e-6). Values are clamped to [0, 1]; four channels a pass.
 */

/** Fetch element `i` of a data texture laid out row by row, `width` texels a row. */
const FETCH = /* glsl */ `
ivec2 at(uint i, int width) { return ivec2(int(i % uint(width)), int(i / uint(width))); }
`;

export const FULLSCREEN_VS = /* glsl */ `#version 300 es
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
`;

/** The evaluation shader for one render rule ("sum" has no top-k arrays to carry). */
export const renderFs = (mode: "sum" | "topk"): string => /* glsl */ `#version 300 es
#define MODE_SUM ${mode === "sum" ? 1 : 0}
precision highp float;
precision highp int;
precision highp usampler2D;
uniform highp sampler2D uGeom;    // per Gaussian: (mx, my, A/2, C/2)
uniform highp sampler2D uShape;   // per Gaussian: (B, s0, s1, rotation)
uniform highp sampler2D uColor;   // per Gaussian: groups texels of 4 channels
uniform usampler2D uOffsets;      // per tile: list start
uniform usampler2D uIds;          // tile lists
uniform int uTexW;
uniform int uGroups;
uniform int uGroup;
uniform int uCount;               // level of detail: Gaussians [0, uCount)
uniform int uK;
uniform float uScale;             // output pixels per image pixel
uniform vec2 uOrigin;             // output-pixel offset of the canvas's top-left pixel
uniform vec2 uOutSize;            // round(W scale), round(H scale)
uniform float uCanvasH;
uniform float uTile;
uniform ivec2 uTiles;
out vec4 outColor;
${FETCH}
const float SIGMA_MAX = 5.541263545158426;  // ln 255
const int KMAX = 64;

void main() {
  vec2 pix = vec2(floor(gl_FragCoord.x), uCanvasH - 1.0 - floor(gl_FragCoord.y));
  vec2 o = pix + uOrigin + 0.5;            // output-pixel centre
  if (o.x < 0.0 || o.y < 0.0 || o.x >= uOutSize.x || o.y >= uOutSize.y) { outColor = vec4(0.0); return; }
  vec2 q = o / uScale;                     // image point
  ivec2 t = clamp(ivec2(floor(q / uTile)), ivec2(0), uTiles - 1);
  int ti = t.y * uTiles.x + t.x;
  uint start = texelFetch(uOffsets, at(uint(ti), uTexW), 0).r;
  uint end = texelFetch(uOffsets, at(uint(ti + 1), uTexW), 0).r;
  vec4 acc = vec4(0.0);
#if !MODE_SUM
  float tops[KMAX];
  uint topi[KMAX];
  int cnt = 0;
#endif
  for (uint e = start; e < end; e++) {
    uint g = texelFetch(uIds, at(e, uTexW), 0).r;
    if (int(g) >= uCount) break;
    vec4 m = texelFetch(uGeom, at(g, uTexW), 0);
    float b = texelFetch(uShape, at(g, uTexW), 0).x;
    float dx = q.x - m.x, dy = q.y - m.y;
    float sg = m.z * dx * dx + m.w * dy * dy + b * dx * dy;
    if (sg > SIGMA_MAX || sg < 0.0) continue;
#if MODE_SUM
    acc += exp(-sg) * texelFetch(uColor, at(g * uint(uGroups) + uint(uGroup), uTexW), 0);
#else
    if (cnt == uK && sg >= tops[uK - 1]) continue;
    int pos = cnt < uK ? cnt : uK - 1;
    while (pos > 0 && tops[pos - 1] > sg) {
      tops[pos] = tops[pos - 1];
      topi[pos] = topi[pos - 1];
      pos--;
    }
    tops[pos] = sg;
    topi[pos] = g;
    if (cnt < uK) cnt++;
#endif
  }
#if !MODE_SUM
  {
    float ws = 0.0;
    for (int i = 0; i < cnt; i++) {
      float w = exp(-tops[i]);
      ws += w;
      acc += w * texelFetch(uColor, at(topi[i] * uint(uGroups) + uint(uGroup), uTexW), 0);
    }
    acc *= 1.0 / (ws + 1e-6);
  }
#endif
  outColor = clamp(acc, 0.0, 1.0);
}
`;

/** Shows the rendered values: gray, gray + alpha, RGB, RGBA (alpha over the background); outside the image, the background. */
export const DISPLAY_FS = /* glsl */ `#version 300 es
precision highp float;
uniform highp sampler2D uImage;
uniform int uChannels;
uniform vec3 uBackground;
uniform vec2 uOrigin;
uniform vec2 uOutSize;
uniform float uCanvasH;
out vec4 outColor;
void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  vec2 pix = vec2(floor(gl_FragCoord.x), uCanvasH - 1.0 - floor(gl_FragCoord.y));
  vec2 o = pix + uOrigin + 0.5;
  if (o.x < 0.0 || o.y < 0.0 || o.x >= uOutSize.x || o.y >= uOutSize.y) { outColor = vec4(uBackground, 1.0); return; }
  vec4 v = texelFetch(uImage, p, 0);
  vec3 rgb = uChannels < 3 ? v.rrr : v.rgb;
  float a = uChannels == 2 ? v.g : (uChannels == 4 ? v.a : 1.0);
  outColor = vec4(mix(uBackground, rgb, a), 1.0);
}
`;

/** The 2-sigma ellipse of Gaussian gl_InstanceID as a line loop of uSegments vertices. */
export const ELLIPSE_VS = /* glsl */ `#version 300 es
precision highp float;
precision highp int;
uniform highp sampler2D uGeom;
uniform highp sampler2D uShape;
uniform int uTexW;
uniform int uSegments;
uniform float uScale;
uniform vec2 uOrigin;
uniform vec2 uCanvas;
${FETCH}
void main() {
  uint g = uint(gl_InstanceID);
  vec2 mu = texelFetch(uGeom, at(g, uTexW), 0).xy;
  vec4 sh = texelFetch(uShape, at(g, uTexW), 0);
  float t = 6.283185307179586 * float(gl_VertexID) / float(uSegments);
  float cr = cos(sh.w), sr = sin(sh.w);
  vec2 d = 2.0 * (cos(t) * sh.y * vec2(cr, sr) + sin(t) * sh.z * vec2(-sr, cr));
  vec2 px = (mu + d) * uScale - uOrigin;   // canvas pixels, y down
  gl_Position = vec4(px.x / uCanvas.x * 2.0 - 1.0, 1.0 - px.y / uCanvas.y * 2.0, 0.0, 1.0);
}
`;

export const ELLIPSE_FS = /* glsl */ `#version 300 es
precision highp float;
uniform vec4 uColor;
out vec4 outColor;
void main() { outColor = uColor; }
`;
