/**
 * `GsiRenderer`: draws a decoded `.gsi` image (`Gaussians2D`) into a WebGL2 canvas with the
 * renderer of render/image2d, at any resolution, with pan/zoom, a level-of-detail slider and
 * a 2-sigma ellipse overlay.
 *
 *   const r = new GsiRenderer(canvas);
 *   r.load(decodeGsi(bytes, { file: "photo.gsi" }));   // uploads once; every later view reuses it
 *   r.lod = 0.25; r.overlay = true; r.setView({ scale: 4, x: 100, y: 80 });
 *
 * The Gaussians, their tile index and colours are uploaded to the GPU once per `load`; a
 * view (zoom, pan, canvas size), a level of detail or the overlay only redraws.
 */
import { wirePanZoom } from "./pointer.js";
import type { Gaussians2D } from "../formats/gsi.js";
import { lodCount, prepareImage, type PreparedImage, type TileIndex } from "./tiles.js";
import { DISPLAY_FS, ELLIPSE_FS, ELLIPSE_VS, FULLSCREEN_VS, renderFs } from "./shaders.js";

/** The view: output pixels per image pixel, and the output pixel at the canvas's top-left corner.
 * Canvas pixel (i, j) shows output pixel (i + x, j + y) of the image rendered at `scale`, i.e.
 * `splat render-image --scale S --crop x,y,w,h` for integer x, y. */
export interface ImageView {
  scale: number;
  x: number;
  y: number;
}

export interface GsiRendererOptions {
  /** wheel zoom, drag pan and double-click fit on the canvas (default true) */
  interactive?: boolean;
  /** background outside the image and under transparent pixels, RGB in [0, 1] (default dark gray) */
  background?: [number, number, number];
  /** ellipse overlay colour, RGBA in [0, 1] */
  overlayColor?: [number, number, number, number];
  /** tile side in image pixels (default: 8, larger for huge images) */
  tile?: number;
  /** keep the drawing buffer at the canvas's CSS size times devicePixelRatio (ResizeObserver; default false) */
  autoSize?: boolean;
}

/** What the renderer did: uploads count GPU uploads of Gaussian data (one per `load`). */
export interface GsiRenderStats {
  uploads: number;
  renders: number;
  /** CPU time of the last draw call sequence (ms; the GPU may still be working) */
  lastMs: number;
  /** ms to build the tile index at the last load */
  indexMs: number;
  gaussians: number;
  used: number;
  tileEntries: number;
}

/** A rendered view read back: [height * width * channels] values in [0, 1], top row first. */
export interface RenderedPixels {
  width: number;
  height: number;
  channels: number;
  data: Float32Array;
}

interface Uploaded {
  g: Gaussians2D;
  /** what was given to `load` (kept so a restored context uploads again without re-indexing) */
  prepared?: PreparedImage;
  geom: WebGLTexture;
  shape: WebGLTexture;
  color: WebGLTexture;
  offsets: WebGLTexture;
  ids: WebGLTexture;
  groups: number;
  /** the tile grid (its lists live on the GPU only) */
  grid: Pick<TileIndex, "tile" | "tilesX" | "tilesY">;
}

const SEGMENTS = 48;

/**
 * Events (dispatched on the renderer, an EventTarget): `render` (detail: {@link GsiRenderStats}) after
 * each draw, `view` (detail: {@link ImageView}) when the view changes, `lod` (detail: {fraction, count}).
 */
export class GsiRenderer extends EventTarget {
  readonly canvas: HTMLCanvasElement;
  readonly gl: WebGL2RenderingContext;
  readonly stats: GsiRenderStats = { uploads: 0, renders: 0, lastMs: 0, indexMs: 0, gaussians: 0, used: 0, tileEntries: 0 };
  /** whether results are kept in float32 (EXT_color_buffer_float); otherwise 8 bits (read-only) */
  floatTarget = false;
  private readonly texW: number;
  /** the evaluation programs by render rule, compiled on first use */
  private readonly renderProgs = new Map<string, WebGLProgram>();
  private displayProg!: WebGLProgram;
  private ellipseProg!: WebGLProgram;
  private vao!: WebGLVertexArrayObject;
  private readonly background: [number, number, number];
  private readonly overlayColor: [number, number, number, number];
  private readonly tileOption?: number;
  private data: Uploaded | null = null;
  private fbo: WebGLFramebuffer | null = null;
  private target: WebGLTexture | null = null;
  private targetSize = [0, 0];
  private _view: ImageView = { scale: 1, x: 0, y: 0 };
  private _lod = 1;
  private _overlay = false;
  private frame = 0;
  private readonly detach: (() => void)[] = [];

  constructor(canvas: HTMLCanvasElement, options: GsiRendererOptions = {}) {
    super();
    this.canvas = canvas;
    const gl = canvas.getContext("webgl2", { antialias: false, premultipliedAlpha: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("this browser has no WebGL2");
    this.gl = gl;
    this.texW = Math.min(4096, gl.getParameter(gl.MAX_TEXTURE_SIZE) as number);
    this.initGl();
    this.background = options.background ?? [0.12, 0.12, 0.12];
    this.overlayColor = options.overlayColor ?? [0.1, 1.0, 0.3, 0.6];
    this.tileOption = options.tile;
    if (options.interactive ?? true) this.attachControls();
    if (options.autoSize) this.observeSize();
    // a lost context (GPU reset, too many contexts) comes back with the Gaussians uploaded again from memory
    const lost = (e: Event) => {
      e.preventDefault();
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
    };
    const restored = () => {
      this.initGl();
      const d = this.data;
      this.data = null;  // its textures went with the context
      if (d) this.upload(d.g, d.prepared);
      this.requestRender();
    };
    canvas.addEventListener("webglcontextlost", lost);
    canvas.addEventListener("webglcontextrestored", restored);
    this.detach.push(() => {
      canvas.removeEventListener("webglcontextlost", lost);
      canvas.removeEventListener("webglcontextrestored", restored);
    });
  }

  /** Programs, vertex array and result target of a new (or restored) context. */
  private initGl(): void {
    const gl = this.gl;
    this.floatTarget = gl.getExtension("EXT_color_buffer_float") !== null;  // extensions are per context
    this.renderProgs.clear();
    this.displayProg = program(gl, FULLSCREEN_VS, DISPLAY_FS);
    this.ellipseProg = program(gl, ELLIPSE_VS, ELLIPSE_FS);
    this.vao = gl.createVertexArray()!;
    this.fbo = this.target = null;
    this.targetSize = [0, 0];
  }

  /** The loaded image, or null. */
  get image(): Gaussians2D | null {
    return this.data?.g ?? null;
  }

  /**
   * Upload `g` (Gaussians, colours, tile index) to the GPU, fit it to the canvas and draw.
   * `prepared`: its conics and tile index from {@link prepareImage} (e.g. built in a worker;
   * its tile side wins over the `tile` option); without it they are built here.
   */
  load(g: Gaussians2D, prepared?: PreparedImage): void {
    this.upload(g, prepared);
    this._lod = 1;
    this.fit();
  }

  private upload(g: Gaussians2D, prepared?: PreparedImage): void {
    const gl = this.gl;
    this.release();
    const t0 = performance.now();
    const { conics: q, index } = prepared ?? prepareImage(g, this.tileOption);
    this.stats.indexMs = performance.now() - t0;
    const n = g.count;
    const geom = new Float32Array(4 * n), shape = new Float32Array(4 * n);
    for (let i = 0; i < n; i++) {
      geom[4 * i] = g.means[2 * i];
      geom[4 * i + 1] = g.means[2 * i + 1];
      geom[4 * i + 2] = q[3 * i] * 0.5;
      geom[4 * i + 3] = q[3 * i + 2] * 0.5;
      shape[4 * i] = q[3 * i + 1];
      shape[4 * i + 1] = g.scales[2 * i];
      shape[4 * i + 2] = g.scales[2 * i + 1];
      shape[4 * i + 3] = g.rotations[i];
    }
    const C = g.channels, groups = Math.ceil(C / 4);
    const color = new Float32Array(4 * groups * n);
    for (let i = 0; i < n; i++) for (let c = 0; c < C; c++) color[4 * groups * i + c] = g.colors[C * i + c];
    this.data = {
      g, prepared, groups, grid: { tile: index.tile, tilesX: index.tilesX, tilesY: index.tilesY },
      geom: this.dataTexture(geom, 4),
      shape: this.dataTexture(shape, 4),
      color: this.dataTexture(color, 4),
      offsets: this.dataTexture(index.offsets, 1),
      ids: this.dataTexture(index.ids, 1),
    };
    gl.bindTexture(gl.TEXTURE_2D, null);
    this.stats.uploads++;
    this.stats.gaussians = n;
    this.stats.tileEntries = index.ids.length;
  }

  /** Level of detail: the fraction (0, 1] of the Gaussians drawn, in file order (`render-image --lod`). */
  get lod(): number {
    return this._lod;
  }

  set lod(fraction: number) {
    lodCount(1, fraction);  // range check
    this._lod = fraction;
    this.dispatchEvent(new CustomEvent("lod", { detail: { fraction, count: this.count } }));
    this.requestRender();
  }

  /** Gaussians drawn at the current level of detail. */
  get count(): number {
    return this.data ? lodCount(this.data.g.count, this._lod) : 0;
  }

  /** Whether the 2-sigma ellipses of the drawn Gaussians are overlaid. */
  get overlay(): boolean {
    return this._overlay;
  }

  set overlay(on: boolean) {
    this._overlay = on;
    this.requestRender();
  }

  get view(): ImageView {
    return { ...this._view };
  }

  /** Set the view (see {@link ImageView}) and redraw. */
  setView(view: Partial<ImageView>): void {
    const v = { ...this._view, ...view };
    if (!(v.scale > 0 && Number.isFinite(v.scale))) throw new RangeError(`view scale must be positive, got ${v.scale}`);
    if (!Number.isFinite(v.x) || !Number.isFinite(v.y)) throw new RangeError("view origin must be finite");
    this._view = v;
    this.dispatchEvent(new CustomEvent("view", { detail: this.view }));
    this.requestRender();
  }

  /** Show the whole image, centred, as large as the canvas allows. */
  fit(): void {
    const g = this.data?.g;
    if (!g) return;
    const cw = this.canvas.width, ch = this.canvas.height;
    const s = Math.min(cw / g.width, ch / g.height);
    const ow = Math.max(1, Math.round(g.width * s)), oh = Math.max(1, Math.round(g.height * s));
    this.setView({ scale: s, x: Math.round((ow - cw) / 2), y: Math.round((oh - ch) / 2) });
  }

  /** Multiply the zoom by `factor`, keeping the image point under canvas pixel (cx, cy) in place. */
  zoomAt(factor: number, cx = this.canvas.width / 2, cy = this.canvas.height / 2): void {
    const v = this._view;
    const s = Math.min(Math.max(v.scale * factor, 1e-4), 1e4);
    const u = (cx + v.x) / v.scale, w = (cy + v.y) / v.scale;
    this.setView({ scale: s, x: u * s - cx, y: w * s - cy });
  }

  /** Move the view by (dx, dy) canvas pixels. */
  panBy(dx: number, dy: number): void {
    this.setView({ x: this._view.x - dx, y: this._view.y - dy });
  }

  /** Set the canvas's drawing-buffer size (pixels) and redraw; the view keeps its scale and origin. */
  resize(width: number, height: number): void {
    this.canvas.width = Math.max(1, Math.floor(width));
    this.canvas.height = Math.max(1, Math.floor(height));
    this.requestRender();
  }

  /** Draw on the next animation frame (several requests make one draw). */
  requestRender(): void {
    if (this.frame || !this.data) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Draw now: evaluate the Gaussians for the view into the result target, then show it (and the overlay). */
  render(): void {
    const d = this.data;
    if (!d || this.gl.isContextLost()) return;
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const t0 = performance.now();
    const gl = this.gl;
    this.evaluate(0);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.useProgram(this.displayProg);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.target);
    const u = (name: string) => gl.getUniformLocation(this.displayProg, name);
    gl.uniform1i(u("uImage"), 0);
    gl.uniform1i(u("uChannels"), d.g.channels);
    gl.uniform3fv(u("uBackground"), this.background);
    this.viewUniforms(this.displayProg);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    if (this._overlay) this.drawEllipses();
    this.stats.renders++;
    this.stats.used = this.count;
    this.stats.lastMs = performance.now() - t0;
    this.dispatchEvent(new CustomEvent("render", { detail: { ...this.stats } }));
  }

  /**
   * The current view's values, every channel, [height * width * channels] top row first,
   * clamped to [0, 1] (0 outside the image): what `splat render-image` writes before
   * quantising. Float32 where the GPU can render to float targets, else 8-bit steps.
   */
  readPixels(): RenderedPixels {
    const d = this.data;
    if (!d) throw new Error("no image loaded");
    if (this.gl.isContextLost()) throw new Error("the WebGL context is lost");
    const gl = this.gl;
    const W = this.canvas.width, H = this.canvas.height, C = d.g.channels;
    const out = new Float32Array(W * H * C);
    const buf = this.floatTarget ? new Float32Array(W * H * 4) : new Uint8Array(W * H * 4);
    for (let grp = 0; grp < d.groups; grp++) {
      this.evaluate(grp);
      gl.readPixels(0, 0, W, H, gl.RGBA, this.floatTarget ? gl.FLOAT : gl.UNSIGNED_BYTE, buf);
      const k = this.floatTarget ? 1 : 1 / 255;
      for (let y = 0; y < H; y++) {
        const row = (H - 1 - y) * W;  // GL rows are bottom-up
        for (let x = 0; x < W; x++) {
          for (let c = grp * 4; c < Math.min(C, grp * 4 + 4); c++) out[(y * W + x) * C + c] = buf[(row + x) * 4 + c - grp * 4] * k;
        }
      }
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    if (d.groups > 1) this.render();  // the target holds the displayed channels again
    return { width: W, height: H, channels: C, data: out };
  }

  /** Free the loaded image's GPU data (the renderer stays usable: `load` another). */
  unload(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.release();
  }

  /** Free the GPU data and detach the controls. */
  dispose(): void {
    this.release();
    for (const f of this.detach) f();
    this.detach.length = 0;
    const gl = this.gl;
    if (this.fbo) gl.deleteFramebuffer(this.fbo);
    if (this.target) gl.deleteTexture(this.target);
    this.fbo = this.target = null;
  }

  // ------------------------------------------------------------------ internals

  /** Render channel group `grp` of the view into the result target (left bound). */
  private evaluate(grp: number): void {
    const d = this.data!;
    const gl = this.gl;
    this.ensureTarget();
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.disable(gl.BLEND);
    let p = this.renderProgs.get(d.g.mode);
    if (!p) {
      p = program(gl, FULLSCREEN_VS, renderFs(d.g.mode));
      this.renderProgs.set(d.g.mode, p);
    }
    gl.useProgram(p);
    const u = (name: string) => gl.getUniformLocation(p!, name);
    const bind = (unit: number, tex: WebGLTexture, name: string) => {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.uniform1i(u(name), unit);
    };
    bind(0, d.geom, "uGeom");
    bind(1, d.shape, "uShape");
    bind(2, d.color, "uColor");
    bind(3, d.offsets, "uOffsets");
    bind(4, d.ids, "uIds");
    gl.uniform1i(u("uTexW"), this.texW);
    gl.uniform1i(u("uGroups"), d.groups);
    gl.uniform1i(u("uGroup"), grp);
    gl.uniform1i(u("uCount"), this.count);
    gl.uniform1i(u("uK"), Math.min(64, Math.max(1, d.g.k)));
    gl.uniform1f(u("uTile"), d.grid.tile);
    gl.uniform2i(u("uTiles"), d.grid.tilesX, d.grid.tilesY);
    this.viewUniforms(p);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
  }

  private viewUniforms(p: WebGLProgram): void {
    const gl = this.gl, g = this.data!.g, v = this._view;
    const u = (name: string) => gl.getUniformLocation(p, name);
    gl.uniform1f(u("uScale"), v.scale);
    gl.uniform2f(u("uOrigin"), v.x, v.y);
    gl.uniform2f(u("uOutSize"), Math.max(1, Math.round(g.width * v.scale)), Math.max(1, Math.round(g.height * v.scale)));
    gl.uniform1f(u("uCanvasH"), this.canvas.height);
  }

  private drawEllipses(): void {
    const d = this.data!;
    const gl = this.gl, p = this.ellipseProg;
    gl.useProgram(p);
    const u = (name: string) => gl.getUniformLocation(p, name);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, d.geom);
    gl.uniform1i(u("uGeom"), 0);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, d.shape);
    gl.uniform1i(u("uShape"), 1);
    gl.uniform1i(u("uTexW"), this.texW);
    gl.uniform1i(u("uSegments"), SEGMENTS);
    gl.uniform1f(u("uScale"), this._view.scale);
    gl.uniform2f(u("uOrigin"), this._view.x, this._view.y);
    gl.uniform2f(u("uCanvas"), this.canvas.width, this.canvas.height);
    gl.uniform4fv(u("uColor"), this.overlayColor);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.bindVertexArray(this.vao);
    gl.drawArraysInstanced(gl.LINE_LOOP, 0, SEGMENTS, this.count);
    gl.disable(gl.BLEND);
  }

  /** A data texture of `data` (float32 RGBA or uint32 R), `texW` texels a row. */
  private dataTexture(data: Float32Array | Uint32Array, comps: 1 | 4): WebGLTexture {
    const gl = this.gl;
    const texels = Math.max(1, data.length / comps);
    const rows = Math.ceil(texels / this.texW);
    const max = gl.getParameter(gl.MAX_TEXTURE_SIZE) as number;
    if (rows > max) throw new Error(`image too large for this GPU: ${texels} texels need ${rows} rows (max ${max})`);
    const padded = data instanceof Float32Array ? new Float32Array(rows * this.texW * comps) : new Uint32Array(rows * this.texW * comps);
    padded.set(data);
    const tex = gl.createTexture()!;
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    if (comps === 4) gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, this.texW, rows, 0, gl.RGBA, gl.FLOAT, padded);
    else gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32UI, this.texW, rows, 0, gl.RED_INTEGER, gl.UNSIGNED_INT, padded);
    for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST],
      [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
    return tex;
  }

  /** The result target (canvas-sized, float32 RGBA where possible). */
  private ensureTarget(): void {
    const gl = this.gl, W = this.canvas.width, H = this.canvas.height;
    if (this.target && this.targetSize[0] === W && this.targetSize[1] === H) return;
    if (this.target) gl.deleteTexture(this.target);
    if (!this.fbo) this.fbo = gl.createFramebuffer();
    this.target = gl.createTexture()!;
    gl.bindTexture(gl.TEXTURE_2D, this.target);
    if (this.floatTarget) gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, W, H, 0, gl.RGBA, gl.FLOAT, null);
    else gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, W, H, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.target, 0);
    this.targetSize = [W, H];
  }

  private release(): void {
    const d = this.data;
    if (!d) return;
    for (const t of [d.geom, d.shape, d.color, d.offsets, d.ids]) this.gl.deleteTexture(t);
    this.data = null;
  }

  /** Follow the canvas's CSS size (times devicePixelRatio), keeping the image point at the centre in place. */
  private observeSize(): void {
    const obs = new ResizeObserver(() => {
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr)), h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
      if (w === this.canvas.width && h === this.canvas.height) return;
      const v = this._view, ow = this.canvas.width, oh = this.canvas.height;
      this.resize(w, h);
      if (this.data) this.setView({ x: v.x + (ow - w) / 2, y: v.y + (oh - h) / 2 });
    });
    obs.observe(this.canvas);
    this.detach.push(() => obs.disconnect());
  }

  /** Wheel: zoom about the cursor; drag: pan; double-click: fit (image/pointer.ts). */
  private attachControls(): void {
    wirePanZoom(this.canvas, { zoomAt: (f, x, y) => this.zoomAt(f, x, y), panBy: (dx, dy) => this.panBy(dx, dy), reset: () => this.fit() }, this.detach);
  }
}

function program(gl: WebGL2RenderingContext, vs: string, fs: string): WebGLProgram {
  const p = gl.createProgram()!;
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]] as const) {
    const s = gl.createShader(type)!;
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(s)}`);
    gl.attachShader(p, s);
  }
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`program: ${gl.getProgramInfoLog(p)}`);
  return p;
}
