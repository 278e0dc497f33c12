/**
 * The local JSON API of `splat view` in the player (the page's `api` attribute names its base
 * URL; published sites have none, and then nothing here is shown):
 *  - "render this view": the camera and display settings go to `POST api/render`, which
 *    renders them with the toolkit's own renderer, saves the PNG and sends it back; the page
 *    downloads it;
 *  - the budget's "keep: largest contribution" order: `POST api/contribution` returns one
 *    float32 weight per Gaussian (blend weight summed over several rendered views); the budget
 *    then keeps the N largest, by zeroing the others' opacity in the splats on the GPU.
 */
import type { PackedSplats } from "@sparkjsdev/spark";
import type { SplatView } from "./view.js";

/** What `api/render` takes (see viewer/view_api.py): the three.js camera and the settings. */
export interface ViewRequest {
  asset: string;
  position: number[];
  /** Camera-to-world rotation (x, y, z, w), three.js camera axes. */
  quaternion: number[];
  /** Vertical field of view, degrees. */
  fov: number;
  width: number;
  height: number;
  splatScale: number;
  opacityThreshold: number;
  budget: number;
  keep: Keep;
  sh: boolean;
  background: string;
  frame: number;
}

export type Keep = "significance" | "contribution";

/** What the player lends this module: its shadow root (for the controls), its view, and the
 * asset on screen. */
export interface ApiHost {
  root: ShadowRoot;
  view(): SplatView | null;
  assetName(): string | null;
  /** The frame on screen (a clip), or 0. */
  frameIndex(): number;
  isClip(): boolean;
  /** Show a one-line status (null clears it). */
  say(text: string | null): void;
  emit(type: string, detail?: unknown): void;
}

/** The reply body of a refused request, as one line. */
async function failure(res: Response, what: string): Promise<Error> {
  const text = (await res.text().catch(() => "")).split("\n")[0].slice(0, 300);
  return new Error(`${what}: ${text || `HTTP ${res.status}`}`);
}

/** Keeps the N largest-weight Gaussians of a mesh visible by zeroing the others' opacity byte
 * (the top byte of each Gaussian's first word); the original bytes are kept to undo it. */
export class KeepMask {
  private saved: Uint8Array | null = null;
  private packed: PackedSplats | null = null;

  constructor(private readonly order: Uint32Array) {}

  /** Show only the first `budget` Gaussians of the order (0 or >= count: all). */
  apply(packed: PackedSplats, budget: number): void {
    const words = packed.packedArray;
    if (!words) return;
    const n = Math.min(packed.numSplats, this.order.length);
    if (this.packed !== packed) {
      this.packed = packed;
      this.saved = new Uint8Array(n);
      for (let i = 0; i < n; i++) this.saved[i] = words[4 * i] >>> 24;
    }
    const saved = this.saved!;
    const keep = budget <= 0 || budget >= n ? n : budget;
    for (let r = 0; r < n; r++) {
      const i = this.order[r];
      const a = r < keep ? saved[i] : 0;
      words[4 * i] = ((words[4 * i] & 0x00ffffff) | (a << 24)) >>> 0;
    }
    packed.needsUpdate = true;
  }

  /** Put every opacity back. */
  restore(): void {
    if (this.packed && this.saved) this.apply(this.packed, 0);
  }
}

/** Indices sorted by descending weight, ties in index order (as the server's stable argsort). */
export function contributionOrder(weights: Float32Array): Uint32Array {
  const idx = Array.from({ length: weights.length }, (_, i) => i);
  idx.sort((a, b) => weights[b] - weights[a] || a - b);
  return Uint32Array.from(idx);
}

export class ApiControls {
  private keep: Keep = "significance";
  private budget = 0;
  private mask: KeepMask | null = null;
  private weights: Float32Array | null = null;
  private readonly keepSelect: HTMLSelectElement;
  private readonly keepLabel: HTMLElement;

  constructor(private readonly host: ApiHost, private readonly base: URL) {
    const root = host.root;
    const budgetInput = root.querySelector("input[name=budget]") as HTMLInputElement;
    this.keepLabel = document.createElement("label");
    this.keepLabel.innerHTML = `keep <select name="keep" title="which Gaussians the budget keeps"><option value="significance">most significant</option><option value="contribution">largest contribution</option></select>`;
    budgetInput.closest("label")!.after(this.keepLabel);
    this.keepSelect = this.keepLabel.querySelector("select")!;
    this.budget = Math.max(0, Math.floor(Number(budgetInput.value) || 0));
    this.keepSelect.addEventListener("change", () => void this.setKeep(this.keepSelect.value as Keep));
    // after the player's own listener (which applies the budget as "most significant")
    budgetInput.addEventListener("input", () => {
      const v = Number(budgetInput.value);
      this.budget = Number.isFinite(v) ? Math.max(0, Math.floor(v)) : 0;
      if (this.keep === "contribution") this.applyMask();
    });
    const button = document.createElement("button");
    button.name = "render";
    button.textContent = "render this view (PNG)";
    button.title = "render with splatkit's renderer on the server; saved there and downloaded here";
    button.addEventListener("click", () => void this.renderView().catch(() => undefined));
    const row = document.createElement("label");
    row.append(button);
    root.querySelector("button[name=reset]")!.closest("label")!.after(row);
  }

  /** A new asset is on screen: the order of the last one no longer applies. */
  reset(): void {
    this.mask = null;
    this.weights = null;
    this.keep = "significance";
    this.keepSelect.value = "significance";
    this.keepLabel.hidden = this.host.isClip();
  }

  /** The request `api/render` gets for what is on screen now. */
  request(): ViewRequest {
    const view = this.host.view();
    const name = this.host.assetName();
    if (!view || !name) throw new Error("render this view: nothing is on screen");
    const cam = view.camera;
    const canvas = view.canvas;
    const s = view.settings;
    return {
      asset: name,
      position: cam.position.toArray(),
      quaternion: cam.quaternion.toArray() as number[],
      fov: cam.fov,
      width: Math.max(1, Math.round(canvas.clientWidth || canvas.width)),
      height: Math.max(1, Math.round(canvas.clientHeight || canvas.height)),
      splatScale: s.splatScale,
      opacityThreshold: s.opacityThreshold,
      budget: this.keep === "contribution" ? this.budget : s.budget,
      keep: this.keep,
      sh: s.sh,
      background: s.background,
      frame: Math.max(0, this.host.frameIndex()),
    };
  }

  private async post(path: string, body: unknown): Promise<Response> {
    const res = await fetch(new URL(path, this.base), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!res.ok) throw await failure(res, path);
    return res;
  }

  /** Render the view on the server: resolves with the saved file's name and the PNG; with
   * `download` the browser also saves it. Fires `render` ({name, bytes}) or `apierror`. */
  async renderView({ download = true } = {}): Promise<{ name: string; png: Blob }> {
    try {
      this.host.say("rendering this view with splatkit…");
      const res = await this.post("render", this.request());
      const png = await res.blob();
      const name = res.headers.get("X-Saved-As") ?? "view.png";
      if (download) {
        const a = document.createElement("a");
        a.href = URL.createObjectURL(png);
        a.download = name;
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      }
      this.host.say(null);
      this.host.emit("render", { name, bytes: png.size });
      return { name, png };
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  /** Choose which Gaussians the budget keeps; "contribution" fetches the weights once. */
  async setKeep(keep: Keep): Promise<void> {
    const view = this.host.view();
    if (keep === "significance" || !view) {
      this.keep = "significance";
      this.keepSelect.value = "significance";
      this.mask?.restore();
      view?.applySettings({ budget: this.budget });
      return;
    }
    try {
      if (!this.weights) {
        this.host.say("ranking Gaussians by their contribution (rendered on the server)…");
        const res = await this.post("contribution", { asset: this.host.assetName() });
        const weights = new Float32Array(await res.arrayBuffer());
        if (weights.length !== view.count()) {
          throw new Error(`contribution: the server ranked ${weights.length} Gaussians, the page shows ${view.count()}`);
        }
        this.weights = weights;
        this.mask = new KeepMask(contributionOrder(weights));
        this.host.say(null);
      }
      this.keep = "contribution";
      this.keepSelect.value = "contribution";
      this.applyMask();
      this.host.emit("keep", { keep: this.keep });
    } catch (e) {
      this.keepSelect.value = "significance";
      this.fail(e);
    }
  }

  private applyMask(): void {
    const view = this.host.view();
    const packed = view?.mesh?.packedSplats;
    if (!view || !packed || !this.mask) return;
    if (view.settings.budget !== 0) view.applySettings({ budget: 0 });
    this.mask.apply(packed, this.budget);
    view.mesh!.updateVersion();
    view.invalidate();
  }

  private fail(e: unknown): void {
    const message = (e as Error)?.message ?? String(e);
    this.host.say(message);
    this.host.emit("apierror", { message });
  }
}
