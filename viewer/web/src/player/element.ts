/**
 * `<splat-player src="scene.spz">`: the web component. Attributes: `src`, `cameras` (a
 * cameras.json / transforms.json URL), `background` (CSS colour), `autoplay`, `controls`
 * ("none" hides the panel). Scripting API: play(), pause(), seek(t), and the properties
 * (with events of the same name) frame, currentTime, bytesFetched, decodeMs, error; plus
 * `info`, `settings`, `load(url)`, `setSettings(patch)`.
 */
import type { SplatArrays } from "../formats/types.js";
import { type CameraPreset, parseCameras } from "./cameras.js";
import { packSplats } from "./pack.js";
import type { FormatInfo, LoadRequest, WorkerReply } from "./protocol.js";
import { type DisplaySettings, SplatView } from "./view.js";

/** What the info panel shows, also the `info` property. */
export interface AssetInfo extends FormatInfo {
  name: string;
  count: number;
  shDegree: number | null;
  bytesPerGaussian: number;
  /** Time from the request to the first drawn frame, ms. */
  firstFrameMs: number | null;
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
.status { position: absolute; left: 8px; top: 8px; padding: 4px 8px; background: rgba(20,20,24,.7); border-radius: 4px; }
`;

const fmtBytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

let workerUrl: URL | null = null;

/** The worker bundle sits beside this module. */
function newWorker(): Worker {
  workerUrl ??= new URL("./splat-worker.js", import.meta.url);
  return new Worker(workerUrl, { type: "module", name: "splat-decoder" });
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

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `<style>${STYLE}</style>
<canvas tabindex="0"></canvas>
<div class="status" hidden></div>
<div class="panel">
  <h3>Asset</h3><table class="info"></table>
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
    this.wireControls();
  }

  // ------------------------------------------------------------------ public API
  get src(): string { return this.getAttribute("src") ?? ""; }
  set src(v: string) { this.setAttribute("src", v); }
  /** Index of the frame on screen (0 for a scene once drawn; -1 before). */
  get frame(): number { return this._frame; }
  /** Playback position, seconds (0 for a scene). */
  get currentTime(): number { return this._currentTime; }
  set currentTime(t: number) { this.seek(t); }
  /** Length of the content, seconds (0 for a scene). */
  get duration(): number { return 0; }
  get paused(): boolean { return this._paused; }
  /** Bytes of the asset fetched so far. */
  get bytesFetched(): number { return this._bytesFetched; }
  /** Worker decode time of the asset (or of the last frame), ms. */
  get decodeMs(): number { return this._decodeMs; }
  /** The last load error ("file: fault"), or null. */
  get error(): string | null { return this._error; }
  get info(): AssetInfo | null { return this._info ? { ...this._info } : null; }
  get settings(): DisplaySettings { return { ...(this.view?.settings ?? ({} as DisplaySettings)) }; }
  /** Frames rendered since the asset appeared (renderer frames, not content frames). */
  get framesDrawn(): number { return this.view?.framesDrawn ?? 0; }

  play(): Promise<void> {
    this._paused = false;
    this.emit("play");
    return Promise.resolve();
  }

  pause(): void {
    this._paused = true;
    this.emit("pause");
  }

  /** Seek to `t` seconds (clamped to the content: a scene has one frame at t = 0). */
  seek(t: number): void {
    const clamped = Math.min(Math.max(Number(t) || 0, 0), this.duration);
    this._currentTime = clamped;
    this.emit("seeked", { currentTime: clamped });
    this.emit("currenttime", { currentTime: clamped });
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
    }
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(this);
    this.fit();
    this.panel.hidden = this.getAttribute("controls") === "none";
    if (this.src && !this._info && !this._error) void this.startLoad(this.src);
    if (this.getAttribute("cameras")) void this.loadCameras(this.getAttribute("cameras")!);
  }

  disconnectedCallback(): void {
    this.resizeObserver?.disconnect();
    this.worker?.terminate();
    this.worker = null;
    this.view?.dispose();
    this.view = null;
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (!this.view || old === value) return;
    if (name === "src" && value) void this.startLoad(value);
    else if (name === "cameras" && value) void this.loadCameras(value);
    else if (name === "background" && value) this.setSettings({ background: value });
    else if (name === "controls") this.panel.hidden = value === "none";
  }

  // ------------------------------------------------------------------ internals
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
    if (this._frame < 0 && this.view && this.view.framesDrawn >= 1) {
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
    this.view.clear();
    this.renderInfo();
    this.status(`loading ${name}`);
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
      let shDegree: number | null = null;
      const t0 = performance.now();
      if (decoded.kind === "arrays") {
        const arrays: SplatArrays = decoded.arrays;
        shDegree = arrays.shDegree;
        await this.view.show({ packed: packSplats(arrays) });
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
      this.fail((e as Error)?.message ?? String(e));
    }
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
          ["bytes/G", i.bytesPerGaussian.toFixed(2)],
          ["decode", `${i.decodeMs.toFixed(0)} ms`],
          ["bytes fetched", fmtBytes(this._bytesFetched)],
          ["first frame", i.firstFrameMs === null ? "-" : `${(i.firstFrameMs / 1000).toFixed(2)} s`],
        ]
      : [["file", this.src ? this.nameOf(this.src) : "-"]];
    this.infoTable.replaceChildren(
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
