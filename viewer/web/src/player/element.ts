/**
 * `<splat-player src="scene.spz">`: the web component. Attributes: `src`, `cameras` (a
 * cameras.json / transforms.json URL), `background` (CSS colour), `autoplay`, `loop`, `speed`,
 * `controls` ("none" hides the panel), `budget` and `sh` ("off") (initial settings), `api` (the
 * base URL of `splat view`'s local API: "render this view" and the contribution order). Scripting API: play(), pause(), seek(t), and the
 * properties (with events of the same name) frame, currentTime, bytesFetched, decodeMs, error;
 * plus `info`, `settings`, `load(url)`, `setSettings(patch)`; for a `.gsi` image (drawn by
 * image_view.ts) `imageView`, `setView(patch)` and `readPixels(w, h)`. A `.gsv` clip streams through
 * the streaming engine (GsvPlayer over Range requests, frames decoded in a worker) and each
 * frame is written over the splats already on the GPU.
 */
import type { Gaussians2D } from "../formats/gsi.js";
import type { SplatArrays } from "../formats/types.js";
import type { PreparedImage } from "../image/tiles.js";
import { ApiControls } from "./api.js";
import { SegmentRoutedDecoder, WorkerDecoder } from "../stream/decoder.js";
import { type FrameEvent, type GapEvent, GsvPlayer, type PlayerStats } from "../stream/player.js";
import { HttpSource } from "../stream/source.js";
import { type CameraPreset, parseCameras } from "./cameras.js";
import { type ImageFacts, ImagePane, type ImageViewState } from "./image_view.js";
import { type MemoryQuery, type MemorySettings, MemoryPanel } from "./memory.js";
import { packSplats } from "./pack.js";
import { type FormatInfo, type LoadRequest, MEMORY_WORKER_NAME, type MemoryPayload, STREAM_WORKER_NAME, type WorkerReply } from "./protocol.js";
import { type DisplaySettings, SplatView } from "./view.js";

/** What the info panel shows, also the `info` property (an image adds its {@link ImageFacts}). */
export interface AssetInfo extends FormatInfo, Partial<ImageFacts> {
  name: string;
  count: number;
  shDegree: number | null;
  bytesPerGaussian: number;
  /** Time from the request to the first drawn frame, ms. */
  firstFrameMs: number | null;
  /** A video's frames, frame rate and length in seconds (absent for a scene). */
  frames?: number;
  fps?: number;
  duration?: number;
}

/** Seconds of video the stream keeps ahead of the playhead (GsvPlayer's read-ahead). */
const BUFFER_SECONDS = 3;
/** How often the playback controls and stream stats refresh, ms. */
const STATS_MS = 250;

/** Whether `url` names a `.gsv` clip (played as a stream, not fetched whole). */
function isVideo(url: string): boolean {
  return /\.gsv$/i.test(url.replace(/[?#].*$/, ""));
}

const STYLE = `
:host { display: block; position: relative; width: 100%; height: 100%; min-height: 200px; background: #000; overflow: hidden; font: 12px/1.4 system-ui, sans-serif; color: #eee; }
canvas { display: block; width: 100%; height: 100%; outline: none; }
.panel { position: absolute; top: 8px; right: 8px; width: 250px; max-height: calc(100% - 16px); overflow: auto; background: rgba(20,20,24,.82); border-radius: 6px; padding: 8px 10px; }
.panel[hidden] { display: none; }
.panel h3 { margin: 8px 0 4px; font-size: 12px; font-weight: 600; color: #9cf; }
.panel h3:first-child { margin-top: 0; }
table { border-collapse: collapse; width: 100%; }
td { padding: 1px 0; vertical-align: top; }
td:first-child { color: #aaa; padding-right: 8px; white-space: nowrap; }
label { display: flex; align-items: center; justify-content: space-between; gap: 6px; margin: 3px 0; }
input[type=range] { width: 120px; }
input[type=number] { width: 90px; }
select, button { font: inherit; }
.error { position: absolute; left: 8px; bottom: 8px; right: 8px; padding: 6px 10px; background: rgba(150,20,20,.9); border-radius: 4px; color: #fff; }
.error[hidden], .status[hidden] { display: none; }
.playback[hidden] { display: none; }
.row { display: flex; align-items: center; gap: 8px; margin: 3px 0; }
input.seekbar { width: 100%; margin: 4px 0; }
.gapnote { color: #f99; }
.status { position: absolute; left: 8px; top: 8px; padding: 4px 8px; background: rgba(20,20,24,.7); border-radius: 4px; }
`;

const fmtBytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

let workerUrl: URL | null = null;

/** The worker bundle sits beside this module; `name` picks its role (worker.ts). */
function newWorker(name = "splat-decoder"): Worker {
  workerUrl ??= new URL("./splat-worker.js", import.meta.url);
  return new Worker(workerUrl, { type: "module", name });
}

export class SplatPlayer extends HTMLElement {
  static observedAttributes = ["src", "cameras", "background", "controls"];

  private view: SplatView | null = null;
  private worker: Worker | null = null;
  private root: ShadowRoot;
  private canvas: HTMLCanvasElement;
  private panel: HTMLElement;
  private infoTable: HTMLTableElement;
  private errorLine: HTMLElement;
  private statusLine: HTMLElement;
  private presetSelect: HTMLSelectElement;
  private resizeObserver: ResizeObserver | null = null;
  private loadId = 0;
  private loadStart = 0;
  private _info: AssetInfo | null = null;
  private _error: string | null = null;
  private _bytesFetched = 0;
  private _decodeMs = 0;
  private _frame = -1;
  private _currentTime = 0;
  private _paused = true;
  private presets: CameraPreset[] = [];
  /** The clip being played, when the asset is a `.gsv`. */
  private video: GsvPlayer | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  /** The latest frame not yet on the GPU (frames that arrive while one is written replace it). */
  private pendingFrame: FrameEvent | null = null;
  private drained: Promise<void> = Promise.resolve();
  private draining = false;
  private lastSplats: SplatArrays | null = null;
  private _gaps: GapEvent[] = [];
  private framesSkipped = 0;
  /** Spark meshes a clip has needed (1 when every later frame was written in place). */
  private meshesMade = 0;
  private seeking = false;
  private playback: HTMLElement;
  private streamTable: HTMLTableElement;
  /** The image mode (a `.gsi`), made on the first image. */
  private image: ImagePane | null = null;
  /** The feature-memory panel and query state, when the asset is a `.m3` (memory.ts). */
  private memoryPanel: MemoryPanel | null = null;
  /** The local API's controls (`api` attribute: pages served by `splat view`). */
  private apiControls: ApiControls | null = null;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `<style>${STYLE}</style>
<canvas tabindex="0"></canvas>
<div class="status" hidden></div>
<div class="panel">
  <h3>Asset</h3><table class="info"></table>
  <div class="playback" hidden>
    <h3>Playback</h3>
    <div class="row"><button name="playpause">play</button><span class="clock">-</span></div>
    <input type="range" class="seekbar" name="seek" min="0" max="0" step="1" value="0" title="seek (red: frames of a bad segment)">
    <label>speed <select name="speed"><option>0.25</option><option>0.5</option><option selected>1</option><option>2</option><option>4</option></select></label>
    <label>loop <input type="checkbox" name="loop"></label>
    <h3>Stream</h3><table class="stream"></table>
  </div>
  <h3>Splats</h3>
  <label>splat scale <input type="range" name="splatScale" min="0.05" max="3" step="0.05" value="1"></label>
  <label>opacity threshold <input type="range" name="opacityThreshold" min="0" max="1" step="0.01" value="0"></label>
  <label>budget <input type="number" name="budget" min="0" step="1000" value="0" title="keep the N most significant Gaussians; 0 = all"></label>
  <label>view-dependent colour (SH) <input type="checkbox" name="sh" checked></label>
  <h3>View</h3>
  <label>background <input type="color" name="background" value="#000000"></label>
  <label>camera <select name="preset"><option value="">default</option></select></label>
  <label><button name="reset">reset camera</button></label>
</div>
<div class="error" role="alert" hidden></div>`;
    this.canvas = this.root.querySelector("canvas")!;
    this.panel = this.root.querySelector(".panel")!;
    this.infoTable = this.root.querySelector("table.info")!;
    this.errorLine = this.root.querySelector(".error")!;
    this.statusLine = this.root.querySelector(".status")!;
    this.presetSelect = this.root.querySelector("select[name=preset]")!;
    this.playback = this.root.querySelector(".playback")!;
    this.streamTable = this.root.querySelector("table.stream")!;
    this.wireControls();
    this.wirePlayback();
  }

  // ------------------------------------------------------------------ public API
  get src(): string { return this.getAttribute("src") ?? ""; }
  set src(v: string) { this.setAttribute("src", v); }
  /** Index of the frame on screen (0 for a scene once drawn; -1 before). */
  get frame(): number { return this._frame; }
  /** Playback position, seconds (0 for a scene). */
  get currentTime(): number { return this.video ? this.video.currentTime : this._currentTime; }
  set currentTime(t: number) { void this.seek(t); }
  /** Length of the content, seconds (0 for a scene). */
  get duration(): number { return this.video ? this.video.duration : 0; }
  get paused(): boolean { return this.video ? this.video.paused : this._paused; }
  /** Bytes of the asset fetched so far. */
  get bytesFetched(): number { return this.video ? this.video.bytesFetched : this._bytesFetched; }
  /** Worker decode time of the asset, or for a video the mean of the last 30 frames', ms. */
  get decodeMs(): number { return this.video ? this.video.stats().decodeMs : this._decodeMs; }
  /** A video: start again at the end (attribute `loop`). */
  get loop(): boolean { return this.video ? this.video.loop : this.hasAttribute("loop"); }
  set loop(v: boolean) {
    if (this.video) this.video.loop = !!v;
    (this.root.querySelector("input[name=loop]") as HTMLInputElement).checked = !!v;
  }
  /** A video's playback rate (0.25 to 4). */
  get speed(): number { return this.video ? this.video.speed : 1; }
  set speed(v: number) {
    if (this.video) this.video.speed = v;
    (this.root.querySelector("select[name=speed]") as HTMLSelectElement).value = String(v);
  }
  /** A video's stream statistics (decode ms/frame, buffer, delivered fps, bitrates, bytes), or null. */
  get stats(): (PlayerStats & { framesSkipped: number; meshes: number }) | null {
    return this.video ? { ...this.video.stats(), framesSkipped: this.framesSkipped, meshes: this.meshesMade } : null;
  }
  /** A video's bad segments, each shown as a gap: `{segment, first, frames, message}`. */
  get gaps(): GapEvent[] { return this._gaps.map((g) => ({ ...g })); }
  /** The decoded arrays of the video frame on screen (read-only; null for a scene). */
  get currentSplats(): SplatArrays | null { return this.lastSplats; }
  /** The last load error ("file: fault"), or null. */
  get error(): string | null { return this._error; }
  get info(): AssetInfo | null { return this._info ? { ...this._info } : null; }
  get settings(): DisplaySettings { return { ...(this.view?.settings ?? ({} as DisplaySettings)) }; }
  /** The local API (render this view, contribution order), or null on a page without one. */
  get viewApi(): ApiControls | null { return this.apiControls; }
  /** Frames rendered since the asset appeared (renderer frames, not content frames). */
  get framesDrawn(): number { return this.image?.active ? this.image.framesDrawn : this.view?.framesDrawn ?? 0; }
  /** An image's view `{zoom, centerX, centerY, lod, ellipses}` (image_view.ts), else null; event `view`. */
  get imageView(): ImageViewState | null { return this.image?.view ?? null; }
  /** Change an image's view (any subset of `imageView`); redraws without fetching. */
  setView(patch: Partial<ImageViewState>): ImageViewState {
    if (!this.image?.active) throw new Error("setView: no image is loaded");
    return this.image.setView(patch);
  }
  /** An image's current view rendered at `width` x `height` as 8-bit RGBA (its values: no background or overlay). */
  readPixels(width?: number, height?: number): ImageData {
    if (!this.image?.active) throw new Error("readPixels: no image is loaded");
    return this.image.readPixels(width, height);
  }

  // feature memory (.m3): see memory.ts; each throws when the asset is not a .m3
  /** Query by the Gaussian under canvas pixel (x, y) (CSS pixels); null when none is there. */
  queryAt(x: number, y: number): Promise<MemoryQuery | null> { return this.needMemory().queryAt(x, y); }
  /** Query by Gaussian `i`'s own feature. */
  queryGaussian(i: number): Promise<MemoryQuery> { return this.needMemory().queryGaussian(i); }
  /** Query by text (needs `splat view --web --encoder`). */
  queryText(text: string): Promise<MemoryQuery> { return this.needMemory().queryText(text); }
  /** Query by a feature vector [D] of the current model. */
  queryVector(v: ArrayLike<number>): Promise<MemoryQuery> { return this.needMemory().queryVector(v); }
  clearQuery(): void { this.memoryPanel?.clear(); }
  /** The matching Gaussians as INRIA PLY bytes; `downloadMatches()` offers them as a file. */
  exportMatches(): Uint8Array { return this.needMemory().exportMatches(); }
  downloadMatches(): string { return this.needMemory().downloadMatches(); }
  /** Every Gaussian's similarity to the last query (Float32Array [N]), or null. */
  get similarity(): Float32Array | null { return this.memoryPanel?.similarity ?? null; }
  get memoryQuery(): MemoryQuery | null { return this.memoryPanel?.query ?? null; }
  get memorySettings(): MemorySettings | null { return this.memoryPanel?.settings ?? null; }
  get memoryModels(): string[] { return this.memoryPanel?.models ?? []; }
  get textQueries(): boolean { return this.memoryPanel?.textQueries ?? false; }
  setMemorySettings(patch: Partial<MemorySettings>): Promise<void> { return this.needMemory().setSettings(patch); }
  private needMemory(): MemoryPanel {
    if (!this.memoryPanel) throw new Error("the asset is not a feature memory (.m3)");
    return this.memoryPanel;
  }

  play(): Promise<void> {
    if (this.video) {
      this.video.play(); // fires "play" through the player's "playing"
      return Promise.resolve();
    }
    this._paused = false;
    this.emit("play");
    return Promise.resolve();
  }

  pause(): void {
    if (this.video) {
      this.video.pause();
      return;
    }
    this._paused = true;
    this.emit("pause");
  }

  /**
   * Seek to `t` seconds (clamped to the content: a scene has one frame at t = 0). Resolves
   * with the frame index on screen once it is there (a video keeps playing from it unless paused).
   */
  async seek(t: number): Promise<number> {
    if (this.video) {
      const index = await this.video.seek(Number(t) || 0);
      await this.drained;
      return index;
    }
    const clamped = Math.min(Math.max(Number(t) || 0, 0), this.duration);
    this._currentTime = clamped;
    this.emit("seeked", { currentTime: clamped });
    this.emit("currenttime", { currentTime: clamped });
    return this._frame;
  }

  setSettings(patch: Partial<DisplaySettings>): void {
    this.view?.applySettings(patch);
    this.syncControls();
  }

  /** Load `url` (what setting `src` does). Resolves once drawn or failed. */
  load(url: string): Promise<void> {
    return this.startLoad(url);
  }

  // ------------------------------------------------------------------ lifecycle
  connectedCallback(): void {
    // a property set before this element was upgraded shadows the accessor: re-set it
    for (const prop of ["src"] as const) {
      if (Object.prototype.hasOwnProperty.call(this, prop)) {
        const v = (this as unknown as Record<string, string>)[prop];
        delete (this as unknown as Record<string, string>)[prop];
        this[prop] = v;
      }
    }
    if (!this.view) {
      this.view = new SplatView(this.canvas);
      this.view.onDraw = () => this.onDraw();
      const bg = this.getAttribute("background");
      if (bg) this.view.applySettings({ background: bg });
      // initial budget (most significant N) and SH switch, e.g. from `splat view --budget N --no-sh`
      const budget = Math.floor(Number(this.getAttribute("budget") ?? "0"));
      if (budget > 0) this.view.applySettings({ budget });
      if (this.getAttribute("sh") === "off") this.view.applySettings({ sh: false });
      this.syncControls();
    }
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(this);
    this.fit();
    this.panel.hidden = this.getAttribute("controls") === "none";
    if (!this.apiControls && this.getAttribute("api")) this.mountApi(this.getAttribute("api")!);
    if (this.src && !this._info && !this._error) void this.startLoad(this.src);
    if (this.getAttribute("cameras")) void this.loadCameras(this.getAttribute("cameras")!);
  }

  disconnectedCallback(): void {
    this.closeVideo();
    this.image?.dispose();
    this.image = null;
    this.resizeObserver?.disconnect();
    this.worker?.terminate();
    this.worker = null;
    this.view?.dispose();
    this.view = null;
    this.memoryPanel?.dispose();
    this.memoryPanel = null;
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (!this.view || old === value) return;
    if (name === "src" && value) void this.startLoad(value);
    else if (name === "cameras" && value) void this.loadCameras(value);
    else if (name === "background" && value) this.setSettings({ background: value });
    else if (name === "controls") this.panel.hidden = value === "none";
  }

  // ------------------------------------------------------------------ internals
  private mountApi(base: string): void {
    this.apiControls = new ApiControls({
      root: this.root,
      view: () => this.view,
      assetName: () => this._info?.name ?? null,
      frameIndex: () => Math.max(0, this._frame),
      isClip: () => this.video !== null,
      say: (text) => this.status(text),
      emit: (type, detail) => this.emit(type, detail),
    }, new URL(base, document.baseURI));
    this.addEventListener("load", () => this.apiControls?.reset());
  }

  private emit(type: string, detail: unknown = undefined): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  private fit(): void {
    const r = this.getBoundingClientRect();
    this.view?.resize(Math.round(r.width), Math.round(r.height));
  }

  private status(text: string | null): void {
    this.statusLine.hidden = !text;
    this.statusLine.textContent = text ?? "";
  }

  private fail(message: string): void {
    this._error = message;
    this.errorLine.textContent = message;
    this.errorLine.hidden = false;
    this.status(null);
    this.emit("error", { message });
  }

  private onDraw(): void {
    if (this.video) {
      if (this._info && this._info.firstFrameMs === null && this._frame >= 0) {
        this._info.firstFrameMs = performance.now() - this.loadStart;
        this.renderInfo();
      }
      return;
    }
    if (this._frame < 0 && this.framesDrawn >= 1) {
      this._frame = 0;
      if (this._info && this._info.firstFrameMs === null) {
        this._info.firstFrameMs = performance.now() - this.loadStart;
        this.renderInfo();
      }
      this.emit("frame", { frame: 0, currentTime: 0 });
    }
  }

  private nameOf(url: string): string {
    const path = url.replace(/[?#].*$/, "");
    try {
      return decodeURIComponent(path.split("/").pop() || url);
    } catch {
      return path.split("/").pop() || url;
    }
  }

  private async startLoad(url: string): Promise<void> {
    if (!this.view) return;
    const id = ++this.loadId;
    const name = this.nameOf(url);
    this.loadStart = performance.now();
    this._error = null;
    this.errorLine.hidden = true;
    this._info = null;
    this._frame = -1;
    this._currentTime = 0;
    this._bytesFetched = 0;
    this._decodeMs = 0;
    this.closeVideo();
    this.view.clear();
    this.image?.clear();
    this.memoryPanel?.dispose(); // after clear: no mesh to recompile
    this.memoryPanel = null;
    this.renderInfo();
    this.status(`loading ${name}`);
    if (isVideo(url)) return this.startVideo(id, url, name);
    this.worker ??= newWorker();
    const worker = this.worker;
    const abs = new URL(url, document.baseURI).href;
    try {
      const reply = await new Promise<Extract<WorkerReply, { type: "done" }>>((resolve, reject) => {
        const onMessage = (ev: MessageEvent<WorkerReply>) => {
          const m = ev.data;
          if (m.id !== id) return;
          if (m.type === "progress") {
            this._bytesFetched = m.bytesFetched;
            this.status(`loading ${name}: ${fmtBytes(m.bytesFetched)}${m.total ? ` of ${fmtBytes(m.total)}` : ""}`);
            this.emit("bytesfetched", { bytesFetched: m.bytesFetched });
            return;
          }
          worker.removeEventListener("message", onMessage);
          worker.removeEventListener("error", onError);
          if (m.type === "error") reject(new Error(m.message));
          else resolve(m);
        };
        const onError = (ev: ErrorEvent) => {
          worker.removeEventListener("message", onMessage);
          worker.removeEventListener("error", onError);
          this.worker = null; // a crashed worker is replaced on the next load
          reject(new Error(`${name}: decoder worker failed (${ev.message || "could not start"})`));
        };
        worker.addEventListener("message", onMessage);
        worker.addEventListener("error", onError);
        worker.postMessage({ id, url: abs, name } satisfies LoadRequest);
      });
      if (id !== this.loadId) return;
      const { decoded, info } = reply;
      this._bytesFetched = info.bytesFetched;
      this._decodeMs = info.decodeMs;
      this.status(`decoding ${name}`);
      if (decoded.kind === "image") return this.showImage(decoded.image, decoded.prepared, name, info);
      let shDegree: number | null = null;
      const t0 = performance.now();
      if (decoded.kind === "arrays" || decoded.kind === "memory") {
        const arrays: SplatArrays = decoded.arrays;
        shDegree = arrays.shDegree;
        await this.view.show({ packed: packSplats(arrays) });
        if (decoded.kind === "memory" && id === this.loadId) this.openMemory(arrays, decoded.memory, name);
      } else {
        try {
          await this.view.show({ bytes: decoded.bytes, fileType: decoded.fileType, fileName: name, rub: decoded.fileType === "spz" });
        } catch (e) {
          throw new Error(`${name}: ${(e as Error)?.message ?? String(e)}`);
        }
        this._decodeMs = performance.now() - t0; // Spark decodes in its own worker
      }
      if (id !== this.loadId) return;
      const count = this.view.count();
      if (count === 0) throw new Error(`${name}: the file holds no Gaussians`);
      this._info = { ...info, name, count, shDegree, decodeMs: this._decodeMs, bytesPerGaussian: info.fileBytes / count, firstFrameMs: null };
      this.view.frameAll();
      if (this.presets.length) this.presetSelect.value = "";
      this.status(null);
      this.renderInfo();
      this.emit("load", this.info);
      this.emit("decodems", { decodeMs: this._decodeMs });
      if (this.hasAttribute("autoplay")) void this.play();
    } catch (e) {
      if (id !== this.loadId) return;
      this.view?.clear();
      this.image?.clear();
      this.fail((e as Error)?.message ?? String(e));
    }
  }

  /** Show a decoded `.gsi` in the image mode (image_view.ts) instead of the 3D view. */
  private showImage(g: Gaussians2D, prepared: PreparedImage, name: string, info: FormatInfo): void {
    if (g.count === 0) throw new Error(`${name}: the file holds no Gaussians`);
    if (!this.image) {
      this.image = new ImagePane(this.root, this.panel, this.infoTable, this.canvas);
      this.image.onDraw = () => this.onDraw();
      this.image.onView = (v) => this.emit("view", v);
    }
    const facts = this.image.show(g, prepared, info.fileBytes);
    this._info = { ...info, ...facts, name, count: g.count, shDegree: null, bytesPerGaussian: info.fileBytes / g.count, firstFrameMs: null };
    this.status(null);
    this.renderInfo();
    this.emit("load", this.info);
    this.emit("decodems", { decodeMs: this._decodeMs });
  }

  private openMemory(arrays: SplatArrays, memory: MemoryPayload, name: string): void {
    this.memoryPanel = new MemoryPanel({
      root: this.root, view: () => this.view, newWorker: () => newWorker(MEMORY_WORKER_NAME),
      emit: (type, detail) => this.emit(type, detail), fileName: () => name,
    }, arrays, memory, this.panel);
  }

  // ------------------------------------------------------------------ video
  /** Stream the `.gsv` at `url`: header and segment table by Range requests, then segments
   * ahead of the playhead; frames decoded in a worker and written over the mesh in place. */
  private async startVideo(id: number, url: string, name: string): Promise<void> {
    const abs = new URL(url, document.baseURI).href;
    // frames come packed for Spark; two workers, alternate segments (a segment's parse runs beside the frames playing)
    const decoder = new SegmentRoutedDecoder([0, 1].map(() => new WorkerDecoder(newWorker(STREAM_WORKER_NAME), { words: true })));
    const rate = Number(this.getAttribute("speed") ?? "1");
    const speed = rate > 0 && Number.isFinite(rate) ? Math.min(Math.max(rate, 0.25), 4) : 1;
    const player = new GsvPlayer(new HttpSource(abs), {
      decoder, file: name, autoplay: this.hasAttribute("autoplay"), loop: this.hasAttribute("loop"), speed, bufferSeconds: BUFFER_SECONDS,
    });
    this.video = player;
    this._gaps = [];
    this.framesSkipped = 0;
    this.meshesMade = 0;
    (this.root.querySelector("input[name=loop]") as HTMLInputElement).checked = player.loop;
    const speedSelect = this.root.querySelector("select[name=speed]") as HTMLSelectElement;
    if (![...speedSelect.options].some((o) => Number(o.value) === speed)) speedSelect.add(new Option(String(speed)));
    speedSelect.value = [...speedSelect.options].find((o) => Number(o.value) === speed)!.value;
    player.on("frame", (e) => {
      if (id !== this.loadId) return;
      if (this.pendingFrame) this.framesSkipped++;
      this.pendingFrame = e;
      if (!this.draining) this.drained = this.drain(id);
    });
    player.on("gap", (g) => {
      this._gaps.push(g);
      this.paintGaps();
      this.emit("gap", { ...g });
    });
    player.on("error", ({ message }) => { if (id === this.loadId) this.fail(message); });
    player.on("progress", () => this.emit("bytesfetched", { bytesFetched: player.bytesFetched }));
    player.on("playing", () => { this.emit("play"); this.refreshPlayback(); });
    player.on("pause", () => { this.emit("pause"); this.refreshPlayback(); });
    player.on("seeked", ({ index }) => this.emit("seeked", { frame: index, currentTime: player.currentTime }));
    player.on("ended", () => { this.emit("ended"); this.refreshPlayback(); });
    player.on("waiting", ({ index }) => this.emit("waiting", { frame: index }));
    let h;
    try {
      h = await player.ready;
    } catch {
      return; // the player's error event has shown it
    }
    if (id !== this.loadId) return;
    const fileBytes = player.source.size ?? player.segments.reduce((a, e) => Math.max(a, e.offset + e.length), 0);
    this._info = {
      name, format: `.gsv (${h.coding})`, count: h.gaussians, fileBytes, bytesFetched: player.bytesFetched,
      decodeMs: 0, fetchMs: 0, bytesPerGaussian: fileBytes / Math.max(1, h.gaussians * h.frames),
      shDegree: h.shDegree, firstFrameMs: null, frames: h.frames, fps: h.fps, duration: player.duration,
    };
    const seek = this.input("seek");
    seek.max = String(Math.max(0, h.frames - 1));
    seek.value = "0";
    this.paintGaps();
    this.playback.hidden = false;
    this.status(null);
    this.renderInfo();
    this.emit("load", this.info);
    this.statsTimer = setInterval(() => this.refreshPlayback(), STATS_MS);
    this.refreshPlayback();
  }

  /** Write the latest pending frame (and any that arrive meanwhile) to the GPU. */
  private async drain(id: number): Promise<void> {
    this.draining = true;
    try {
      while (this.pendingFrame && this.view && id === this.loadId) {
        const e = this.pendingFrame;
        this.pendingFrame = null;
        const first = this._frame < 0;
        try {
          if (!(await this.view.showFrame(e.splats, Math.max(this.video?.header?.gaussians ?? 0, e.splats.count), e.words))) this.meshesMade++;
        } catch (err) {
          if (id === this.loadId) this.fail(`${this._info?.name ?? "clip"}: ${(err as Error)?.message ?? String(err)}`);
          return;
        }
        if (id !== this.loadId) return;
        if (first) this.view.frameAll();
        this.lastSplats = e.splats;
        this._frame = e.index;
        this._decodeMs = e.decodeMs;
        this.emit("frame", { frame: e.index, currentTime: e.time });
        this.emit("decodems", { decodeMs: e.decodeMs });
      }
    } finally {
      this.draining = false;
    }
  }

  private closeVideo(): void {
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.video?.close();
    this.video = null;
    this.pendingFrame = null;
    this.lastSplats = null;
    this._gaps = [];
    this.playback.hidden = true;
  }

  /** Mark bad segments' frames red on the seek bar. */
  private paintGaps(): void {
    const seek = this.input("seek");
    const n = this.video?.header?.frames ?? 0;
    if (!n || !this._gaps.length) {
      seek.style.background = "";
      return;
    }
    const stops = this._gaps.map((g) => {
      const a = (100 * g.first) / n, b = (100 * (g.first + g.frames)) / n;
      return `transparent ${a}%, #c33 ${a}%, #c33 ${b}%, transparent ${b}%`;
    });
    seek.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  }

  /** The playback controls and the stream table, from the player's state. */
  private refreshPlayback(): void {
    const v = this.video;
    if (!v || !v.header) return;
    const h = v.header;
    const st = v.stats();
    (this.root.querySelector("button[name=playpause]") as HTMLButtonElement).textContent = v.paused ? "play" : "pause";
    const f = Math.max(0, v.currentFrame);
    this.root.querySelector(".clock")!.textContent = `frame ${f + 1} / ${h.frames}  ${v.currentTime.toFixed(2)} / ${v.duration.toFixed(2)} s`;
    if (!this.seeking) this.input("seek").value = String(f);
    const rows: Array<[string, string]> = [
      ["decode", `${st.decodeMs.toFixed(1)} ms/frame`],
      ["buffer", `${st.bufferSeconds.toFixed(1)} s of ${BUFFER_SECONDS} s`],
      ["delivered", `${st.deliveredFps} fps of ${(h.fps * v.speed).toFixed(0)}`],
      ["bitrate", `${st.wireMbps.toFixed(2)} Mbit/s wire, ${st.fileMbps.toFixed(2)} file`],
      ["bytes fetched", fmtBytes(st.bytesFetched)],
      ["stalls", String(st.stalls)],
    ];
    const scale = this.view?.renderScale ?? 1;
    if (scale < 1) rows.push(["resolution", `${Math.round(scale * 100)}% (draws are slow)`]);
    if (this._gaps.length) rows.push(["gaps", this._gaps.map((g) => `${g.first}-${g.first + g.frames - 1}`).join(", ")]);
    this.fillTable(this.streamTable, rows);
    const gapRow = this.streamTable.rows[rows.length - 1];
    if (this._gaps.length && gapRow) gapRow.className = "gapnote";
    if (this._info) this._info.bytesFetched = st.bytesFetched;
  }

  private wirePlayback(): void {
    this.root.querySelector("button[name=playpause]")!.addEventListener("click", () => {
      if (this.paused) void this.play();
      else this.pause();
    });
    const seek = this.input("seek");
    seek.addEventListener("pointerdown", () => { this.seeking = true; });
    seek.addEventListener("pointerup", () => { this.seeking = false; });
    seek.addEventListener("input", () => {
      const v = this.video;
      const i = Number(seek.value);
      if (v && Number.isFinite(i)) void v.seekFrame(i);
    });
    const speed = this.root.querySelector("select[name=speed]") as HTMLSelectElement;
    speed.addEventListener("change", () => {
      const v = Number(speed.value);
      if (this.video && v > 0) this.video.speed = v;
    });
    this.input("loop").addEventListener("change", (e) => { if (this.video) this.video.loop = (e.target as HTMLInputElement).checked; });
  }

  private async loadCameras(url: string): Promise<void> {
    try {
      const res = await fetch(new URL(url, document.baseURI));
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.presets = parseCameras(await res.json());
    } catch (e) {
      this.presets = [];
      console.warn(`camera presets from ${url}: ${(e as Error).message}`);
    }
    this.presetSelect.replaceChildren(new Option("default", ""), ...this.presets.map((p, i) => new Option(p.name, String(i))));
    this.emit("cameras", { count: this.presets.length });
  }

  /** Select camera preset `i` (an index into the cameras file), or the default view. */
  useCamera(i: number | null): void {
    if (i === null || !this.presets[i]) this.view?.resetCamera();
    else this.view?.usePreset(this.presets[i]);
    this.presetSelect.value = i === null ? "" : String(i);
  }

  get cameraPresets(): string[] {
    return this.presets.map((p) => p.name);
  }

  private renderInfo(): void {
    const i = this._info;
    const rows: Array<[string, string]> = i
      ? [
          ["file", i.name],
          ["format", i.format],
          ["Gaussians", i.count.toLocaleString("en")],
          ["file size", fmtBytes(i.fileBytes)],
          [i.frames !== undefined ? "bytes/G/frame" : "bytes/G", i.bytesPerGaussian.toFixed(2)],
          // a video's decode time is per frame, in the Stream table
          ...(i.frames === undefined ? [["decode", `${i.decodeMs.toFixed(0)} ms`] as [string, string]] : []),
          ...(i.frames !== undefined
            ? ([["frames", `${i.frames} at ${(i.fps ?? 0).toFixed(2).replace(/\.?0+$/, "")} fps (${(i.duration ?? 0).toFixed(2)} s)`]] as Array<[string, string]>)
            : [["bytes fetched", fmtBytes(this._bytesFetched)] as [string, string]]),
          ...(i.width !== undefined ? ([["native size", `${i.width} x ${i.height}, ${i.channels} ch`], ["bits/pixel", (i.bitsPerPixel ?? 0).toFixed(3)]] as Array<[string, string]>) : []),
          ["first frame", i.firstFrameMs === null ? "-" : `${(i.firstFrameMs / 1000).toFixed(2)} s`],
        ]
      : [["file", this.src ? this.nameOf(this.src) : "-"]];
    this.fillTable(this.infoTable, rows);
  }

  private fillTable(table: HTMLTableElement, rows: Array<[string, string]>): void {
    table.replaceChildren(
      ...rows.map(([k, v]) => {
        const tr = document.createElement("tr");
        const a = document.createElement("td");
        const b = document.createElement("td");
        a.textContent = k;
        b.textContent = v;
        tr.append(a, b);
        return tr;
      }),
    );
  }

  private input(name: string): HTMLInputElement {
    return this.root.querySelector(`input[name=${name}]`)!;
  }

  private wireControls(): void {
    const num = (name: keyof DisplaySettings) => {
      const el = this.input(name);
      el.addEventListener("input", () => {
        const v = Number(el.value);
        if (Number.isFinite(v)) this.view?.applySettings({ [name]: name === "budget" ? Math.max(0, Math.floor(v)) : v });
      });
    };
    num("splatScale");
    num("opacityThreshold");
    num("budget");
    this.input("sh").addEventListener("change", (e) => this.view?.applySettings({ sh: (e.target as HTMLInputElement).checked }));
    this.input("background").addEventListener("input", (e) => this.view?.applySettings({ background: (e.target as HTMLInputElement).value }));
    this.presetSelect.addEventListener("change", () => this.useCamera(this.presetSelect.value === "" ? null : Number(this.presetSelect.value)));
    this.root.querySelector("button[name=reset]")!.addEventListener("click", () => this.useCamera(null));
  }

  private syncControls(): void {
    const s = this.view?.settings;
    if (!s) return;
    this.input("splatScale").value = String(s.splatScale);
    this.input("opacityThreshold").value = String(s.opacityThreshold);
    this.input("budget").value = String(s.budget);
    this.input("sh").checked = s.sh;
    if (/^#[0-9a-f]{6}$/i.test(s.background)) this.input("background").value = s.background;
  }
}
