/**
 * The 3D view: a three.js renderer with Spark's SparkRenderer, an orbit camera and one
 * SplatMesh at a time, with the display settings (splat scale, opacity threshold, budget,
 * SH, background) applied on the GPU by one object-space modifier.
 */
import { dyno, SparkRenderer, SplatMesh, type PackedSplats } from "@sparkjsdev/spark";
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import type { SplatArrays } from "../formats/types.js";
import type { CameraPreset } from "./cameras.js";
import { packInto, packSplats } from "./pack.js";
import type { SparkWords } from "./spark_words.js";

export interface DisplaySettings {
  /** Multiplies every Gaussian's extent. */
  splatScale: number;
  /** Gaussians with opacity below this are hidden. */
  opacityThreshold: number;
  /** Keep only the N most significant Gaussians (opacity x geometric-mean scale^2); 0 = all. */
  budget: number;
  /** View-dependent colour on/off. */
  sh: boolean;
  /** CSS colour of the background. */
  background: string;
}

/** One more step of the per-splat modifier: a Gsplat in, a Gsplat out (GPU code). */
export type SplatStage = (gsplat: dyno.DynoVal<typeof dyno.Gsplat>) => dyno.DynoVal<typeof dyno.Gsplat>;

export const DEFAULT_SETTINGS: DisplaySettings = { splatScale: 1, opacityThreshold: 0, budget: 0, sh: true, background: "#000000" };

/** How often a still view is redrawn, ms. */
const IDLE_REDRAW_MS = 500;

/**
 * Spark sorts from a GPU readback of the splats' depths. A draw submitted while that readback
 * is in flight runs before it on the GPU, and the page then blocks in the read until that
 * draw is done: a few ms on a GPU, but up to a second per draw on a software rasteriser
 * (SwiftShader), with no video frame written meanwhile. So where sorts are slow (a sort took
 * longer than SLOW_SORT_MS), a sort in flight holds the next draw back, for at most
 * SORT_HOLD_MS (Spark calls onDirty when its sort is in, and the view draws then). Where sorts
 * are fast, draws go on during a sort, as Spark intends (a moving camera stays smooth).
 */
const SLOW_SORT_MS = 150;
const SORT_HOLD_MS = 3000;

/**
 * Dynamic resolution. On a software rasteriser one draw of a large splat cloud can hold the
 * page for a second (the page waits for it in Spark's depth readback), and no video frame is
 * written meanwhile. When the page was held longer than SLOW_DRAW_MS between two animation
 * frames after a draw (a gap over HIDDEN_GAP_MS is a hidden tab, not a draw), the drawing
 * buffer halves its resolution (each step a quarter of the pixels), down to MIN_RENDER_SCALE of
 * the device pixels. After FAST_DRAWS_TO_GROW draws in a row shorter than FAST_DRAW_MS it
 * doubles again, up to full resolution, so on a GPU a one-off stall costs a few blurry frames.
 */
const SLOW_DRAW_MS = 250;
const FAST_DRAW_MS = 50;
const FAST_DRAWS_TO_GROW = 8;
const MIN_RENDER_SCALE = 0.25;
const HIDDEN_GAP_MS = 5000;

/** Rotation by 180 degrees about x: SPZ's RUB axes into the PLY frame (RDF). */
const RUB_TO_RDF = new THREE.Quaternion(1, 0, 0, 0);

export class SplatView {
  readonly renderer: THREE.WebGLRenderer;
  readonly scene = new THREE.Scene();
  readonly camera = new THREE.PerspectiveCamera(50, 1, 0.01, 1000);
  readonly controls: OrbitControls;
  readonly spark: SparkRenderer;
  mesh: SplatMesh | null = null;
  settings: DisplaySettings = { ...DEFAULT_SETTINGS };
  /** Frames drawn since the current mesh was added. */
  framesDrawn = 0;
  /** A highest SH degree that overrides `settings.sh` (a feature-memory query shows flat colours), or null. */
  shOverride: number | null = null;
  /** A per-splat stage after the display settings (memory.ts: similarity colours), or null. */
  private stage: SplatStage | null = null;
  onDraw: (() => void) | null = null;
  private splatScale = dyno.dynoFloat(1);
  private minOpacity = dyno.dynoFloat(0);
  private minSignificance = dyno.dynoFloat(0);
  /** Sorted significances of the current mesh (ascending), for the budget. */
  private significance: Float32Array | null = null;
  private home: { position: THREE.Vector3; target: THREE.Vector3 } | null = null;
  private pendingFrames = 3;
  private activeUntil = 0;
  private lastRender = 0;
  /** When the draw loop first saw Spark's current sort in flight (0: none). */
  private sortSeen = 0;
  /** Whether the last sort took longer than SLOW_SORT_MS (then a sort in flight holds draws back). */
  private slowSorts = false;
  /** The drawing buffer's resolution over the device pixels (see SLOW_DRAW_MS). */
  private scale = 1;
  /** When the draw loop last ran, ms. */
  private lastTick = 0;
  /** Whether a draw happened since the last resolution check. */
  private drewSinceCheck = false;
  /** The longest gap between two runs of the draw loop since that draw, ms. */
  private longestGap = 0;
  /** Fast draws in a row at the current scale. */
  private fastDraws = 0;

  constructor(readonly canvas: HTMLCanvasElement) {
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false, alpha: false });
    this.renderer.setPixelRatio(this.devicePixels());
    // Render on demand: when the camera moves, a setting changes, or Spark has a new sort.
    this.spark = new SparkRenderer({ renderer: this.renderer, onDirty: () => this.invalidate() });
    this.scene.add(this.spark);
    this.camera.up.set(0, -1, 0); // the PLY frame has y down
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.enableDamping = true;
    this.controls.addEventListener("change", () => this.invalidate());
    this.setBackground(this.settings.background);
    this.renderer.setAnimationLoop(() => this.draw());
  }

  /**
   * Ask for renders: at least `frames` more, and every frame for the next second (Spark
   * regenerates and sorts in workers over a few frames; it also calls onDirty when a new
   * sort is ready). A still view is redrawn only twice a second, which also picks up any
   * late result of Spark's workers.
   */
  invalidate(frames = 3): void {
    this.pendingFrames = Math.max(this.pendingFrames, frames);
    this.activeUntil = performance.now() + 1000;
  }

  /** The drawing buffer's resolution over the device pixels: 1, or less where draws are slow. */
  get renderScale(): number {
    return this.scale;
  }

  private devicePixels(): number {
    return Math.min(window.devicePixelRatio || 1, 2);
  }

  /** Resize the drawing buffer from how long the page was held since the last draw (see SLOW_DRAW_MS). */
  private adaptScale(): void {
    const held = this.longestGap;
    this.drewSinceCheck = false;
    this.longestGap = 0;
    let next = this.scale;
    if (held > SLOW_DRAW_MS) {
      this.fastDraws = 0;
      next = Math.max(MIN_RENDER_SCALE, this.scale / 2);
    } else if (held >= FAST_DRAW_MS) {
      this.fastDraws = 0;
    } else if (this.scale < 1 && ++this.fastDraws >= FAST_DRAWS_TO_GROW) {
      this.fastDraws = 0;
      next = Math.min(1, this.scale * 2);
    }
    if (next !== this.scale) {
      this.scale = next;
      this.renderer.setPixelRatio(this.devicePixels() * next);
      this.invalidate();
    }
  }

  private draw(): void {
    if (this.controls.update()) this.invalidate();
    const now = performance.now();
    const gap = now - this.lastTick;
    this.lastTick = now;
    if (this.drewSinceCheck && gap < HIDDEN_GAP_MS) this.longestGap = Math.max(this.longestGap, gap);
    if (this.spark.sorting) {
      if (!this.sortSeen) this.sortSeen = now;
    } else if (this.sortSeen) {
      this.slowSorts = now - this.sortSeen > SLOW_SORT_MS;
      this.sortSeen = 0;
    }
    if (this.pendingFrames <= 0 && now > this.activeUntil && now - this.lastRender < IDLE_REDRAW_MS) return;
    if (this.sortSeen && this.slowSorts && now - this.sortSeen < SORT_HOLD_MS) return; // see SLOW_SORT_MS
    if (this.drewSinceCheck) this.adaptScale();
    this.pendingFrames--;
    this.lastRender = now;
    try {
      this.renderer.render(this.scene, this.camera);
    } catch (e) {
      // a throw here would end three's animation loop: report it and keep the loop alive
      console.error("render failed:", e);
      return;
    }
    if (!this.mesh?.isInitialized) return;
    if (this.spark.activeSplats > 0) {
      this.drewSinceCheck = true;
      // a frame that drew the mesh's splats (Spark draws none until its first sort is in)
      this.framesDrawn++;
      this.onDraw?.();
    } else {
      this.invalidate(1); // keep going until Spark's workers have delivered
    }
  }

  resize(width: number, height: number): void {
    if (width < 1 || height < 1) return;
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.invalidate();
  }

  setBackground(css: string): void {
    this.settings.background = css;
    this.renderer.setClearColor(new THREE.Color(css), 1);
    this.invalidate();
  }

  /** The modifier: scales x splatScale; opacity 0 below the threshold or the budget's cut. */
  private modifier() {
    const { splatScale, minOpacity, minSignificance, stage } = this;
    return dyno.dynoBlock({ gsplat: dyno.Gsplat }, { gsplat: dyno.Gsplat }, ({ gsplat }) => {
      if (!gsplat) throw new Error("no gsplat");
      const { scales, opacity } = dyno.splitGsplat(gsplat).outputs;
      const { x, y, z } = dyno.split(scales).outputs;
      const volume = dyno.mul(dyno.mul(x, y), z);
      const significance = dyno.mul(opacity, dyno.pow(volume, dyno.dynoConst("float", 2 / 3)));
      const visible = dyno.and(dyno.greaterThanEqual(opacity, minOpacity), dyno.greaterThanEqual(significance, minSignificance));
      const shown = dyno.combineGsplat({
        gsplat,
        scales: dyno.mul(scales, splatScale),
        opacity: dyno.select(visible, opacity, dyno.dynoConst("float", 0)),
      });
      return { gsplat: stage ? stage(shown) : shown };
    });
  }

  /** Add (or remove, with null) a per-splat stage after the display settings; recompiles the modifier. */
  setStage(stage: SplatStage | null): void {
    this.stage = stage;
    if (this.mesh) {
      this.mesh.objectModifier = this.modifier();
      this.mesh.updateGenerator();
      this.invalidate();
    }
  }

  /** Replace the mesh with `packed` (PLY frame) or with bytes Spark decodes itself. */
  async show(source: { packed: PackedSplats } | { bytes: Uint8Array; fileType: string; fileName: string; rub: boolean }): Promise<SplatMesh> {
    this.clear();
    const mesh = "packed" in source
      ? new SplatMesh({ packedSplats: source.packed, splatEncoding: source.packed.splatEncoding })
      : new SplatMesh({ fileBytes: source.bytes, fileType: source.fileType as never, fileName: source.fileName });
    if (!("packed" in source) && source.rub) mesh.quaternion.copy(RUB_TO_RDF);
    mesh.objectModifier = this.modifier();
    try {
      await mesh.initialized;
    } catch (e) {
      mesh.dispose();
      throw e;
    }
    this.mesh = mesh;
    this.framesDrawn = 0;
    this.significance = null;
    this.scene.add(mesh);
    this.applySettings();
    this.invalidate(6);
    return mesh;
  }

  /**
   * Put a video frame on screen: written over the current mesh's arrays when it fits (no new
   * mesh, no new GPU textures: Spark re-uploads them and re-sorts), else a new mesh with room
   * for `capacity` Gaussians (`words`: `a` packed already, see packInto). Returns true when it was written in place.
   */
  async showFrame(a: SplatArrays, capacity: number, words?: SparkWords): Promise<boolean> {
    const packed = this.mesh?.packedSplats;
    if (this.mesh && packed && packInto(a, packed, words)) {
      this.significance = null;
      if (this.settings.budget > 0) this.minSignificance.value = this.budgetCut(this.settings.budget);
      this.mesh.updateVersion();
      this.invalidate(2);
      return true;
    }
    await this.show({ packed: packSplats(a, capacity) });
    return false;
  }

  clear(): void {
    if (this.mesh) {
      this.scene.remove(this.mesh);
      this.mesh.dispose();
      this.mesh = null;
    }
    this.framesDrawn = 0;
    this.invalidate();
  }

  count(): number {
    return this.mesh?.packedSplats?.numSplats ?? 0;
  }

  /** Apply `settings` (all or some) to the GPU. */
  applySettings(patch: Partial<DisplaySettings> = {}): void {
    Object.assign(this.settings, patch);
    const s = this.settings;
    if (patch.background !== undefined) this.setBackground(s.background);
    this.splatScale.value = s.splatScale;
    this.minOpacity.value = s.opacityThreshold;
    this.minSignificance.value = this.budgetCut(s.budget);
    const splatsChanged = Object.keys(patch).length === 0 || Object.keys(patch).some((k) => k !== "background");
    if (this.mesh && splatsChanged) {
      const maxSh = this.shOverride ?? (s.sh ? 3 : 0);
      if (this.mesh.maxSh !== maxSh) {
        this.mesh.maxSh = maxSh;
        this.mesh.updateGenerator(); // the SH degree is part of Spark's compiled pipeline
      }
      this.mesh.updateVersion(); // the modifier's uniforms are read when Spark regenerates
    }
    this.invalidate();
  }

  /** The significance the budget's N-th most significant Gaussian has (0 keeps all). */
  private budgetCut(budget: number): number {
    const n = this.count();
    if (!this.mesh || budget <= 0 || budget >= n) return 0;
    if (!this.significance) {
      const sig = new Float32Array(n);
      this.mesh.packedSplats?.forEachSplat((i, _c, scales, _q, opacity) => {
        sig[i] = opacity * Math.pow(scales.x * scales.y * scales.z, 2 / 3);
      });
      this.significance = sig.sort();
    }
    return this.significance[n - budget];
  }

  /** Frame the whole mesh: look at the centre of the middle 90% of centres from -z. */
  frameAll(): void {
    if (!this.mesh) return;
    const xs: number[][] = [[], [], []];
    const step = Math.max(1, Math.floor(this.count() / 20000));
    const p = new THREE.Vector3();
    this.mesh.packedSplats?.forEachSplat((i, c) => {
      if (i % step) return;
      p.copy(c).applyQuaternion(this.mesh!.quaternion);
      xs[0].push(p.x); xs[1].push(p.y); xs[2].push(p.z);
    });
    if (!xs[0].length) return;
    const lo = new THREE.Vector3(), hi = new THREE.Vector3();
    xs.forEach((v, a) => {
      v.sort((u, w) => u - w);
      lo.setComponent(a, v[Math.floor(0.05 * (v.length - 1))]);
      hi.setComponent(a, v[Math.ceil(0.95 * (v.length - 1))]);
    });
    const centre = lo.clone().add(hi).multiplyScalar(0.5);
    const radius = Math.max(hi.clone().sub(lo).length() / 2, 1e-3);
    const dist = 1.4 * radius / Math.tan(((this.camera.fov / 2) * Math.PI) / 180);
    this.camera.near = dist / 1000;
    this.camera.far = dist * 100;
    const position = centre.clone().add(new THREE.Vector3(0, -0.35, -1).normalize().multiplyScalar(dist));
    this.home = { position, target: centre };
    this.resetCamera();
  }

  resetCamera(): void {
    if (!this.home) return;
    this.camera.position.copy(this.home.position);
    this.controls.target.copy(this.home.target);
    this.camera.up.set(0, -1, 0);
    this.camera.lookAt(this.home.target);
    this.camera.updateProjectionMatrix();
    this.controls.update();
    this.invalidate();
  }

  /** Put the camera at a preset (PLY frame; three.js camera axes). */
  usePreset(c: CameraPreset): void {
    const r = c.rotation;
    const m = new THREE.Matrix4().set(r[0], r[1], r[2], c.position[0], r[3], r[4], r[5], c.position[1], r[6], r[7], r[8], c.position[2], 0, 0, 0, 1);
    const q = new THREE.Quaternion().setFromRotationMatrix(m);
    this.camera.position.fromArray(c.position);
    this.camera.quaternion.copy(q);
    this.camera.fov = c.fovY;
    this.camera.updateProjectionMatrix();
    // orbit about a point ahead of the camera, with the camera's own up
    const ahead = new THREE.Vector3(0, 0, -1).applyQuaternion(q);
    const dist = this.home ? this.home.position.distanceTo(this.home.target) : 1;
    this.camera.up.set(0, 1, 0).applyQuaternion(q);
    this.controls.target.copy(this.camera.position).addScaledVector(ahead, dist);
    this.controls.update();
    this.invalidate();
  }

  dispose(): void {
    this.renderer.setAnimationLoop(null);
    this.clear();
    this.controls.dispose();
    this.renderer.dispose();
  }
}
