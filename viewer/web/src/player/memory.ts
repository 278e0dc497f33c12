/**
 * Feature memory (`.m3`) in `<splat-player>`: a click on the scene picks the Gaussian under
 * the cursor, a worker (memory_worker.ts) computes every Gaussian's cosine similarity to its
 * decoded feature (or to a text query's vector from `splat view --encoder`'s `/api/query`),
 * and the result recolours the splats already on the GPU: the similarities go to the GPU as one
 * float texture (4 bytes a Gaussian) and a stage of the per-splat modifier turns them into
 * colours; the threshold and "only matches" are uniforms. No geometry moves, nothing is fetched.
 *
 * Colours follow the Python viewer: a blue-to-red ramp over [min, max] of the similarity,
 * dark grey below the threshold, blended 70% over each Gaussian's own colour. "Only matches"
 * hides what is below the threshold. Matches export as an INRIA PLY (the Python writer's layout).
 */
import { dyno } from "@sparkjsdev/spark";
import * as THREE from "three";
import { encodePly } from "../formats/ply.js";
import type { SplatArrays } from "../formats/types.js";
import type { MemoryReply, MemoryRequest } from "./memory_worker.js";
import type { MemoryPayload } from "./protocol.js";
import type { SplatStage, SplatView } from "./view.js";

/** Weight of the similarity ramp over a Gaussian's own colour (the Python viewer's HEAT_ALPHA). */
const HEAT_ALPHA = 0.7;
const DIM_GREY = 0.15;
export const DEFAULT_THRESHOLD = 0.8;
/** Width of the similarity texture in texels (rows hold the rest). */
const TEX_WIDTH = 2048;
/** Gaussians fainter than this are not picked. */
const PICK_MIN_OPACITY = 0.1;
/** A ray picks a Gaussian when it passes within this many of its largest standard deviations. */
const PICK_SIGMAS = 2;

export interface MemorySettings {
  /** cosine similarity at or above which a Gaussian matches, in [-1, 1] */
  threshold: number;
  /** hide the Gaussians below the threshold */
  onlyMatches: boolean;
  /** the model whose features the query uses */
  model: string;
}

/** The last query: where it came from, its vector, and the time it took. */
export interface MemoryQuery {
  source: "gaussian" | "text" | "vector";
  model: string;
  /** the picked Gaussian (source "gaussian") */
  gaussian?: number;
  text?: string;
  /** the query's feature vector [D] */
  vector: number[];
  /** Gaussians at or above the threshold */
  matches: number;
  min: number;
  max: number;
  /** worker time (features on first use + similarity), and the recolouring, ms */
  similarityMs: number;
  colorsMs: number;
}

/**
 * The similarity colours on the GPU: each Gaussian's similarity in a float texture (texel
 * index = splat index), and a modifier stage that maps it to the ramp (dark grey below the
 * threshold) over the Gaussian's own colour, and to opacity 0 for "only matches".
 */
class SimilarityStage {
  readonly active = dyno.dynoBool(false);
  readonly lo = dyno.dynoFloat(0);
  readonly span = dyno.dynoFloat(1);
  readonly threshold = dyno.dynoFloat(DEFAULT_THRESHOLD);
  readonly only = dyno.dynoBool(false);
  private texture: THREE.DataTexture;
  private sampler: ReturnType<typeof dyno.dynoSampler2D>;

  constructor(count: number) {
    const rows = Math.max(1, Math.ceil(count / TEX_WIDTH));
    this.texture = new THREE.DataTexture(new Float32Array(TEX_WIDTH * rows), TEX_WIDTH, rows, THREE.RedFormat, THREE.FloatType);
    this.texture.minFilter = this.texture.magFilter = THREE.NearestFilter;
    this.texture.generateMipmaps = false;
    this.sampler = dyno.dynoSampler2D(this.texture);
  }

  /** Upload the similarities [N]. */
  setScores(scores: Float32Array): void {
    (this.texture.image.data as Float32Array).set(scores);
    this.texture.needsUpdate = true;
  }

  dispose(): void {
    this.texture.dispose();
  }

  readonly stage: SplatStage = (gsplat) => new dyno.Dyno({
    inTypes: { gsplat: dyno.Gsplat, scores: "sampler2D", active: "bool", lo: "float", span: "float", threshold: "float", only: "bool" },
    outTypes: { gsplat: dyno.Gsplat },
    inputs: { gsplat, scores: this.sampler, active: this.active, lo: this.lo, span: this.span, threshold: this.threshold, only: this.only },
    statements: ({ inputs: i, outputs: o }) => [
      `${o.gsplat} = ${i.gsplat};`,
      `if (${i.active}) {`,
      `  int simW = textureSize(${i.scores}, 0).x;`,
      `  int simI = ${i.gsplat}.index;`,
      `  float simS = texelFetch(${i.scores}, ivec2(simI % simW, simI / simW), 0).r;`,
      `  float simT = clamp((simS - ${i.lo}) / ${i.span}, 0.0, 1.0);`,
      `  bool simMatch = simS >= ${i.threshold};`,
      `  vec3 simHeat = simMatch ? vec3(simT, 1.0 - abs(2.0 * simT - 1.0), 1.0 - simT) : vec3(${DIM_GREY.toFixed(2)});`,
      `  ${o.gsplat}.rgba.rgb = ${(1 - HEAT_ALPHA).toFixed(2)} * clamp(${i.gsplat}.rgba.rgb, 0.0, 1.0) + ${HEAT_ALPHA.toFixed(2)} * simHeat;`,
      `  if (${i.only} && !simMatch) ${o.gsplat}.rgba.a = 0.0;`,
      `}`,
    ],
  }).outputs.gsplat;
}

/** What the panel needs of its player. */
export interface MemoryHost {
  root: ShadowRoot;
  view: () => SplatView | null;
  newWorker: () => Worker;
  emit: (type: string, detail?: unknown) => void;
  fileName: () => string;
}

const PANEL = `
<h3>Feature memory</h3>
<div class="mem-status">click the scene to find what is similar to the point under the cursor</div>
<label>model <select name="memModel"></select></label>
<label>threshold <input type="range" name="memThreshold" min="-1" max="1" step="0.01" value="${DEFAULT_THRESHOLD}"></label>
<label>only matches <input type="checkbox" name="memOnly"></label>
<div class="mem-text" hidden><label><input type="text" name="memText" placeholder="text query" style="width:150px"><button name="memSearch">search</button></label></div>
<div class="row"><button name="memClear">clear</button><button name="memExport">export matches (.ply)</button></div>`;

/**
 * One `.m3` asset on screen: its scene arrays, the similarity worker, the query state and the
 * panel section. `dispose()` ends the worker and puts the scene's own colours back.
 */
export class MemoryPanel {
  private worker: Worker;
  private nextId = 1;
  private pending = new Map<number, { resolve: (m: MemoryReply) => void; reject: (e: Error) => void }>();
  private section: HTMLElement;
  private _settings: MemorySettings;
  private scores: Float32Array | null = null;
  private last: MemoryQuery | null = null;
  private gpu: SimilarityStage;
  private textApi: string | null = null;
  private clickStart: { x: number; y: number; t: number } | null = null;
  private detach: Array<() => void> = [];

  constructor(private host: MemoryHost, readonly scene: SplatArrays, readonly memory: MemoryPayload, panel: HTMLElement) {
    this._settings = { threshold: DEFAULT_THRESHOLD, onlyMatches: false, model: memory.models[0].name };
    this.worker = host.newWorker();
    this.worker.onmessage = (ev: MessageEvent<MemoryReply>) => {
      const p = this.pending.get(ev.data.id);
      if (!p) return;
      this.pending.delete(ev.data.id);
      if (ev.data.type === "error") p.reject(new Error(ev.data.message));
      else p.resolve(ev.data);
    };
    this.worker.onerror = (ev) => {
      for (const p of this.pending.values()) p.reject(new Error(`similarity worker failed (${ev.message || "could not start"})`));
      this.pending.clear();
    };
    // the worker gets its own copy of the queries (the page keeps the scene arrays for picking and export)
    this.post({ type: "init", memory: { ...memory, queries: memory.queries.slice() } });
    this.gpu = new SimilarityStage(scene.count);
    host.view()?.setStage(this.gpu.stage);
    this.section = document.createElement("div");
    this.section.className = "memory";
    this.section.innerHTML = PANEL;
    panel.append(this.section);
    const select = this.el<HTMLSelectElement>("select[name=memModel]");
    select.replaceChildren(...memory.models.map((m) => new Option(`${m.name} (D=${m.dim})`, m.name)));
    select.disabled = memory.models.length === 1;
    this.wire();
    // decode the first model's features while the user looks at the scene, not on the first click
    void this.request({ type: "features", model: this._settings.model }).catch(() => undefined);
    void this.probeTextApi();
  }

  // ------------------------------------------------------------------ state
  get settings(): MemorySettings { return { ...this._settings }; }
  /** Every Gaussian's similarity to the last query (a copy), or null. */
  get similarity(): Float32Array | null { return this.scores ? this.scores.slice() : null; }
  get query(): MemoryQuery | null { return this.last ? { ...this.last, vector: [...this.last.vector] } : null; }
  get models(): string[] { return this.memory.models.map((m) => m.name); }
  /** Whether text queries are available (the page came from `splat view --encoder`). */
  get textQueries(): boolean { return this.textApi !== null; }

  async setSettings(patch: Partial<MemorySettings>): Promise<void> {
    const s = { ...this._settings };
    if (patch.threshold !== undefined) {
      const t = Number(patch.threshold);
      if (!Number.isFinite(t)) throw new RangeError("threshold must be a number in [-1, 1]");
      s.threshold = Math.min(Math.max(t, -1), 1);
    }
    if (patch.onlyMatches !== undefined) s.onlyMatches = !!patch.onlyMatches;
    if (patch.model !== undefined) {
      if (!this.models.includes(patch.model)) throw new RangeError(`this memory has no model '${patch.model}' (models: ${this.models.join(", ")})`);
      s.model = patch.model;
    }
    const modelChanged = s.model !== this._settings.model;
    this._settings = s;
    this.syncControls();
    if (modelChanged && this.last) await this.rerun();
    else this.apply();
    this.host.emit("memorysettings", this.settings);
  }

  // ------------------------------------------------------------------ queries
  /** Query by Gaussian `i`'s own feature; recolours the scene. */
  async queryGaussian(i: number): Promise<MemoryQuery> {
    const model = this._settings.model;
    const r = await this.request({ type: "query", model, gaussian: i });
    return this.show(r, { source: "gaussian", gaussian: i });
  }

  /** Query by the Gaussian under canvas pixel (x, y) (CSS pixels from the canvas's top left);
   * resolves with null when the ray meets no Gaussian. */
  async queryAt(x: number, y: number): Promise<MemoryQuery | null> {
    const i = this.pick(x, y);
    if (i < 0) {
      this.status("no Gaussian under the cursor");
      return null;
    }
    return this.queryGaussian(i);
  }

  /** Query by a feature vector [D] in the current model's space. */
  async queryVector(vector: ArrayLike<number>): Promise<MemoryQuery> {
    const r = await this.request({ type: "query", model: this._settings.model, vector: Array.from(vector) });
    return this.show(r, { source: "vector" });
  }

  /** Query by text through the server's encoder (`splat view X.m3 --web --encoder module:function`). */
  async queryText(text: string): Promise<MemoryQuery> {
    if (!this.textApi) throw new Error("text queries need the player served by `splat view --web --encoder module:function`");
    const t = String(text).trim();
    if (!t) throw new RangeError("type a text to search for");
    const model = this._settings.model;
    const res = await fetch(this.textApi, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: t, model }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`text query failed: ${(body as { error?: string }).error ?? `HTTP ${res.status}`}`);
    const v = (body as { vector?: unknown }).vector;
    if (!Array.isArray(v)) throw new Error("text query failed: the server sent no vector");
    const r = await this.request({ type: "query", model, vector: v as number[] });
    return this.show(r, { source: "text", text: t });
  }

  /** Forget the query and put the scene's own colours back. */
  clear(): void {
    this.scores = null;
    this.last = null;
    this.showColors(false);
    this.status("click the scene to find what is similar to the point under the cursor");
    this.host.emit("memoryquery", null);
  }

  /** The matching Gaussians (similarity >= threshold) as INRIA PLY bytes. */
  exportMatches(): Uint8Array {
    if (!this.scores) throw new Error("no query yet: click the scene first");
    const keep: number[] = [];
    for (let i = 0; i < this.scores.length; i++) if (this.scores[i] >= this._settings.threshold) keep.push(i);
    if (!keep.length) throw new Error("no Gaussian is above the threshold: nothing to export");
    return encodePly(subset(this.scene, keep));
  }

  /** Offer the matches to the user as a `.ply` download; returns the file name. */
  downloadMatches(): string {
    const bytes = this.exportMatches();
    const stem = this.host.fileName().replace(/\.[^.]*$/, "") || "memory";
    const name = `${stem}_matches.ply`;
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.style.display = "none";
    this.host.root.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    return name;
  }

  dispose(): void {
    const view = this.host.view();
    if (view) {
      view.shOverride = null;
      view.setStage(null);
    }
    this.gpu.dispose();
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new Error("the memory was closed"));
    this.pending.clear();
    for (const f of this.detach) f();
    this.section.remove();
  }

  // ------------------------------------------------------------------ picking
  /**
   * The Gaussian under canvas pixel (x, y): among those whose centre the camera ray passes
   * within PICK_SIGMAS of their largest standard deviation (and with opacity >= 0.1, and
   * visible under the display's opacity threshold), the nearest along the ray; -1 if none.
   */
  pick(x: number, y: number): number {
    const view = this.host.view();
    if (!view) return -1;
    const rect = view.canvas.getBoundingClientRect();
    const w = rect.width || view.canvas.width, h = rect.height || view.canvas.height;
    const ndc = new THREE.Vector2((x / w) * 2 - 1, -(y / h) * 2 + 1);
    const ray = new THREE.Raycaster();
    view.camera.updateMatrixWorld();
    ray.setFromCamera(ndc, view.camera);
    const inv = new THREE.Matrix4();
    if (view.mesh) {
      view.mesh.updateMatrixWorld();
      inv.copy(view.mesh.matrixWorld).invert();
    }
    const r = ray.ray.clone().applyMatrix4(inv);
    const o = r.origin, d = r.direction.normalize();
    const s = this.scene;
    const minOpacity = Math.max(PICK_MIN_OPACITY, view.settings.opacityThreshold);
    const minLogit = Math.log(minOpacity / (1 - minOpacity));
    const hidden = this._settings.onlyMatches && this.scores ? this.scores : null;
    let best = -1, bestT = Infinity;
    const scale = view.settings.splatScale * PICK_SIGMAS;
    for (let i = 0; i < s.count; i++) {
      if (s.opacityLogits[i] < minLogit) continue;
      if (hidden && hidden[i] < this._settings.threshold) continue;
      const vx = s.means[3 * i] - o.x, vy = s.means[3 * i + 1] - o.y, vz = s.means[3 * i + 2] - o.z;
      const t = vx * d.x + vy * d.y + vz * d.z;
      if (t <= view.camera.near || t >= bestT) continue;
      const perp2 = vx * vx + vy * vy + vz * vz - t * t;
      const sigma = Math.exp(Math.max(s.logScales[3 * i], s.logScales[3 * i + 1], s.logScales[3 * i + 2])) * scale;
      if (perp2 <= sigma * sigma) {
        best = i;
        bestT = t;
      }
    }
    return best;
  }

  // ------------------------------------------------------------------ internals
  private el<T extends Element>(sel: string): T {
    return this.section.querySelector(sel) as T;
  }

  private status(text: string): void {
    this.el<HTMLElement>(".mem-status").textContent = text;
  }

  private post(msg: MemoryRequest): void {
    this.worker.postMessage(msg);
  }

  private request(msg: { type: "features"; model: string } | { type: "query"; model: string; gaussian?: number; vector?: number[] }): Promise<MemoryReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ ...msg, id });
    });
  }

  private show(r: MemoryReply, q: Pick<MemoryQuery, "source" | "gaussian" | "text">): MemoryQuery {
    if (r.type !== "query") throw new Error("unexpected reply from the similarity worker");
    this.scores = r.scores;
    this.gpu.setScores(r.scores);
    let min = Infinity, max = -Infinity;
    for (const v of r.scores) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    this.last = { ...q, model: r.model, vector: Array.from(r.vector), matches: 0, min, max, similarityMs: r.ms, colorsMs: 0 };
    this.apply();
    const out = this.query!;
    this.host.emit("memoryquery", out);
    return out;
  }

  private async rerun(): Promise<void> {
    const q = this.last!;
    if (q.source === "gaussian") await this.queryGaussian(q.gaussian!);
    else if (q.source === "text") await this.queryText(q.text!);
    else this.clear(); // a vector belongs to one model's space
  }

  /** Show the current scores with the current settings (uniforms of the GPU stage). */
  private apply(): void {
    if (!this.scores || !this.last) return;
    const t0 = performance.now();
    const { threshold, onlyMatches } = this._settings;
    const g = this.gpu;
    g.threshold.value = threshold;
    g.only.value = onlyMatches;
    g.lo.value = this.last.min;
    g.span.value = Math.max(this.last.max - this.last.min, 1e-8);
    let matches = 0;
    for (const v of this.scores) if (v >= threshold) matches++;
    this.showColors(true);
    this.last.matches = matches;
    this.last.colorsMs = performance.now() - t0;
    const q = this.last;
    const n = this.scores.length;
    const what = q.source === "gaussian" ? `Gaussian ${q.gaussian}` : q.source === "text" ? `"${q.text}"` : "vector";
    this.status(`${what}, model ${q.model}: ${matches.toLocaleString("en")} of ${n.toLocaleString("en")} ≥ ${threshold.toFixed(2)} `
      + `(similarity ${q.min.toFixed(2)}…${q.max.toFixed(2)}); ${q.similarityMs.toFixed(0)} ms + colours ${q.colorsMs.toFixed(0)} ms`);
  }

  /** Similarity colours on (view-dependent colour off: the ramp is flat) or the scene's own. */
  private showColors(on: boolean): void {
    this.gpu.active.value = on;
    const view = this.host.view();
    if (!view) return;
    view.shOverride = on ? 0 : null;
    view.applySettings(); // the SH degree, and a regeneration that reads the uniforms and the texture
    view.invalidate(4);
  }

  private async probeTextApi(): Promise<void> {
    // only `splat view --web --encoder` offers it; a static host answers 404 (or HTML)
    try {
      const url = new URL("api/assets", document.baseURI);
      const res = await fetch(url, { headers: { Accept: "application/json" } });
      if (!res.ok) return;
      const body = (await res.json()) as { query?: { url?: unknown } };
      if (body && body.query && typeof body.query.url === "string") {
        this.textApi = new URL(body.query.url, url).href;
        this.el<HTMLElement>(".mem-text").hidden = false;
        this.host.emit("memorytext", { available: true });
      }
    } catch {
      // no API: no text box
    }
  }

  private syncControls(): void {
    this.el<HTMLSelectElement>("select[name=memModel]").value = this._settings.model;
    this.el<HTMLInputElement>("input[name=memThreshold]").value = String(this._settings.threshold);
    this.el<HTMLInputElement>("input[name=memOnly]").checked = this._settings.onlyMatches;
  }

  private fail(e: unknown): void {
    const message = (e as Error)?.message ?? String(e);
    this.status(message);
    this.host.emit("memoryerror", { message });
  }

  private wire(): void {
    const select = this.el<HTMLSelectElement>("select[name=memModel]");
    select.addEventListener("change", () => this.setSettings({ model: select.value }).catch((e) => this.fail(e)));
    const th = this.el<HTMLInputElement>("input[name=memThreshold]");
    th.addEventListener("input", () => this.setSettings({ threshold: Number(th.value) }).catch((e) => this.fail(e)));
    const only = this.el<HTMLInputElement>("input[name=memOnly]");
    only.addEventListener("change", () => this.setSettings({ onlyMatches: only.checked }).catch((e) => this.fail(e)));
    const text = this.el<HTMLInputElement>("input[name=memText]");
    const search = () => this.queryText(text.value).catch((e) => this.fail(e));
    this.el("button[name=memSearch]").addEventListener("click", search);
    text.addEventListener("keydown", (ev) => { if (ev.key === "Enter") void search(); });
    this.el("button[name=memClear]").addEventListener("click", () => this.clear());
    this.el("button[name=memExport]").addEventListener("click", () => {
      try {
        this.downloadMatches();
      } catch (e) {
        this.fail(e);
      }
    });
    // a click (not an orbit drag) on the canvas queries the Gaussian under the cursor
    const view = this.host.view();
    if (!view) return;
    const canvas = view.canvas;
    const down = (ev: PointerEvent) => { if (ev.button === 0) this.clickStart = { x: ev.clientX, y: ev.clientY, t: performance.now() }; };
    const up = (ev: PointerEvent) => {
      const c = this.clickStart;
      this.clickStart = null;
      if (!c || ev.button !== 0 || Math.hypot(ev.clientX - c.x, ev.clientY - c.y) > 4 || performance.now() - c.t > 600) return;
      const rect = canvas.getBoundingClientRect();
      this.queryAt(ev.clientX - rect.left, ev.clientY - rect.top).catch((e) => this.fail(e));
    };
    canvas.addEventListener("pointerdown", down);
    canvas.addEventListener("pointerup", up);
    this.detach.push(() => {
      canvas.removeEventListener("pointerdown", down);
      canvas.removeEventListener("pointerup", up);
    });
  }
}

/** The Gaussians `keep` (indices, ascending) of `a`. */
function subset(a: SplatArrays, keep: number[]): SplatArrays {
  const pick = (src: Float32Array, w: number) => {
    const out = new Float32Array(keep.length * w);
    keep.forEach((i, j) => out.set(src.subarray(i * w, (i + 1) * w), j * w));
    return out;
  };
  const k = (a.shDegree + 1) ** 2 - 1;
  return {
    count: keep.length, shDegree: a.shDegree, means: pick(a.means, 3), quats: pick(a.quats, 4), logScales: pick(a.logScales, 3),
    opacityLogits: pick(a.opacityLogits, 1), shDc: pick(a.shDc, 3), shRest: pick(a.shRest, 3 * k),
  };
}
