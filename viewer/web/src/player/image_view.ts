/**
 * The player's image mode: a decoded `.gsi` (2D Gaussians) drawn by the WebGL2 `GsiRenderer`
 * in a canvas laid over the 3D view, with its panel section (level of detail, ellipse
 * overlay, zoom) and mouse controls (wheel zoom about the cursor, drag to pan, double-click
 * to reset). The Gaussians go to the GPU once per image: zoom, pan and level of detail only
 * redraw, and nothing is fetched again.
 *
 * The view is kept in image terms, independent of the canvas size: `zoom` is the
 * magnification over the fitted view (1 = the whole image fits the canvas), and
 * (`centerX`, `centerY`) is the image point, in image pixels, at the canvas centre.
 */
import { wirePanZoom } from "../image/pointer.js";
import type { Gaussians2D } from "../formats/gsi.js";
import { GsiRenderer, type ImageView } from "../image/renderer.js";
import { lodCount, type PreparedImage } from "../image/tiles.js";

/** What `setView` takes and `imageView` gives. */
export interface ImageViewState {
  /** magnification over the fitted view (1: the whole image fits), {@link MIN_ZOOM} to `maxZoom` */
  zoom: number;
  /** the image point at the canvas centre, image pixels (x right, y down) */
  centerX: number;
  centerY: number;
  /** level of detail: the fraction (0, 1] of the Gaussians drawn, in file (importance) order */
  lod: number;
  /** the 2-sigma ellipse overlay */
  ellipses: boolean;
}

/** The image's facts for the info panel (merged into the player's `info`). */
export interface ImageFacts {
  /** native size, pixels */
  width: number;
  height: number;
  channels: number;
  /** file bits per native pixel */
  bitsPerPixel: number;
  /** page (main-thread) time to upload the Gaussians and their tile index to the GPU, ms */
  uploadMs: number;
}

/** Smallest zoom (a quarter of the fitted view). */
export const MIN_ZOOM = 0.25;
/** The zoom limit lets the view reach at least this many canvas pixels per image pixel. */
export const MAX_NATIVE_SCALE = 16;
/** Largest side of a `readPixels` result, pixels. */
const MAX_READ_SIDE = 4096;
/** Zoom factor of the + and - buttons. */
const STEP = Math.SQRT2;
/** Device pixels per CSS pixel, at most this many (sharp, but not 9x the work on a phone). */
const MAX_DPR = 3;

const STYLE = `
canvas.image-canvas { position: absolute; left: 0; top: 0; width: 100%; height: 100%; touch-action: none; cursor: grab; background: #1f1f1f; }
canvas.image-canvas:active { cursor: grabbing; }
canvas.image-canvas[hidden], .image-controls[hidden] { display: none; }
.panel.image-mode > :not(.image-controls):nth-child(n+3) { display: none !important; }
.image-controls .buttons button { min-width: 28px; }
.image-controls .note { color: #aaa; }
`;

const fmtZoom = (z: number) => (z >= 10 ? z.toFixed(0) : z >= 1 ? z.toFixed(2).replace(/\.?0+$/, "") : z.toPrecision(2));

/** Owns the image canvas, its renderer and its panel section; the player shows or clears it. */
export class ImagePane {
  readonly canvas: HTMLCanvasElement;
  readonly controls: HTMLElement;
  /** Draws since the current image was shown. */
  framesDrawn = 0;
  /** After every draw. */
  onDraw: (() => void) | null = null;
  /** After the view changes (zoom, centre, level of detail, overlay). */
  onView: ((state: ImageViewState) => void) | null = null;
  private readonly renderer: GsiRenderer;
  private readonly panel: HTMLElement;
  private image: Gaussians2D | null = null;
  private state: ImageViewState = { zoom: 1, centerX: 0, centerY: 0, lod: 1, ellipses: false };
  private readonly resizeObserver: ResizeObserver;
  private readonly detach: Array<() => void> = [];

  /**
   * `root`: the player's shadow root; `panel`: its control panel; `after`: the panel element
   * the image section follows; `below`: the element (the 3D canvas) the image canvas covers.
   */
  constructor(root: ShadowRoot, panel: HTMLElement, after: Element, below: Element) {
    const style = document.createElement("style");
    style.textContent = STYLE;
    root.append(style);
    this.panel = panel;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "image-canvas";
    this.canvas.hidden = true;
    below.after(this.canvas);
    this.controls = document.createElement("div");
    this.controls.className = "image-controls";
    this.controls.hidden = true;
    this.controls.innerHTML = `<h3>Image</h3>
<label>level of detail <input type="range" name="imageLod" min="0.001" max="1" step="0.001" value="1" list="image-layers"></label>
<datalist id="image-layers"></datalist>
<div class="note lodnote"></div>
<label>ellipses (2&sigma;) <input type="checkbox" name="imageEllipses"></label>
<div class="row buttons"><button name="zoomOut" title="zoom out">&minus;</button><button name="zoomIn" title="zoom in">+</button><button name="zoomNative" title="one image pixel per screen pixel">1:1</button><button name="zoomReset" title="fit the image (double-click)">reset</button></div>
<div class="note zoomnote"></div>`;
    after.after(this.controls);
    this.renderer = new GsiRenderer(this.canvas, { interactive: false });
    this.renderer.addEventListener("render", () => {
      this.framesDrawn++;
      this.onDraw?.();
    });
    this.resizeObserver = new ResizeObserver(() => this.fitCanvas());
    this.resizeObserver.observe(this.canvas);
    this.wireControls();
    this.wirePointer();
  }

  /** Whether an image is on screen. */
  get active(): boolean {
    return this.image !== null;
  }

  /** The current view, or null without an image. */
  get view(): ImageViewState | null {
    return this.image ? { ...this.state } : null;
  }

  /** Gaussians drawn at the current level of detail. */
  get count(): number {
    return this.renderer.count;
  }

  /** Largest zoom for the current canvas: at least {@link MAX_NATIVE_SCALE} canvas pixels per image pixel. */
  get maxZoom(): number {
    const fit = this.fitScale(this.canvas.width, this.canvas.height);
    return Math.max(MAX_NATIVE_SCALE, MAX_NATIVE_SCALE / fit);
  }

  /** Show `g` (uploaded to the GPU once, with its tile index `prepared` when given), fitted, at full detail. */
  show(g: Gaussians2D, prepared: PreparedImage | undefined, fileBytes: number): ImageFacts {
    const t0 = performance.now();
    this.image = null;
    this.canvas.hidden = false;
    this.controls.hidden = false;
    this.panel.classList.add("image-mode");
    this.fitCanvas(false);
    this.renderer.load(g, prepared);
    this.image = g;
    this.framesDrawn = 0;
    this.state = { zoom: 1, centerX: g.width / 2, centerY: g.height / 2, lod: 1, ellipses: false };
    const layers = this.controls.querySelector("datalist")!;
    let sum = 0;
    layers.replaceChildren(...g.layers.map((n) => {
      sum += n;
      const o = document.createElement("option");
      o.value = String(sum / g.count);
      return o;
    }));
    this.apply();
    return {
      width: g.width, height: g.height, channels: g.channels,
      bitsPerPixel: (8 * fileBytes) / (g.width * g.height), uploadMs: performance.now() - t0,
    };
  }

  /** Hide the image and free its GPU data. */
  clear(): void {
    this.image = null;
    this.renderer.unload();
    this.canvas.hidden = true;
    this.controls.hidden = true;
    this.panel.classList.remove("image-mode");
  }

  /**
   * Change the view (any subset of {@link ImageViewState}); the zoom is clamped to
   * [MIN_ZOOM, maxZoom]. Redraws on the next animation frame; returns the view set.
   */
  setView(patch: Partial<ImageViewState>): ImageViewState {
    if (!this.image) throw new Error("no image is loaded");
    const next = { ...this.state };
    if (patch.zoom !== undefined) {
      const z = Number(patch.zoom);
      if (!(z > 0 && Number.isFinite(z))) throw new RangeError(`zoom must be a positive number, got ${patch.zoom}`);
      next.zoom = z;
    }
    for (const k of ["centerX", "centerY"] as const) {
      if (patch[k] === undefined) continue;
      const v = Number(patch[k]);
      if (!Number.isFinite(v)) throw new RangeError(`${k} must be a finite number, got ${patch[k]}`);
      next[k] = v;
    }
    if (patch.lod !== undefined) {
      const f = Number(patch.lod);
      lodCount(1, f); // throws a RangeError outside (0, 1]
      next.lod = f;
    }
    if (patch.ellipses !== undefined) next.ellipses = !!patch.ellipses;
    this.state = next;
    this.apply();
    return { ...this.state };
  }

  /** Multiply the zoom by `factor`, keeping the image point under canvas pixel (px, py) still. */
  zoomAt(factor: number, px = this.canvas.width / 2, py = this.canvas.height / 2): void {
    if (!this.image) return;
    const cw = this.canvas.width, ch = this.canvas.height;
    const s0 = this.scaleFor(cw, ch);
    const u = this.state.centerX + (px - cw / 2) / s0, v = this.state.centerY + (py - ch / 2) / s0;
    const zoom = this.clampZoom(this.state.zoom * factor);
    const s1 = zoom * this.fitScale(cw, ch);
    this.setView({ zoom, centerX: u - (px - cw / 2) / s1, centerY: v - (py - ch / 2) / s1 });
  }

  /** Fit the whole image, full detail kept as it is. */
  reset(): void {
    if (this.image) this.setView({ zoom: 1, centerX: this.image.width / 2, centerY: this.image.height / 2 });
  }

  /**
   * The current view (zoom, centre, level of detail) rendered at `width` x `height` pixels
   * (default: the canvas's), as 8-bit RGBA, top row first: the image's values, not the
   * screen (no background, no overlay). Gray is spread over R, G, B; alpha is the second
   * channel of a gray + alpha image and the fourth of RGBA, else 255. At zoom 1 and the
   * image's aspect ratio this is `splat render-image --width WIDTH`.
   */
  readPixels(width = this.canvas.width, height = this.canvas.height): ImageData {
    const g = this.image;
    if (!g) throw new Error("no image is loaded");
    const w = Math.floor(Number(width)), h = Math.floor(Number(height));
    if (!(w >= 1 && h >= 1 && w <= MAX_READ_SIDE && h <= MAX_READ_SIDE)) {
      throw new RangeError(`readPixels size must be 1..${MAX_READ_SIDE} on each side, got ${width} x ${height}`);
    }
    const r = this.renderer;
    const cw = this.canvas.width, ch = this.canvas.height;
    const other = w !== cw || h !== ch;
    if (other) {
      r.resize(w, h);
      r.setView(this.rendererView(w, h));
    }
    let px;
    try {
      px = r.readPixels();
    } finally {
      if (other) {
        r.resize(cw, ch);
        r.setView(this.rendererView(cw, ch));
        r.render(); // the canvas shows the view again before the browser composites
      }
    }
    const out = new Uint8ClampedArray(w * h * 4);
    const C = px.channels, d = px.data;
    for (let i = 0; i < w * h; i++) {
      const v = i * C;
      const rgb = C < 3 ? [d[v], d[v], d[v]] : [d[v], d[v + 1], d[v + 2]];
      const a = C === 2 ? d[v + 1] : C === 4 ? d[v + 3] : 1;
      out[4 * i] = Math.round(rgb[0] * 255);
      out[4 * i + 1] = Math.round(rgb[1] * 255);
      out[4 * i + 2] = Math.round(rgb[2] * 255);
      out[4 * i + 3] = Math.round(a * 255);
    }
    return new ImageData(out, w, h);
  }

  /** Release the canvas, its WebGL data and listeners. */
  dispose(): void {
    this.clear();
    this.resizeObserver.disconnect();
    for (const f of this.detach) f();
    this.renderer.dispose();
    this.canvas.remove();
    this.controls.remove();
    this.panel.classList.remove("image-mode");
  }

  // ------------------------------------------------------------------ internals
  private fitScale(cw: number, ch: number): number {
    const g = this.image ?? this.renderer.image;
    return g ? Math.min(cw / g.width, ch / g.height) : 1;
  }

  private scaleFor(cw: number, ch: number): number {
    return this.state.zoom * this.fitScale(cw, ch);
  }

  private clampZoom(z: number): number {
    return Math.min(Math.max(z, MIN_ZOOM), this.maxZoom);
  }

  /** The renderer's view (scale, top-left output pixel) of the state on a cw x ch canvas. */
  private rendererView(cw: number, ch: number): ImageView {
    const s = this.scaleFor(cw, ch);
    return { scale: s, x: this.state.centerX * s - cw / 2, y: this.state.centerY * s - ch / 2 };
  }

  /** Push the state to the renderer and the controls, and tell the page. */
  private apply(): void {
    if (!this.image) return;
    this.state.zoom = this.clampZoom(this.state.zoom);
    const r = this.renderer;
    r.setView(this.rendererView(this.canvas.width, this.canvas.height));
    if (r.lod !== this.state.lod) r.lod = this.state.lod;
    r.overlay = this.state.ellipses;
    r.requestRender();
    this.input("imageLod").value = String(this.state.lod);
    this.input("imageEllipses").checked = this.state.ellipses;
    const g = this.image;
    this.controls.querySelector(".lodnote")!.textContent = `${r.count.toLocaleString("en")} of ${g.count.toLocaleString("en")} Gaussians`;
    const perPixel = this.scaleFor(this.canvas.width, this.canvas.height) / Math.min(window.devicePixelRatio || 1, MAX_DPR);
    this.controls.querySelector(".zoomnote")!.textContent = `zoom ${fmtZoom(this.state.zoom)}x, ${fmtZoom(perPixel)} screen px per image px`;
    this.onView?.({ ...this.state });
  }

  /** Keep the drawing buffer at the canvas's CSS size times the pixel ratio; the view stays put. */
  private fitCanvas(redraw = true): void {
    if (this.canvas.hidden) return;
    const dpr = Math.min(window.devicePixelRatio || 1, MAX_DPR);
    const r = this.canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (w === this.canvas.width && h === this.canvas.height) return;
    this.renderer.resize(w, h);
    if (redraw) this.apply();
  }

  private input(name: string): HTMLInputElement {
    return this.controls.querySelector(`input[name=${name}]`)!;
  }

  private wireControls(): void {
    const on = (el: Element, type: string, f: (e: Event) => void) => {
      el.addEventListener(type, f);
      this.detach.push(() => el.removeEventListener(type, f));
    };
    on(this.input("imageLod"), "input", () => {
      const f = Number(this.input("imageLod").value);
      if (this.image && f > 0 && f <= 1) this.setView({ lod: f });
    });
    on(this.input("imageEllipses"), "change", () => {
      if (this.image) this.setView({ ellipses: this.input("imageEllipses").checked });
    });
    const button = (name: string, f: () => void) => on(this.controls.querySelector(`button[name=${name}]`)!, "click", f);
    button("zoomIn", () => this.zoomAt(STEP));
    button("zoomOut", () => this.zoomAt(1 / STEP));
    button("zoomNative", () => {
      if (this.image) this.setView({ zoom: Math.min(window.devicePixelRatio || 1, MAX_DPR) / this.fitScale(this.canvas.width, this.canvas.height) });
    });
    button("zoomReset", () => this.reset());
  }

  /** Wheel: zoom about the cursor; drag: pan; double-click: reset. */
  /** Pan by (dx, dy) canvas pixels. */
  panBy(dx: number, dy: number): void {
    if (!this.image) return;
    const s = this.scaleFor(this.canvas.width, this.canvas.height);
    this.setView({ centerX: this.state.centerX - dx / s, centerY: this.state.centerY - dy / s });
  }

  private wirePointer(): void {
    wirePanZoom(this.canvas, this, this.detach);
  }
}
