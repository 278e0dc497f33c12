/** Mouse controls shared by every 2D image view: wheel zooms about the cursor, drag pans, double-click resets. */

/** What the controls drive; positions and deltas are in canvas (drawing-buffer) pixels. */
export interface PanZoomTarget {
  zoomAt(factor: number, x: number, y: number): void;
  panBy(dx: number, dy: number): void;
  reset(): void;
}

/** Wheel zoom speed: a wheel step of `deltaY` zooms by exp(-deltaY * WHEEL). */
export const WHEEL = 0.002;

/** Attach the controls to `canvas`; each listener's removal is pushed onto `detach`. */
export function wirePanZoom(canvas: HTMLCanvasElement, target: PanZoomTarget, detach: Array<() => void>): void {
  const c = canvas;
  const px = (e: MouseEvent): [number, number] => {
    const r = c.getBoundingClientRect();
    return [((e.clientX - r.left) * c.width) / Math.max(1, r.width), ((e.clientY - r.top) * c.height) / Math.max(1, r.height)];
  };
  let drag: [number, number] | null = null;
  const on = <K extends keyof HTMLElementEventMap>(type: K, f: (e: HTMLElementEventMap[K]) => void, opts?: AddEventListenerOptions) => {
    c.addEventListener(type, f, opts);
    detach.push(() => c.removeEventListener(type, f));
  };
  on("wheel", (e) => {
    e.preventDefault();
    const [x, y] = px(e);
    target.zoomAt(Math.exp(-e.deltaY * WHEEL), x, y);
  }, { passive: false });
  on("pointerdown", (e) => {
    drag = px(e);
    c.setPointerCapture(e.pointerId);
  });
  on("pointermove", (e) => {
    if (!drag) return;
    const p = px(e);
    target.panBy(p[0] - drag[0], p[1] - drag[1]);
    drag = p;
  });
  on("pointerup", () => { drag = null; });
  on("pointercancel", () => { drag = null; });
  on("dblclick", () => target.reset());
}
