/**
 * The `.gsi` renderer's test and demo page (test/image.html?src=photo.gsi): fetches the file
 * once, decodes it, and mounts a GsiRenderer with an LOD slider and an ellipse toggle.
 * Tests drive it through `window.gsiTest`.
 */
import { decodeGsi, FormatError } from "../src/formats/index.js";
import { GsiRenderer } from "../src/image/index.js";

const canvas = document.querySelector("canvas")!;
const status = document.querySelector("#status")!;
const lod = document.querySelector<HTMLInputElement>("#lod")!;
const overlay = document.querySelector<HTMLInputElement>("#overlay")!;
const params = new URLSearchParams(location.search);
const tile = params.get("tile");
const renderer = new GsiRenderer(canvas, tile ? { tile: Number(tile) } : {});
renderer.addEventListener("render", (e) => {
  const s = (e as CustomEvent).detail;
  status.textContent = `${s.used} of ${s.gaussians} Gaussians, ${s.lastMs.toFixed(1)} ms, scale ${renderer.view.scale.toFixed(2)}`;
});
renderer.addEventListener("lod", (e) => { lod.value = String((e as CustomEvent).detail.fraction); });
lod.addEventListener("input", () => { renderer.lod = Math.max(0.001, Number(lod.value)); });
overlay.addEventListener("change", () => { renderer.overlay = overlay.checked; });

async function load(url: string): Promise<{ ok: boolean; error?: string; decodeMs?: number }> {
  try {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const t0 = performance.now();
    const g = decodeGsi(bytes, { file: url });
    const decodeMs = performance.now() - t0;
    renderer.load(g);
    return { ok: true, decodeMs };
  } catch (e) {
    const msg = e instanceof FormatError ? e.message : `${url}: ${e}`;
    status.textContent = msg;
    return { ok: false, error: msg };
  }
}

declare global {
  interface Window { gsiTest: { renderer: GsiRenderer; load: typeof load; ready: Promise<unknown> } }
}
const src = params.get("src");
window.gsiTest = { renderer, load, ready: src ? load(src) : Promise.resolve(null) };
