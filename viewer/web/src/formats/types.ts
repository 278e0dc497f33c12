/**
 * The decoded-scene layout every decoder returns: flat float32 arrays in the toolkit's
 * (INRIA / PLY) conventions, exactly the raw parameters of `splat.GaussianScene`.
 * N = count; K = (shDegree + 1)^2 - 1 rest coefficients per channel.
 */
export interface SplatArrays {
  count: number;
  /** 0..3 */
  shDegree: number;
  /** [N*3] world-space centres, PLY frame (x right, y down, z forward). */
  means: Float32Array;
  /** [N*4] quaternions (w, x, y, z), not necessarily unit length. */
  quats: Float32Array;
  /** [N*3] natural log of the per-axis standard deviations. */
  logScales: Float32Array;
  /** [N] opacity logits: opacity = sigmoid(logit). */
  opacityLogits: Float32Array;
  /** [N*3] degree-0 SH coefficient per channel: colour = 0.5 + SH_C0 * dc. */
  shDc: Float32Array;
  /** [N*K*3] higher-order SH, coefficient-major like `sh_rest[n, k, c]` (index (n*K + k)*3 + c). */
  shRest: Float32Array;
}
